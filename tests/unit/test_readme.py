"""README.md and docs/: generated tables match the code, the README stays short, links resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.transitions import as_markdown

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
#: The README is the five-minute read; everything else lives in docs/.
README_MAX_LINES = 300
#: The benchmark reports in docs/performance.md, each between its begin and end markers.
BENCHMARK_BLOCKS = ("bench", "lifecycle", "scale", "hot_job")

_FENCE = re.compile(r"^\s*```")
_INLINE_CODE = re.compile(r"`[^`]*`")
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def markdown_files() -> list[Path]:
    """README.md and every Markdown file under docs/."""
    return [README, *sorted(DOCS.glob("*.md"))]


def prose(text: str) -> str:
    """``text`` without its fenced code blocks and inline code (links may span lines)."""
    lines: list[str] = []
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            lines.append(line)
    return _INLINE_CODE.sub("", "\n".join(lines))


def anchors(path: Path) -> set[str]:
    """The heading anchors GitHub gives ``path``'s headings (``-1``, ``-2`` on repeats)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    in_fence = False
    for line in path.read_text().splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        match = None if in_fence else _HEADING.match(line)
        if match is None:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(2).lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def section(path: Path, begin: str, end: str) -> str:
    """The text of ``path`` between the lines ``begin`` and ``end`` (each there exactly once)."""
    text = path.read_text()
    assert text.count(begin) == 1, f"{path.name}: {begin!r} should occur exactly once"
    assert text.count(end) == 1, f"{path.name}: {end!r} should occur exactly once"
    return text.split(begin + "\n")[1].split("\n" + end)[0]


def test_transition_table_matches_the_code() -> None:
    block = section(DOCS / "design.md", "<!-- transitions:begin -->", "<!-- transitions:end -->")
    assert block == as_markdown(), "regenerate docs/design.md's table: transitions.as_markdown()"


@pytest.mark.parametrize("name", BENCHMARK_BLOCKS)
def test_each_benchmark_report_has_its_markers_once(name: str) -> None:
    block = section(DOCS / "performance.md", f"<!-- {name}:begin -->", f"<!-- {name}:end -->")
    assert block.strip(), f"the {name} report in docs/performance.md is empty"


def test_readme_is_a_five_minute_read() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/"


def test_the_readme_links_every_doc() -> None:
    linked = {link.split("#")[0] for link in _LINK.findall(prose(README.read_text()))}
    missing = {f"docs/{doc.name}" for doc in DOCS.glob("*.md")} - linked
    assert not missing, f"README.md does not link {sorted(missing)}"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_a_file_and_anchor_that_exist(path: Path) -> None:
    broken = []
    for link in _LINK.findall(prose(path.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", link):  # https:, mailto:: not ours to check
            continue
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        if not file.exists():
            broken.append(f"{link}: no file {target}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{link}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert not broken, f"{path.relative_to(ROOT)}: broken links: {broken}"
