"""The status page in a real browser: headless Chromium loads it from a running function server.

Skipped where ``/usr/bin/chromium`` is absent (Debian: ``apt-get install chromium``).
Set ``STATUS_SCREENSHOT=/path/page.png`` to keep a screenshot of the page.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

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
