"""SimulEval 1.1.4: two bugs of ``--computation-aware`` runs.

Not applied on package import (training and fairseq-generate never run its evaluator): the agents
and the evaluation code call :func:`echostream_fairseq.compat.install_simuleval`.
"""

from __future__ import annotations

import functools
import logging
from argparse import Namespace
from importlib import metadata
from typing import Any, Callable, Dict

from echostream_fairseq.compat._patch import Patch, check_version, is_marked, mark, resolve

__all__ = ["LIBRARY", "PATCHES", "PINNED", "install"]

logger = logging.getLogger(__name__)

LIBRARY, PINNED = "simuleval", "1.1.4"


def _summarize_with_elapsed(summarize: Callable[[Any], Dict[str, Any]]
                            ) -> Callable[[Any], Dict[str, Any]]:
    """Wrap ``SpeechOutputInstance.summarize`` so that its log entry keeps ``elapsed``.

    SimulEval 1.1.4 records one computation-aware timestamp per written speech segment
    (``self.elapsed``) but its ``summarize`` writes ``"elapsed": []``; the scores are computed
    from that log, so every ``*_CA`` latency of a speech-output run skips all instances and
    crashes (``statistics.StatisticsError: mean requires at least one data point``). A summary
    that already holds timestamps (a fixed SimulEval) is left alone.
    """
    @functools.wraps(summarize)
    def summarize_keeping_elapsed(self: Any) -> Dict[str, Any]:
        summary = summarize(self)
        if not summary.get("elapsed"):
            summary["elapsed"] = list(self.elapsed)
        return summary

    return mark(summarize_keeping_elapsed)


def _plain_latency_from_args(from_args: Callable[[type, Namespace], Any]) -> classmethod:
    """Wrap ``LatencyScorer.from_args`` so that ``AL`` (etc.) is never computation-aware.

    SimulEval 1.1.4's evaluator builds ``AL`` with ``from_args``, which passes
    ``args.computation_aware`` on, and ``AL_CA`` with ``computation_aware=True``: under
    ``--computation-aware`` both read the compute timestamps and the ideal-latency column is lost.
    """
    @functools.wraps(from_args)
    def from_args_without_compute(cls: type, args: Namespace) -> Any:
        return from_args(cls, Namespace(**{**vars(args), "computation_aware": False}))

    return classmethod(mark(from_args_without_compute))


_SUMMARIZE = "simuleval.evaluator.instance.SpeechOutputInstance.summarize"
_FROM_ARGS = "simuleval.evaluator.scorers.latency_scorer.LatencyScorer.from_args"

PATCHES = [
    Patch(_SUMMARIZE, LIBRARY, PINNED,
          "simuleval/evaluator/instance.py: SpeechOutputInstance.summarize logs \"elapsed\": [] "
          "although it recorded compute timestamps, so every *_CA latency of a speech-output run "
          "crashes (StatisticsError)",
          lambda: is_marked(resolve(_SUMMARIZE))),
    Patch(_FROM_ARGS, LIBRARY, PINNED,
          "simuleval/evaluator/scorers/latency_scorer.py: from_args passes --computation-aware "
          "on, so under it AL equals AL_CA and the ideal-latency column is lost",
          lambda: is_marked(resolve(_FROM_ARGS))),
]


def install() -> None:
    """Apply both SimulEval patches (idempotent)."""
    from simuleval.evaluator.instance import SpeechOutputInstance
    from simuleval.evaluator.scorers.latency_scorer import LatencyScorer

    check_version(LIBRARY, metadata.version(LIBRARY), PINNED)
    if not is_marked(SpeechOutputInstance.summarize):
        SpeechOutputInstance.summarize = _summarize_with_elapsed(SpeechOutputInstance.summarize)
    if not is_marked(LatencyScorer.from_args):
        LatencyScorer.from_args = _plain_latency_from_args(LatencyScorer.from_args.__func__)
