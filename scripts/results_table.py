#!/usr/bin/env python3
"""Render the README results tables (Markdown) from one or more ``scripts/evaluate.py`` reports.

Usage::

    python scripts/results_table.py exp/train_mini/eval/report.json [more/report.json ...] \\
        [--output table.md]

One row per report and condition (chunk sizes, then offline); with several reports a ``model``
column names each by its ``label``. The numbers are the reports' own, so README figures are
generated, never typed.
"""

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", type=Path, help="report.json files of scripts/evaluate.py")
    parser.add_argument("--output", type=Path, help="also write the tables to this file")
    args = parser.parse_args(argv)
    # imported here so that --help does not pay for the plugin's (torch, fairseq) import
    from echostream_fairseq.evaluation.report import load_report, results_table

    try:
        reports = [load_report(path) for path in args.reports]
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    table = results_table(reports)
    if args.output:
        args.output.write_text(table, encoding="utf-8")
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
