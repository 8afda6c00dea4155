"""``echostream-validate``: check manifests (columns, files, durations, units) before training.

Prints every problem, one per line, naming the file, line and column; exit status 1 if any.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from echostream_fairseq.cli.common import add_log_level_argument, positive_int, setup_logging
from echostream_fairseq.data.validate import find_problems


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
        problems = find_problems(manifest, args.num_units)
        for problem in problems:
            print(problem)
        print(f"{manifest}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
        status = status or int(bool(problems))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
