#!/usr/bin/env python
"""Summarise a ``fairseq-train --log-format json`` log: loss components over time and speed.

Usage:
    python scripts/summarize_training.py exp/demo/train.log [--markdown out.md] [--json out.json]

Prints a Markdown table (one row per logged train interval, plus the validation rows) with the
total loss, each component the ``speech_to_unit_2pass_ctc_asr_st`` criterion logs, wall time and
training speed in utterances per second (fairseq's ``bsz`` x ``ups``).
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List

from echostream_fairseq.training_logs import json_records

COMPONENTS = {
    "unit CTC": "unit_ctc_loss",
    "MT CE": "multitask_target_unigram_loss",
    "ASR CTC": "multitask_source_unigram_loss",
    "ST CTC": "multitask_ctc_target_unigram_loss",
}


def read_records(log_path: Path, tag: str) -> List[Dict[str, float]]:
    """The JSON records fairseq printed after ``| <tag> |`` in ``log_path`` (prefix removed)."""
    try:
        return json_records(log_path.read_text(errors="replace"), tag, source=str(log_path))
    except ValueError as error:
        raise SystemExit(str(error))


def _cell(value: float, digits: int) -> str:
    return "" if value != value else f"{value:.{digits}f}"  # NaN (not logged) -> empty cell


def table(train: List[Dict[str, float]], valid: List[Dict[str, float]]) -> str:
    header = ["split", "update", "wall (s)", "loss", *COMPONENTS, "utt/s"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for split, records in (("train", train), ("valid", valid)):
        for record in records:
            speed = record.get("bsz", float("nan")) * record.get("ups", float("nan"))
            cells = [split, f"{record.get('num_updates', record.get('update', 0)):.0f}",
                     _cell(record.get("wall", float("nan")), 0), _cell(record.get("loss", float("nan")), 3),
                     *(_cell(record.get(key, float("nan")), 3) for key in COMPONENTS.values()),
                     "" if split == "valid" else f"{speed:.2f}"]
            rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", type=Path, help="fairseq-train output written with --log-format json")
    parser.add_argument("--valid-subset", default="dev_sampled.units",
                        help="the validation subset name fairseq tagged its records with")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--json", type=Path, help="also write the parsed records to this file")
    args = parser.parse_args(argv)
    if not args.log.is_file():
        parser.error(f"{args.log}: no such log file")
    train, valid = read_records(args.log, "train_inner"), read_records(args.log, args.valid_subset)
    if not train:
        parser.error(f"{args.log}: no '| train_inner |' JSON records (was --log-format json used?)")
    text = table(train, valid)
    speeds = [r["bsz"] * r["ups"] for r in train if "bsz" in r and "ups" in r]
    text += f"\n\nMean training speed: {sum(speeds) / len(speeds):.2f} utterances/s over {len(speeds)} intervals.\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({"train": train, "valid": valid}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
