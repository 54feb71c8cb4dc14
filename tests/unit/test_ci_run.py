"""``.ci/run``, CI's entry point, with every outside command replaced by a stub: it runs
exactly ``make test`` whatever happens to the optional packages it installs first."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.offline import ROOT

CI_RUN = ROOT / ".ci" / "run"
#: The Debian packages of the optional checks.
PACKAGES = ("chromium", "chromium-driver", "prometheus")

#: A stub that logs its name and arguments, then exits with what ``fail_<name>`` holds.
STUB = """#!{bash}
echo "$(basename "$0") $*" >> "{log}"
code_file="{stubs}/fail_$(basename "$0")"
for package in "$@"; do
    [ -e "{stubs}/missing_$package" ] && exit 100
done
[ -e "$code_file" ] && exit "$(cat "$code_file")"
exit 0
"""


class Stubs:
    """A PATH of stubs: apt-get, sudo, id, timeout, make and the optional tools."""

    def __init__(self, root: Path, uid: int = 0) -> None:
        self.dir = root / "bin"
        self.dir.mkdir()
        self.log = root / "calls.log"
        self.log.touch()
        bash = shutil.which("bash")
        assert bash is not None
        self.bash = bash
        for name in ("apt-get", "make"):
            self.stub(name)
        self.script("id", f'[ "$1" = -u ] && echo {uid}')
        # timeout and sudo -n run the command they are given
        self.script("timeout", 'shift; exec "$@"')
        self.script("sudo", f'echo "sudo $*" >> "{self.log}"; shift; exec "$@"')
        for tool in ("dirname", "basename", "cat", "true"):
            found = shutil.which(tool)
            assert found is not None
            (self.dir / tool).symlink_to(found)

    def stub(self, name: str) -> None:
        path = self.dir / name
        path.write_text(STUB.format(bash=self.bash, log=self.log, stubs=self.dir))
        path.chmod(0o755)

    def script(self, name: str, body: str) -> None:
        path = self.dir / name
        path.write_text(f"#!{self.bash}\n{body}\n")
        path.chmod(0o755)

    def run(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.bash, str(CI_RUN)],
            env={"PATH": str(self.dir), "HOME": str(self.dir)},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()

    def installs(self) -> list[str]:
        """The optional packages apt-get was asked to install, in order."""
        return [
            word
            for line in self.calls()
            if line.startswith("apt-get ") and " install " in line
            for word in line.split()
            if word in PACKAGES
        ]


@pytest.fixture
def stubs(tmp_path: Path) -> Stubs:
    return Stubs(tmp_path)


def test_it_installs_what_is_missing_then_runs_exactly_make_test(stubs: Stubs) -> None:
    done = stubs.run()
    assert done.returncode == 0, done.stderr
    assert sorted(stubs.installs()) == list(PACKAGES)
    assert [c for c in stubs.calls() if c.startswith("make")] == ["make test"]
    assert stubs.calls()[-1] == "make test"


def test_a_package_apt_cannot_find_leaves_the_others_installed(stubs: Stubs) -> None:
    (stubs.dir / "missing_chromium-driver").touch()
    done = stubs.run()
    assert done.returncode == 0, done.stderr
    assert "chromium-driver" in done.stderr  # said, not fatal
    # apt installs all of a command's packages or none: one it cannot find must not cost
    # the other two their checks
    installed = [
        line for line in stubs.calls() if line.startswith("apt-get ") and " install " in line
    ]
    assert any(line.endswith(" chromium") for line in installed), installed
    assert any(line.endswith(" prometheus") for line in installed), installed
    assert stubs.calls()[-1] == "make test"


def test_nothing_is_installed_when_every_tool_is_there(stubs: Stubs) -> None:
    for tool in ("chromium", "chromedriver", "promtool"):
        stubs.script(tool, "exit 0")
    done = stubs.run()
    assert done.returncode == 0, done.stderr
    assert stubs.calls() == ["make test"]


def test_without_root_or_sudo_nothing_is_installed(tmp_path: Path) -> None:
    stubs = Stubs(tmp_path, uid=1000)
    (stubs.dir / "sudo").unlink()
    done = stubs.run()
    assert done.returncode == 0, done.stderr
    assert stubs.calls() == ["make test"]


def test_without_root_it_installs_through_sudo(tmp_path: Path) -> None:
    stubs = Stubs(tmp_path, uid=1000)
    done = stubs.run()
    assert done.returncode == 0, done.stderr
    assert any(c.startswith("sudo -n timeout") and " install " in c for c in stubs.calls())
    assert stubs.calls()[-1] == "make test"


def test_failed_apt_never_fails_ci_and_makes_status_is_its_own(stubs: Stubs) -> None:
    (stubs.dir / "fail_apt-get").write_text("100")
    (stubs.dir / "fail_make").write_text("2")
    done = stubs.run()
    assert done.returncode == 2  # make test's failure, not apt's
    assert stubs.calls()[-1] == "make test"
