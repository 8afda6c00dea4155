"""The README is a front page: short, every docs page linked, the seed's two commands and the
streaming example on it, and no measured figure typed outside the blocks ``make results`` writes."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
SEED_COMMANDS = (
    "python scripts/train.py --config configs/train/echostream_mini.yaml --train-manifest "
    "data/train_sampled.units.tsv --dev-manifest data/dev_sampled.units.tsv --save-dir "
    "checkpoints_mini --num-workers 0 --batch-size 8",
    "python scripts/evaluate.py --config configs/train/echostream_mini.yaml --checkpoint "
    "checkpoints_mini/checkpoint_best.pt --test-manifest data/test_sampled.tsv",
)
# a measured figure: a number with a unit of time, a percentage, or a score named before it
FIGURE = re.compile(r"\b\d[\d,.]*\s*(?:ms|s|min|h|%|MB|GB)\b|(?:BLEU|WER|AL|RTF)\s*(?:of\s*)?\d")


def _outside_generated_blocks(text: str) -> str:
    return re.sub(r"<!-- (\w+):begin -->.*?<!-- \1:end -->", "", text, flags=re.S)


def test_the_readme_is_short_and_starts_with_the_two_commands():
    assert len(README.splitlines()) < 250
    quick_start = README[README.index("## Quick start"):]
    assert quick_start.index("make demo") < quick_start.index("make test")


def test_every_docs_page_is_linked():
    pages = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md"))
    assert len(pages) >= 12
    assert [page for page in pages if f"]({page}" not in README] == []


def test_the_seed_commands_and_the_streaming_example_are_on_the_front_page():
    for command in SEED_COMMANDS:
        assert command in README
    assert "examples/stream_a_wav.py" in README


def test_no_figure_is_typed_outside_the_generated_blocks():
    outside = _outside_generated_blocks(README)
    assert "<!-- shipped:begin -->" in README and "<!-- timings:begin -->" in README
    assert FIGURE.findall(outside) == []
