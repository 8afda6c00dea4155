"""READ/WRITE policies of the streaming pipeline, as small strategy classes with explicit counts.

:class:`CtcPolicy` is StreamSpeech's CTC-guided policy (``agent/speech_to_speech.streamspeech.
agent.py``), so latency figures compare: READ until both greedy CTC prefixes (ASR and ST) grew by
``stride_n`` tokens since the last write; then let the MT decoder write up to
``(len(ST-CTC) - k1) // n * n`` subwords in total. Once the source is finished the decoder runs to
``</s>``. In StreamSpeech's whole-word mode (its agents switch it on for segments >= 640 ms) the
budget is one subword larger, and the pipeline then drops the trailing word that may be incomplete.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

__all__ = ["CtcPolicy", "Decision", "PolicyCounts", "WRITE_TO_END"]

#: ``decide`` result meaning "decode until ``</s>``" (the source is finished).
WRITE_TO_END = -1


@dataclass(frozen=True)
class PolicyCounts:
    """What the policy looks at, all counts of tokens.

    Attributes:
        asr_len: length of the greedy ASR-CTC prefix now.
        st_len: length of the greedy ST-CTC prefix now.
        asr_len_at_write: ``asr_len`` when the policy last allowed a write (0 at the start).
        st_len_at_write: ``st_len`` when the policy last allowed a write (0 at the start).
        written: MT subwords already written.
        source_finished: no more source will come.
    """

    asr_len: int
    st_len: int
    asr_len_at_write: int
    st_len_at_write: int
    written: int
    source_finished: bool


@dataclass(frozen=True)
class Decision:
    """Outcome of :meth:`CtcPolicy.decide`.

    Attributes:
        new_tokens: 0 = READ; > 0 = WRITE up to that many subwords; :data:`WRITE_TO_END` = decode
            until ``</s>``.
        mark: both CTC prefixes grew enough: the caller records ``asr_len``/``st_len`` as the new
            ``*_at_write`` marks (StreamSpeech moves them even when the budget then says READ).
    """

    new_tokens: int
    mark: bool

    @property
    def is_read(self) -> bool:
        return self.new_tokens == 0


class CtcPolicy:
    """StreamSpeech's CTC policy.

    Args:
        stride_n: tokens both CTC prefixes must grow by before a write, and the granularity of
            the subword budget (StreamSpeech's ``--stride-n``, default 1).
        lagging_k1: subwords the MT output stays behind the ST-CTC prefix (``--lagging-k1``, 0).
        whole_word: one subword more per write (the caller keeps only complete words).
    """

    def __init__(self, stride_n: int = 1, lagging_k1: int = 0, whole_word: bool = False) -> None:
        if stride_n < 1:
            raise ValueError(f"stride_n must be >= 1, got {stride_n}")
        if lagging_k1 < 0:
            raise ValueError(f"lagging_k1 must be >= 0, got {lagging_k1}")
        self.stride_n = stride_n
        self.lagging_k1 = lagging_k1
        self.whole_word = whole_word

    def decide(self, counts: PolicyCounts) -> Decision:
        """How many new MT subwords may be written now (see :class:`Decision`)."""
        if counts.source_finished:
            return Decision(WRITE_TO_END, mark=True)
        if (counts.asr_len < counts.asr_len_at_write + self.stride_n
                or counts.st_len < counts.st_len_at_write + self.stride_n):
            return Decision(0, mark=False)
        budget = (counts.st_len - self.lagging_k1) // self.stride_n * self.stride_n
        budget += int(self.whole_word)
        return Decision(max(0, budget - counts.written), mark=True)
