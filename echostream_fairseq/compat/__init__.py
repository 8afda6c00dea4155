"""Every change EchoStream makes to a third-party library, listed in :data:`PATCHES`.

One module per upstream library (:mod:`.torch`, :mod:`.fairseq`, :mod:`.logging` for fairseq's
import side effect, :mod:`.simuleval`). Each ``install()`` is idempotent and first compares the
installed version with the pinned one (:func:`check_version`: one :class:`CompatVersionWarning`
per library and version, the patch is applied all the same). ``docs/compat.md`` explains each.

* :func:`install` (run by ``import echostream_fairseq``): torch, fairseq, logging: what loading,
  training and fairseq-generate need.
* :func:`install_simuleval`: the SimulEval fixes, called by the agents and the evaluation code
  only, so importing the package never touches SimulEval.
"""

from __future__ import annotations

from typing import List

from echostream_fairseq.compat import fairseq as _fairseq
from echostream_fairseq.compat import logging as _logging
from echostream_fairseq.compat import simuleval as _simuleval
from echostream_fairseq.compat import torch as _torch
from echostream_fairseq.compat._patch import CompatVersionWarning, Patch, check_version

__all__ = ["CompatVersionWarning", "PATCHES", "Patch", "check_version", "install",
           "install_simuleval"]

#: every patch, in the order :func:`install` then :func:`install_simuleval` apply them
PATCHES: List[Patch] = [*_logging.PATCHES, *_torch.PATCHES, *_fairseq.PATCHES,
                        *_simuleval.PATCHES]


def install() -> None:
    """The torch, fairseq and logging patches (idempotent)."""
    _logging.install()  # first: it is the first import of fairseq.models
    _torch.install()
    _fairseq.install()


def install_simuleval() -> None:
    """The SimulEval patches (idempotent); imports SimulEval."""
    _simuleval.install()
