"""Generated figures in docs/benchmarks.md: each benchmark owns one block between two markers.

A block looks like `<!-- NAME:begin -->` ... `<!-- NAME:end -->`. Writing replaces what is
between the markers and keeps everything else (the prose around the figures is written by
hand); a block not in the file yet is appended under a heading of its own.
"""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def replace_block(doc: str, name: str, text: str, *, heading: str) -> str:
    begin, end = markers(name)
    block = f"{begin}\n{text.strip()}\n{end}"
    start = doc.find(begin)
    if start < 0:
        return f"{doc.rstrip()}\n\n{heading}\n\n{block}\n"
    stop = doc.find(end, start)
    if stop < 0:
        # A begin without its end would swallow the rest of the page on the next write.
        raise ValueError(f"{DOCS.name}: {begin} has no {end}")
    return doc[:start] + block + doc[stop + len(end) :]


def write_block(name: str, text: str, *, heading: str, path: Path = DOCS) -> None:
    path.write_text(replace_block(path.read_text(), name, text, heading=heading))
