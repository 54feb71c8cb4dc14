"""The status page in a real browser: headless Chromium loads it from a running function server.

Skipped where ``/usr/bin/chromium`` is absent (Debian: ``apt-get install chromium``); the
layout checks at desktop and phone widths drive it through ``/usr/bin/chromedriver``
(Debian: ``chromium-driver``), whose W3C WebDriver API is plain HTTP. ``.ci/run``
installs both where apt-get can. Set ``STATUS_SCREENSHOT=/path/page.png`` to keep a
screenshot of the page (and ``page-1400.png``, ``page-390.png`` of the layout checks).
"""

from __future__ import annotations

import base64
import contextlib
import html
import os
import re
import signal
import subprocess
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from local.clock import FakeClock
from shared.model import Job, State
from shared.tracker import Tracker

CHROMIUM = Path("/usr/bin/chromium")
EVIL = "<script>document.title='pwned'</script><script>alert(1)</script>"
TIMEOUT_MINUTES = 10

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="headless Chromium not installed: apt-get install -y chromium (Debian) to run the "
    "status page's browser check",
)


def chromium(tmp_path: Path, *args: str) -> str:
    """Run headless Chromium with a throw-away profile; return its standard output."""
    profile = tmp_path / "profile"
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=True)
    return done.stdout


@pytest.fixture
def page_url(start_server, store, tmp_path) -> tuple[str, dict[str, str]]:
    """A server whose config has a 10-minute tracker timeout, and jobs of every kind."""
    config = tmp_path / "gardener.yml"
    config.write_text(
        "start_date: 2019-01-01\n"
        f"tracker:\n  timeout: {TIMEOUT_MINUTES}m\nmonitor:\n  polling_interval: 1m\n"
        "sources:\n  - {bucket: archive-demo, experiment: ndt, datatype: ndt7, pipeline: [],\n"
        "      target_datasets: {tmp: tmp_ndt, raw: raw_ndt}}\n"
    )
    now = datetime.now(UTC)
    jobs: dict[str, str] = {}

    def add(name: str, day: int, minutes_ago: float, *steps: tuple[State, str]) -> None:
        tracker = Tracker(store, clock=FakeClock(now - timedelta(minutes=minutes_ago)))
        record = tracker.add_job(Job("archive-demo", "ndt", "ndt7", date(2019, 1, day)))
        for state, detail in steps:
            tracker.set_status(record.key, state, detail)
        jobs[name] = record.key

    add("fresh", 1, 0.5, (State.PARSING, "archive 3 of 40"))
    add("aging", 2, 6, (State.PARSING, "archive 7 of 40"))
    add("expiring", 3, 9, (State.PARSING, "archive 9 of 40"))
    add("evil", 4, 1, (State.PARSING, EVIL))
    add("failed", 5, 2, (State.PARSING, "archive 1"), (State.FAILED, "parser crashed"))
    add("complete", 6, 3, (State.PARSING, ""), (State.POST_PROCESSING, ""), (State.COMPLETE, ""))
    return start_server(GARDENER_CONFIG=str(config)), jobs


def row_of(dom: str, key: str) -> str:
    """The table row of the job with ``key`` in the dumped DOM."""
    start = dom.index(f'title="{html.escape(key)}"')
    return dom[dom.rindex("<tr", 0, start) : dom.index("</tr>", start)]


def test_status_page_renders_jobs_escapes_script_and_colours_by_age(page_url, tmp_path):
    base, jobs = page_url
    assert requests.get(f"{base}/status", timeout=30).status_code == 200  # server is up
    dom = chromium(tmp_path, "--dump-dom", f"{base}/status?refresh=0")

    # Every job is rendered, with its state.
    for key in jobs.values():
        assert html.escape(key) in dom, key
    # The script is shown as text, never run: it would have set the title and added no element.
    found = re.search(r"<title>(.*?)</title>", dom, re.S)
    assert found, dom[:3000]
    title = found.group(1)
    assert "pwned" not in title and title.startswith("Gardener tracker")
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in dom
    assert "<script>document.title" not in dom
    # Counts per state at the top, each a link that filters by it.
    assert re.search(
        r'<a class="chip s-parsing[^"]*" href="\?state=parsing"><span class="n">4</span>', dom
    ), dom[:3000]
    assert re.search(r'<span class="n">1</span> failed', dom)
    # Age colouring against the 10-minute timeout; failed jobs stand out.
    assert "age-expiring" in row_of(dom, jobs["expiring"])
    assert "age-aging" in row_of(dom, jobs["aging"])
    assert "age-ok" in row_of(dom, jobs["fresh"])
    assert "age-failed" in row_of(dom, jobs["failed"])
    # The history is in the page without JavaScript.
    evil_row = row_of(dom, jobs["evil"])
    assert "<details>" in evil_row and evil_row.count("<li>") == 2
    # Auto-refresh is off when asked; on by default.
    assert 'http-equiv="refresh"' not in dom
    default = chromium(tmp_path, "--dump-dom", f"{base}/status")
    assert '<meta http-equiv="refresh" content="30">' in default


