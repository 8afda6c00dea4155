"""What the benches share: their output options and the command line a results file records."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Callable, List, NoReturn, Optional


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """``--output`` (the figures as JSON), ``--results-file`` (a RESULTS.md section) and
    ``--label`` (the model's name there)."""
    a = parser.add_argument
    a("--output", type=Path, default=None, help="also write the figures to this JSON file")
    a("--results-file", type=Path, default=None,
      help="also write the run as a RESULTS.md section (recipes/deen_mini/results/*.json)")
    a("--label", default=None, help="what the results file calls the model (default: its path)")
    a("--command", dest="recipe_command", default=None,
      help="what regenerates the results file, recorded in it (default: this command)")


def positive_ints(parser: argparse.ArgumentParser, option: str, text: str) -> List[int]:
    """``--option``'s comma-separated positive integers, sorted and de-duplicated; anything
    else is a usage error naming the option (exit 2)."""
    try:
        values = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        _refuse(parser, option, text)
    if not values or values[0] < 1:
        _refuse(parser, option, text)
    return values


def _refuse(parser: argparse.ArgumentParser, option: str, text: str) -> NoReturn:
    parser.error(f"{option} needs positive integers, comma-separated, got {text!r}")


def add_randomise_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--randomise", type=float, default=0.0, metavar="SCALE",
        help="add seeded Gaussian noise of this scale to every weight (as the tests' "
             "randomise_checkpoint), so that an under-trained model writes all along the "
             "stream: a stress test of the write path")


def bench_command(script: str, argv: Optional[List[str]],
                  recipe_command: Optional[str] = None) -> str:
    """What reruns ``bench/<script>``: ``recipe_command`` when given, else this run's command
    line (one torch thread)."""
    if recipe_command:
        return recipe_command
    return f"OMP_NUM_THREADS=1 python bench/{script} " + shlex.join(
        argv if argv is not None else sys.argv[1:])


def run_bench(body: Callable[[], Optional[int]], reads_files_only: bool = True) -> int:
    """Run a bench's body as the commands run theirs: bad input (a checkpoint, corpus or wav
    that cannot be read) is one line naming the file and exit status 2. ``reads_files_only``:
    an ``OSError`` is a file's; False where the bench also talks over sockets, whose errors are
    not the user's input and keep their traceback."""
    from echostream_fairseq.cli.common import run_main

    return run_main(body, (OSError,) if reads_files_only else ())
