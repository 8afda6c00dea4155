"""The errors that mean "bad input": a file, line or field the user can fix.

Each command turns a :class:`UserError` into one ``error: ...`` line and exit status 2
(:func:`echostream_fairseq.cli.common.run_main`); any other exception is a bug and keeps its
traceback. The subclasses stay ``ValueError``/``RuntimeError`` as well, for code that caught
those before.
"""

from __future__ import annotations

import logging
import os
import sys
from types import TracebackType
from typing import Optional, Type

__all__ = ["ConfigError", "DEBUG_VARIABLE", "InputError", "UserError", "install_excepthook"]

#: set (to anything but 0) to see the traceback of user errors too
DEBUG_VARIABLE = "ECHOSTREAM_DEBUG"


class UserError(Exception):
    """Bad input a user can fix (a file, a line, a field); printed as one line, exit status 2."""


class InputError(UserError, ValueError):
    """A file, option or value given that cannot be used; the message names it."""


class ConfigError(InputError):
    """A config file (training recipe or decode settings) that cannot be used; names the file."""


def debugging() -> bool:
    return os.environ.get(DEBUG_VARIABLE, "0") not in ("", "0")


def install_excepthook() -> None:
    """Programs whose ``main`` is not ours (``simuleval`` running an EchoStream agent,
    ``fairseq-train``/``fairseq-generate`` loading a checkpoint through the plugin) print an
    uncaught :class:`UserError` as one ``error: ...`` line and exit with status 2, as our
    commands do; every other exception keeps Python's traceback (idempotent)."""
    previous = sys.excepthook
    if getattr(previous, "_echostream", False):
        return

    def excepthook(kind: Type[BaseException], value: BaseException,
                   traceback: Optional[TracebackType]) -> None:
        if not isinstance(value, UserError) or debugging():
            previous(kind, value, traceback)
            return
        print(f"error: {value}", file=sys.stderr)
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(2)  # the only way to an exit status other than 1 once an exception is uncaught

    excepthook._echostream = True  # type: ignore[attr-defined]
    sys.excepthook = excepthook
