"""How many frames each de-duplicated unit lasts: a duration model fitted on the corpus.

The model is a :class:`~echostream_fairseq.vocoder.context.ContextModel` with D = 1: the mean
run length (in unit frames) of each unit, or, for kind ``context``, of the unit between the same
neighbours, with back-off (see :mod:`.context`). Durations are real numbers;
:func:`round_durations` turns them into frame counts (at least 1) either one by one or on
cumulative time, carrying the rounding error forward so the total length is kept (in streaming
the carry is part of the state).
"""

from __future__ import annotations

import logging
from typing import Iterable, Optional, Sequence

import numpy as np

from echostream_fairseq.vocoder.context import CONTEXT_KINDS, ContextAccumulator, ContextModel

logger = logging.getLogger(__name__)

__all__ = ["DURATION_KINDS", "fit_duration_model", "round_durations"]

DURATION_KINDS = CONTEXT_KINDS


def fit_duration_model(utterances: Iterable[tuple[Sequence[int], Sequence[int]]],
                       num_units: int, fallback: Optional[np.ndarray] = None,
                       min_count: int = 2, kind: str = "context") -> ContextModel:
    """Fit mean run lengths from frame-level unit runs.

    Args:
        utterances: per utterance ``(units, run_lengths)``, each shape (U_i,), as returned by
            ``echostream_fairseq.data.text.dedup_units`` on frame units.
        num_units: K.
        fallback: (K,) durations for units never seen here (default 1 frame).
        min_count: fewest examples for a context mean to be used.
        kind: which kind the model predicts with.

    Returns:
        A (K, 1)-valued :class:`ContextModel`.
    """
    accumulator = ContextAccumulator(num_units, 1)
    for units, runs in utterances:
        runs_array = np.asarray(runs, dtype=np.float64)
        accumulator.add(units, runs_array[:, None], np.ones_like(runs_array))
    default = np.ones(num_units) if fallback is None else fallback
    return accumulator.finish(fallback=default, min_count=min_count, kind=kind)


def round_durations(durations: np.ndarray, residual: float = 0.0,
                    cumulative: bool = True) -> tuple[np.ndarray, float]:
    """Frame counts (>= 1) from real durations.

    Args:
        durations: (U,) real frames per unit.
        residual: rounding carry from the previous call (target time not yet emitted).
        cumulative: round on cumulative time and carry the error (keeps the total length);
            otherwise round each unit on its own.

    Returns:
        ``(frames, residual)``: int64 frame counts (U,) and the carry for the next call.
    """
    if not cumulative:
        return np.maximum(1, np.rint(durations)).astype(np.int64), 0.0
    frames = np.empty(len(durations), dtype=np.int64)
    carry = float(residual)
    for i, duration in enumerate(durations):
        carry += float(duration)
        count = max(1, int(np.floor(carry + 0.5)))
        frames[i] = count
        carry -= count
    return frames, carry
