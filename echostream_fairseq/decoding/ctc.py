"""Greedy CTC rules shared by streaming and offline decoding: one collapse, one unit choice.

The streaming pipeline (``streaming/``) and fairseq-generate's generators (:mod:`.generate`)
both decode with these, so a unit sequence written offline equals the one streamed.
Dimension legend: U unit-decoder steps, V unit vocabulary.
"""

from __future__ import annotations

import logging
from typing import List, Sequence

from torch import Tensor

__all__ = ["CtcCollapser", "UNIT_BLANK_PENALTY_HELP", "UnitCollapser", "best_unit_labels",
           "collapse_unit_labels"]

logger = logging.getLogger(__name__)

#: help text of every ``--unit-blank-penalty`` option (agents, evaluation, fairseq-generate, ...);
#: each option appends its own default
UNIT_BLANK_PENALTY_HELP = ("subtracted from the unit CTC blank's log-probability before the "
                           "greedy choice (0: plain greedy, as StreamSpeech); an undertrained unit "
                           "decoder speaks too little without one: tune it on dev with "
                           "echostream-measure-t2u")


class CtcCollapser:
    """Greedy CTC collapse carried across calls: a label repeating the previous frame's (across
    call boundaries too) is the same token, blanks are dropped."""

    def __init__(self, blank: int) -> None:
        self.blank = blank
        self._last = blank

    def reset(self) -> None:
        self._last = self.blank

    def __call__(self, labels: Sequence[int]) -> List[int]:
        kept = []
        for label in labels:
            if label != self._last and label != self.blank:
                kept.append(label)
            self._last = label
        return kept


class UnitCollapser(CtcCollapser):
    """Unit-decoder labels -> unit ids (``0..K-1``), specials dropped, carried across calls."""

    def __init__(self, unit_dict) -> None:
        super().__init__(unit_dict.blank_index)
        self.unit_dict = unit_dict

    def __call__(self, labels: Sequence[int]) -> List[int]:
        return [int(self.unit_dict[label]) for label in super().__call__(labels)
                if label >= self.unit_dict.nspecial]


def best_unit_labels(scores: Tensor, unit_dict, blank_penalty: float = 0.0) -> Tensor:
    """Greedy unit-decoder labels (..., U) of logits or log-probabilities (..., U, V).

    StreamSpeech's CTC generator rule: ``<pad>`` and ``<unk>`` can never win; ``<s>``/``</s>``
    can (they are dropped after repeats are merged, so they separate like a blank). The blank's
    score is first lowered by ``blank_penalty`` (as icefall's ``--blank-penalty``): an
    undertrained unit CTC decoder picks blank on most steps and speaks too little.
    ``scores`` is not modified.
    """
    scores = scores.clone()
    scores[..., unit_dict.pad()] = -float("inf")
    scores[..., unit_dict.unk()] = -float("inf")
    scores[..., unit_dict.blank_index] -= blank_penalty
    return scores.argmax(-1)


def collapse_unit_labels(labels: List[int], unit_dict) -> List[int]:
    """Unit ids (``0..K-1``) of a whole label sequence: repeats merged, blanks and specials
    dropped."""
    return UnitCollapser(unit_dict)(labels)
