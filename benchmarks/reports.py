"""What the benchmark scripts share in writing their reports."""

from __future__ import annotations

from pathlib import Path

#: where a report's notes, written by hand below its measured part, begin
NOTES = "## Reading these numbers"


def write_report(path: Path, text: str, marker: str = NOTES) -> None:
    """Write a report's measured part; the notes from ``marker`` on in the report written before
    are kept (a rerun replaces the numbers, not what was written about them)."""
    previous = path.read_text() if path.exists() else ""
    notes = previous[previous.index(marker) :] if marker in previous else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + ("\n" + notes if notes else ""))
