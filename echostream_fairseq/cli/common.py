"""What every EchoStream command shares: logging options, the one-line error path, provenance.

A command's ``main(argv)`` builds its parser, then hands its body to :func:`run_main`, which
turns the errors that mean "bad input" into one ``error: ...`` line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Tuple, Type

from echostream_fairseq.errors import UserError, debugging
from echostream_fairseq.provenance import provenance

__all__ = ["EXIT_USER_ERROR", "LOG_LEVELS", "UserError", "add_log_level_argument",
           "add_num_threads_argument", "add_run_manifest_arguments", "check_output_dir",
           "count_or_all", "positive_int",
           "provenance", "run_main", "setup_logging"]

EXIT_USER_ERROR = 2
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_LOG_FORMAT = "%(asctime)s | %(levelname)s | %(name)s | %(message)s"




def add_log_level_argument(parser: argparse.ArgumentParser, default: str = "INFO") -> None:
    parser.add_argument("--log-level", choices=LOG_LEVELS, default=default,
                        help=f"logging level (default {default})")


def setup_logging(level: str = "INFO", stream: Any = None) -> None:
    """Root logging for a command: ``level``, and a handler on stderr (or ``stream``) unless the
    root logger has one already (a caller's, or pytest's capture, stays in place)."""
    logging.basicConfig(format=_LOG_FORMAT, stream=stream or sys.stderr)
    logging.getLogger().setLevel(getattr(logging, level))


def add_num_threads_argument(parser: Any, what: str = "torch CPU threads") -> None:
    """``--num-threads`` (``--threads``: the old spelling); one thread is the default because
    more are slower for chunk-sized work on shared CPUs."""
    parser.add_argument("--num-threads", "--threads", dest="num_threads", type=positive_int,
                        default=1, help=f"{what} (default 1; --threads: deprecated spelling)")


def add_run_manifest_arguments(parser: Any, save_dir_help: str) -> None:
    """The training and validation manifests (their folder is fairseq's data folder) and the
    checkpoint folder of a training run: what ``echostream-train`` and ``echostream-advise``
    are given alike."""
    parser.add_argument("--train-manifest", type=Path, default=Path("data/train_sampled.units.tsv"),
                        help="training manifest; its folder is fairseq's data folder (YAMLs, "
                             "dictionaries)")
    parser.add_argument("--dev-manifest", type=Path, default=Path("data/dev_sampled.units.tsv"),
                        help="validation manifest, in the same folder as the training manifest")
    parser.add_argument("--save-dir", type=Path, help=save_dir_help)


def check_output_dir(path: Path) -> None:
    """Refuse, before any work, an output folder that could not be written at the end: a file
    in its place, or a nearest existing parent that is not a writable folder."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: exists and is not a folder (--output-dir)")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{path}: cannot be created or written ({parent} is not a writable "
                        "folder)")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def count_or_all(text: str) -> Optional[int]:
    """argparse type: a positive integer, or ``all`` (None: no limit; slicing with it keeps all)."""
    return None if text == "all" else positive_int(text)


def run_main(body: Callable[[], Optional[int]],
             user_errors: Tuple[Type[BaseException], ...] = (UserError,)) -> int:
    """Run a command's body; a :class:`UserError` or any of ``user_errors`` becomes
    ``error: <message>`` on stderr and exit status 2 (with ``--log-level DEBUG`` or
    ``ECHOSTREAM_DEBUG=1`` it is raised, traceback and all)."""
    try:
        status = body()
    except (UserError, *user_errors) as error:
        if debugging() or logging.getLogger().isEnabledFor(logging.DEBUG):
            raise
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0 if status is None else status
