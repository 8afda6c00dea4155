#!/usr/bin/env python3
"""Render the README results tables (Markdown) from one or more ``scripts/evaluate.py`` reports.

Usage::

    python scripts/results_table.py exp/train_mini/eval/report.json [more/report.json ...] \\
        [--ceilings data/report.json exp/ceilings/vocoder.json] [--output table.md] \\
        [--readme README.md]

One row per report and condition (chunk sizes, then offline); with several reports a ``model``
column names each by its ``label``. ``--ceilings`` adds a table of the ASR-BLEU that speech which
is not the model's reaches (the corpus' piper speech; ground-truth units through the vocoder,
from ``scripts/measure_vocoder.py --out``; the reference text through a model's T2U, from
``scripts/measure_t2u.py --out``). ``--readme`` writes the tables into that file
between ``<!-- results:begin -->`` and ``<!-- results:end -->`` (``--block`` names another
pair). Without reports only the ``--ceilings`` table is written (e.g. a blank-penalty sweep of
``measure_t2u.py`` files). The numbers are the files' own, so README figures are generated,
never typed.
"""

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="*", type=Path,
                        help="report.json files of scripts/evaluate.py (none: the --ceilings "
                             "table alone)")
    parser.add_argument("--ceilings", nargs="+", type=Path, default=[],
                        help="corpus report.json, scripts/measure_vocoder.py --out and/or "
                             "scripts/measure_t2u.py --out JSON files")
    parser.add_argument("--output", type=Path, help="also write the tables to this file")
    parser.add_argument("--readme", type=Path,
                        help="write the tables into this Markdown file between its "
                             "'<!-- BLOCK:begin -->' and '<!-- BLOCK:end -->' lines")
    parser.add_argument("--block", default="results",
                        help="marker name of the --readme block (default: results)")
    args = parser.parse_args(argv)
    # imported here so that --help does not pay for the plugin's (torch, fairseq) import
    from echostream_fairseq.evaluation.report import (ceilings_table, load_ceilings, load_report,
                                                      replace_between_markers, results_table)

    if not args.reports and not args.ceilings:
        parser.error("give report.json files, --ceilings files or both")
    if not args.reports and args.readme and args.block == "results":
        parser.error("a --ceilings table alone goes into its own --block, not the results one")
    try:
        reports = [load_report(path) for path in args.reports]
        ceilings = [row for path in args.ceilings for row in load_ceilings(path)]
        if not reports:
            table = ceilings_table(ceilings)
        else:
            table = results_table(reports)
            if ceilings:
                table += ("\nCeilings (ASR-BLEU of speech that is not the model's, or of the "
                          "model's speech for the reference text; same recogniser and "
                          f"normalisation):\n\n{ceilings_table(ceilings)}")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.readme:
        try:
            readme = replace_between_markers(args.readme.read_text(encoding="utf-8"), table,
                                             args.block)
        except (OSError, ValueError) as error:
            print(f"error: {args.readme}: {error}", file=sys.stderr)
            return 2
        args.readme.write_text(readme, encoding="utf-8")
    if args.output:
        args.output.write_text(table, encoding="utf-8")
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
