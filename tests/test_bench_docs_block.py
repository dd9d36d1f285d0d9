"""bench/docs_block.py: a benchmark rewrites only its own figures in docs/benchmarks.md."""

import pytest

from bench import docs_block

PAGE = """# Benchmarks

## Masking

Hand-written prose.

<!-- masking:begin -->
old figures
<!-- masking:end -->

More prose.

<!-- load:begin -->
load figures
<!-- load:end -->
"""


def test_a_block_is_replaced_and_everything_else_kept():
    page = docs_block.replace_block(PAGE, "masking", "\nnew figures\n", heading="## Masking")

    assert "old figures" not in page
    assert "<!-- masking:begin -->\nnew figures\n<!-- masking:end -->" in page
    assert page.replace("new figures", "old figures") == PAGE


def test_writing_twice_gives_the_same_page():
    once = docs_block.replace_block(PAGE, "load", "fresh", heading="## WebSocket load")

    assert docs_block.replace_block(once, "load", "fresh", heading="## WebSocket load") == once
    assert "masking:begin -->\nold figures" in once


def test_a_new_block_is_appended_under_its_heading():
    page = docs_block.replace_block(PAGE, "audit", "audit figures", heading="## Audit log")

    assert page.startswith(PAGE.rstrip())
    assert page.endswith("## Audit log\n\n<!-- audit:begin -->\naudit figures\n<!-- audit:end -->\n")


def test_a_begin_without_its_end_is_refused_rather_than_eating_the_page():
    broken = PAGE.replace("<!-- masking:end -->", "")

    with pytest.raises(ValueError, match="masking:begin"):
        docs_block.replace_block(broken, "masking", "x", heading="## Masking")


def test_write_block_updates_the_file(tmp_path):
    path = tmp_path / "benchmarks.md"
    path.write_text(PAGE)

    docs_block.write_block("load", "new load figures", heading="## WebSocket load", path=path)

    assert "<!-- load:begin -->\nnew load figures\n<!-- load:end -->" in path.read_text()
    assert "old figures" in path.read_text()
