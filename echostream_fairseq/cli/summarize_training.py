"""``echostream-summarize-training``: summarise a ``fairseq-train`` log (json or simple format):
loss components over time and speed.

Usage:
    echostream-summarize-training exp/demo/train.log [--markdown out.md] [--output out.json]

Prints a Markdown table (one row per logged train interval, plus the validation rows) with the
total loss, each component the ``speech_to_unit_2pass_ctc_asr_st`` criterion logs, wall time and
training speed in utterances per second (fairseq's ``bsz`` x ``ups``).
"""

import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from echostream_fairseq.cli.common import UserError, add_log_level_argument, run_main, setup_logging
from echostream_fairseq.training_logs import log_records

COMPONENTS = {
    "unit CTC": "unit_ctc_loss",
    "MT CE": "multitask_target_unigram_loss",
    "ASR CTC": "multitask_source_unigram_loss",
    "ST CTC": "multitask_ctc_target_unigram_loss",
}


def read_records(log_path: Path, tag: str) -> List[Dict[str, float]]:
    """The JSON records fairseq printed after ``| <tag> |`` in ``log_path`` (prefix removed)."""
    try:
        return log_records(log_path.read_text(errors="replace"), tag, source=str(log_path))
    except ValueError as error:
        raise UserError(str(error)) from None


def _cell(value: float, digits: int) -> str:
    return "" if value != value else f"{value:.{digits}f}"  # NaN (not logged) -> empty cell


def table(train: List[Dict[str, float]], valid: List[Dict[str, float]]) -> str:
    header = ["split", "update", "wall (s)", "loss", *COMPONENTS, "utt/s"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for split, records in (("train", train), ("valid", valid)):
        for record in records:
            speed = record.get("bsz", float("nan")) * record.get("ups", float("nan"))
            cells = [split, f"{record.get('num_updates', record.get('update', 0)):.0f}",
                     _cell(record.get("wall", float("nan")), 0),
                     _cell(record.get("loss", float("nan")), 3),
                     *(_cell(record.get(key, float("nan")), 3) for key in COMPONENTS.values()),
                     "" if split == "valid" else f"{speed:.2f}"]
            rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a = parser.add_argument
    a("log", type=Path, help="fairseq-train's console output or --log-file, written with "
                            "--log-format json or simple")
    a("--valid-subset", default="dev_sampled.units",
      help="the validation subset name fairseq tagged its records with")
    a("--markdown", type=Path, help="also write the table to this file")
    a("--output", type=Path, help="also write the parsed records to this JSON file")
    add_log_level_argument(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    return run_main(lambda: _summarize(args))


def _summarize(args: argparse.Namespace) -> None:
    if not args.log.is_file():
        raise UserError(f"{args.log}: no such log file")
    train, valid = read_records(args.log, "train_inner"), read_records(args.log, args.valid_subset)
    if not train:
        raise UserError(f"{args.log}: no training records (fairseq-train's output with "
                        "--log-format json or simple)")
    text = table(train, valid)
    speeds = [r["bsz"] * r["ups"] for r in train if "bsz" in r and "ups" in r]
    text += (f"\n\nMean training speed: {sum(speeds) / len(speeds):.2f} utterances/s over "
             f"{len(speeds)} intervals.\n")
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.output:
        args.output.write_text(json.dumps({"train": train, "valid": valid}, indent=1))


if __name__ == "__main__":
    raise SystemExit(main())
