"""torch: allow-list the non-tensor types a fairseq checkpoint pickles.

torch 2.6 made ``torch.load`` weights-only by default (pytorch/pytorch#137602), and fairseq 0.12
pickles an ``argparse.Namespace`` (older checkpoints: omegaconf objects) next to the weights, so
every fairseq checkpoint load fails with "Unsupported global". Rather than ``weights_only=False``
(which runs whatever a pickle asks for) the exact types are allow-listed.
"""

from __future__ import annotations

import logging

import torch

from echostream_fairseq.checkpoint_safety import SAFE_CHECKPOINT_GLOBALS
from echostream_fairseq.compat._patch import Patch, check_version

__all__ = ["LIBRARY", "PATCHES", "PINNED", "install"]

logger = logging.getLogger(__name__)

LIBRARY, PINNED = "torch", "2.11.0"


def _safe_globals_installed() -> bool:
    allowed = torch.serialization.get_safe_globals()
    return all(item in allowed for item in SAFE_CHECKPOINT_GLOBALS)


PATCHES = [
    Patch("torch.serialization.get_safe_globals", LIBRARY, PINNED,
          "weights-only loading (the default since torch 2.6, pytorch/pytorch#137602) refuses the "
          "argparse.Namespace/omegaconf objects of fairseq checkpoints: allow-list exactly those "
          "(echostream_fairseq.checkpoint_safety.SAFE_CHECKPOINT_GLOBALS)",
          _safe_globals_installed),
]


def install() -> None:
    """Allow-list fairseq's checkpoint types (idempotent: torch keeps a set-like list)."""
    check_version(LIBRARY, torch.__version__, PINNED)
    if _safe_globals_installed():
        return
    torch.serialization.add_safe_globals(SAFE_CHECKPOINT_GLOBALS)
    logger.debug("torch weights-only loading: fairseq checkpoint types allow-listed")
