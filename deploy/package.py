"""Assemble the deployable function source: one directory and a zip of it.

The directory holds ``main.py`` (every entry point at its root), the ``shared``
library beside it (with its templates), the runtime ``requirements.txt`` and
the config ``config/gardener.yml``; ``shared.config.default_config_path``
finds the config relative to ``shared/``, so the artifact needs no working
directory of its own. The zip (``<out>.zip``) is the source archive Terraform
uploads; it is byte-for-byte reproducible (sorted entries, fixed timestamps),
so an unchanged tree gives an unchanged object name and no redeploy.

Run: ``python -m deploy.package [--out build/function]`` (``make package``).
"""

from __future__ import annotations

import argparse
import shutil
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Artifact path → repository path; directories are copied without caches.
CONTENTS = {
    "main.py": "functions/main.py",
    "shared": "shared",
    "requirements.txt": "requirements.txt",
    "config/gardener.yml": "config/gardener.yml",
}
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")
#: Timestamp of every zip entry (the zip format's earliest), for a reproducible archive.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def build(out: Path, root: Path = ROOT) -> Path:
    """Build the source directory ``out`` (replacing it) and ``out.zip``; return the zip's path."""
    if out.exists():
        shutil.rmtree(out)
    for target, source in CONTENTS.items():
        src, dst = root / source, out / target
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=_IGNORED)
        else:
            shutil.copy2(src, dst)
    archive = out.with_name(out.name + ".zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(out).as_posix(), _ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return archive


def main(argv: list[str] | None = None) -> None:
    """Command line: build into ``--out`` (default ``build/function``) and print the zip's path."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy.package", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "build" / "function",
        help="directory to build (default: build/function); the zip is <out>.zip",
    )
    args = parser.parse_args(argv)
    print(build(args.out.resolve()))


if __name__ == "__main__":
    main()
