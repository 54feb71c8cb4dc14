"""The README's transition table is the one the code declares."""

from __future__ import annotations

from pathlib import Path

from shared.transitions import as_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_transition_table_matches_the_code() -> None:
    text = README.read_text()
    block = text.split("<!-- transitions:begin -->\n")[1].split("\n<!-- transitions:end -->")[0]
    assert block == as_markdown(), "regenerate the README table with transitions.as_markdown()"