def test_status_page_filter_form_works_without_javascript(page_url, tmp_path):
    base, jobs = page_url
    served = requests.get(f"{base}/status", timeout=30).text
    assert "<script" not in served  # the page has no JavaScript at all
    found = re.search(r'<form class="filters" method="get">(.*?)</form>', served, re.S)
    assert found, served[:3000]
    form = found.group(1)
    assert {"state", "experiment", "datatype", "refresh"} <= set(re.findall(r'name="(\w+)"', form))
    # what submitting the form with state=failed, experiment=ndt asks for
    dom = chromium(
        tmp_path, "--dump-dom", f"{base}/status?state=failed&experiment=ndt&datatype=&refresh=0"
    )
    assert html.escape(jobs["failed"]) in dom
    assert html.escape(jobs["fresh"]) not in dom
    assert '<option selected="">failed</option>' in dom or "<option selected>failed" in dom


def test_status_page_screenshot(page_url, tmp_path):
    base, _ = page_url
    shot = Path(os.environ.get("STATUS_SCREENSHOT") or tmp_path / "status.png")
    chromium(
        tmp_path,
        f"--screenshot={shot}",
        "--window-size=1400,800",
        "--hide-scrollbars",
        f"{base}/status?refresh=0",
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one


#: A page that loads ``page`` (a file beside it) in a frame ``width`` px wide and puts in its
#: title whether the frame's page fits that width (no horizontal overflow), then the frame
#: page's own title.
FRAME = """<!doctype html><html><head><title>loading</title></head><body style="margin:0">
<iframe id="f" src="{page}" style="width:{width}px;height:900px;border:0"></iframe>
<script>
document.getElementById("f").addEventListener("load", function () {{
  var page = this.contentDocument, root = page.documentElement;
  var fits = root.scrollWidth <= root.clientWidth;
  document.title = (fits ? "fits" : "overflows " + root.scrollWidth + " > " + root.clientWidth)
    + " | " + page.title;
}});
</script></body></html>"""


def test_job_page_fits_desktop_and_phone_widths_and_escapes_script(page_url, tmp_path):
    """The job page of a job with a script in its detail, and of a failed one, at 1400 and
    390 px: no horizontal overflow, the script shown as text and never run.

    The page as served is saved beside a frame page (a script in a file may read a frame of
    the same directory, not one of the server's origin) that measures it.
    """
    from urllib.parse import quote

    base, jobs = page_url
    for name in ("evil", "failed"):
        served = requests.get(f"{base}/status/job?id={quote(jobs[name], safe='')}", timeout=30)
        assert served.status_code == 200, served.text[:2000]
        (tmp_path / f"{name}.html").write_bytes(served.content)
        for width in (1400, 390):
            frame = tmp_path / f"frame-{name}-{width}.html"
            frame.write_text(FRAME.format(page=f"{name}.html", width=width))
            dom = chromium(
                tmp_path,
                "--allow-file-access-from-files",
                "--virtual-time-budget=10000",
                "--dump-dom",
                frame.as_uri(),
            )
            found = re.search(r"<title>(.*?)</title>", dom, re.S)
            assert found, dom[:2000]
            fits, _, title = html.unescape(found.group(1)).partition(" | ")
            assert fits == "fits", (name, width, fits)
            assert title.startswith("Gardener job ") and "pwned" not in title, title


# --- the layout at desktop and phone widths, through WebDriver ------------------------------

CHROMEDRIVER = Path("/usr/bin/chromedriver")

#: What the layout check measures in the page, once loaded.
MEASURE = """
const visible = (selector) => {
  const element = document.querySelector(selector);
  if (!element) return false;
  const box = element.getBoundingClientRect();
  return box.width > 0 && box.height > 0 && getComputedStyle(element).visibility !== "hidden";
};
const links = (selector) => [...document.querySelectorAll(selector)].map((a) => a.getAttribute("href"));
return {
  scrollWidth: document.scrollingElement.scrollWidth,
  innerWidth: window.innerWidth,
  rowHeights: [...document.querySelectorAll("table.jobs tbody tr")].map(
    (row) => row.getBoundingClientRect().height),
  progress: visible("table.progress"),
  grid: visible("table.grid"),
  gridLinks: links("table.grid a.cell"),
  rowLinks: links("table.jobs a.page"),
  yesterdayLinks: links("table.progress a.badge"),
};
"""


class WebDriver:
    """A headless Chromium session through chromedriver's W3C WebDriver HTTP API."""

    def __init__(self, tmp_path: Path) -> None:
        from local.emulator import free_port

        self.port = free_port()
        self.log = (tmp_path / "chromedriver.log").open("w")
        # Its own process group holds the browsers it starts too: close() ends them all,
        # those of sessions a failed test never deleted included.
        self.process = subprocess.Popen(
            [str(CHROMEDRIVER), f"--port={self.port}"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        self.profile = tmp_path / "webdriver-profile"
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{self.base}/status", timeout=2).json()["value"]["ready"]:
                    return
            except (requests.RequestException, KeyError, ValueError):
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("chromedriver did not start")
            time.sleep(0.2)

    def session(self, width: int, height: int, phone: bool) -> str:
        """Start a browser of ``width`` CSS pixels (a phone's viewport with ``phone``)."""
        options: dict[str, Any] = {
            "binary": str(CHROMIUM),
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                f"--user-data-dir={self.profile}-{width}",
                f"--window-size={width},{height}",
            ],
        }
        if phone:
            options["mobileEmulation"] = {
                "deviceMetrics": {
                    "width": width,
                    "height": height,
                    "pixelRatio": 3.0,
                    "touch": True,
                }
            }
        answer = self.call(
            "POST",
            "/session",
            {"capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}},
        )
        return str(answer["sessionId"])

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        answer = requests.request(method, f"{self.base}{path}", json=body, timeout=90)
        value = answer.json()["value"]
        assert answer.status_code == 200, value
        return value

    def measure(self, session: str, url: str) -> dict[str, Any]:
        """Load ``url`` in the session and measure the page (:data:`MEASURE`)."""
        self.call("POST", f"/session/{session}/url", {"url": url})
        return dict(
            self.call("POST", f"/session/{session}/execute/sync", {"script": MEASURE, "args": []})
        )

    def close(self) -> None:
        """Quit every session's browser, then end chromedriver and whatever is left of its
        process group (chromedriver alone exits and leaves its browsers running)."""
        with contextlib.suppress(requests.RequestException):
            requests.get(f"{self.base}/shutdown", timeout=15)  # quits the sessions' browsers
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        time.sleep(0.5)  # what is left of the group after SIGTERM is killed
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture
def webdriver(tmp_path):
    if not CHROMEDRIVER.exists():
        pytest.skip("chromedriver not installed: apt-get install -y chromium-driver (Debian)")
    driver = WebDriver(tmp_path)
    try:
        yield driver
    finally:
        driver.close()


@pytest.fixture
def recent_url(page_url, store) -> tuple[str, list[str]]:
    """The page's server, with daily jobs of yesterday and of three days ago for the grid."""
    base, _ = page_url
    today = datetime.now(UTC).date()
    tracker = Tracker(store)
    recent = []
    for back, steps in ((1, (State.PARSING,)), (3, (State.PARSING, State.FAILED))):
        record = tracker.add_job(Job("archive-demo", "ndt", "ndt7", today - timedelta(days=back)))
        for state in steps:
            tracker.set_status(record.key, state, "a long detail " * 20)
        recent.append(record.key)
    return base, recent


@pytest.mark.parametrize(("width", "phone"), [(1400, False), (390, True)], ids=["desktop", "phone"])
def test_status_page_fits_desktop_and_phone_widths_with_progress_and_grid(
    recent_url, webdriver, width, phone
):
    base, recent = recent_url
    session = webdriver.session(width, 844, phone)
    try:
        got = webdriver.measure(session, f"{base}/status?refresh=0")
        if os.environ.get("STATUS_SCREENSHOT"):  # keep what the browser showed, beside it
            shot = Path(os.environ["STATUS_SCREENSHOT"])
            png = webdriver.call("GET", f"/session/{session}/screenshot")
            shot.with_name(f"{shot.stem}-{width}{shot.suffix}").write_bytes(base64.b64decode(png))
    finally:
        webdriver.call("DELETE", f"/session/{session}")
    assert got["innerWidth"] == width
    # the page never scrolls sideways: wide tables scroll inside their own box
    assert got["scrollWidth"] <= got["innerWidth"], got
    assert got["progress"] and got["grid"], got
    # every job of the grid links to its page; so does every row and yesterday's badge
    assert sorted(got["gridLinks"]) == sorted(f"/status/job?id={quote(k, safe='')}" for k in recent)
    assert len(got["rowLinks"]) == 8 and all(
        link.startswith("/status/job?id=") for link in got["rowLinks"]
    )
    assert got["yesterdayLinks"] == [f"/status/job?id={quote(recent[0], safe='')}"]
    assert got["rowHeights"] and max(got["rowHeights"]) < 300, got["rowHeights"]


def browsers_using(profile: Path) -> list[int]:
    """The ids of the live (not zombie) processes whose command line names ``profile``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(profile) in command and state != "Z":
            found.append(int(entry.name))
    return found


def test_closing_the_webdriver_ends_the_browsers_of_sessions_left_open(tmp_path):
    """A test that fails before deleting its session (or whose session request timed out)
    leaves no Chromium behind: chromedriver alone would exit and orphan it."""
    if not CHROMEDRIVER.exists():
        pytest.skip("chromedriver not installed: apt-get install -y chromium-driver (Debian)")
    driver = WebDriver(tmp_path)
    try:
        driver.session(390, 844, phone=True)  # never deleted
        assert browsers_using(driver.profile), "the session started no browser"
    finally:
        driver.close()
    deadline = time.monotonic() + 10
    while browsers_using(driver.profile) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert browsers_using(driver.profile) == []
