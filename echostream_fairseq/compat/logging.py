"""The root logger, as fairseq's import leaves it.

fairseq 0.12's ``fairseq/models/wav2vec/wav2vec2_classification.py`` calls
``logging.basicConfig(level=DEBUG)`` at import time, and ``import fairseq.models`` imports it:
every program importing EchoStream would turn into a DEBUG logger. :func:`install` imports
fairseq's models and undoes only that (a root logger someone configured before is left alone).
"""

from __future__ import annotations

import logging
import sys

from echostream_fairseq.compat._patch import Patch

__all__ = ["LIBRARY", "PATCHES", "PINNED", "install"]

logger = logging.getLogger(__name__)

# the version guard runs in compat.fairseq, which patches the same library
LIBRARY, PINNED = "ve-fairseq", "0.12.3"

_installed = False


def _is_installed() -> bool:
    return _installed and "fairseq.models" in sys.modules


PATCHES = [
    Patch("logging.root", LIBRARY, PINNED,
          "fairseq/models/wav2vec/wav2vec2_classification.py runs logging.basicConfig(level=DEBUG) "
          "when fairseq.models is imported; the handler and level it adds to an unconfigured "
          "root logger are removed",
          _is_installed),
]


def install() -> None:
    """Import ``fairseq.models`` keeping an unconfigured root logger unconfigured (idempotent)."""
    global _installed
    if _installed:
        return
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    import fairseq.models  # noqa: F401

    if not handlers and root.handlers:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        root.setLevel(level)
    _installed = True
