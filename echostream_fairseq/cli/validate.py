"""``echostream-validate``: check manifests (columns, files, durations, units) before training.

Prints every problem, one per line, naming the file, line and column; exit status 1 if any.
Unit ids are checked against ``--num-units K``, else against the K of the corpus report beside
the manifest (``report.json``); with neither, the output says they were not range-checked.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

from echostream_fairseq.cli.common import add_log_level_argument, positive_int, setup_logging
from echostream_fairseq.data.validate import find_problems


def corpus_num_units(data_dir: Path) -> Optional[int]:
    """K of the corpus built in ``data_dir`` (its ``report.json``), or None."""
    try:
        report = json.loads((data_dir / "report.json").read_text(encoding="utf-8"))
        return int(report["units"]["num_units"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifests", nargs="+", type=Path, help="manifest TSV file(s) to check")
    parser.add_argument("--num-units", type=positive_int, default=None,
                        help="unit vocabulary size K (--target-code-size); units must be < K")
    add_log_level_argument(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    status = 0
    for manifest in args.manifests:
        num_units = args.num_units or corpus_num_units(manifest.parent)
        if num_units is None:
            print(f"{manifest}: unit ids not range-checked (no --num-units, no "
                  f"{manifest.parent / 'report.json'})")
        problems = find_problems(manifest, num_units)
        for problem in problems:
            print(problem)
        print(f"{manifest}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
        status = status or int(bool(problems))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
