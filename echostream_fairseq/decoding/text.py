"""Run-time detokenisation: MT/CTC subword ids -> the words the system writes.

Shared by the streaming pipeline, fairseq-generate's ``--bpe`` role
(:class:`~echostream_fairseq.decoding.generate.SubwordDetokenizer`) and the evaluation, so every
path turns the same tokens into the same words.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, List, Sequence

if TYPE_CHECKING:  # only for annotations: nothing here needs fairseq loaded
    from fairseq.data import Dictionary

__all__ = ["WORD_START", "complete_words", "detokenize"]

logger = logging.getLogger(__name__)

#: sentencepiece's word-start marker.
WORD_START = "\u2581"


def detokenize(tokens: Sequence[int], dictionary: "Dictionary") -> str:
    """Subword ids -> text: pieces joined, ``▁`` -> space, specials dropped, runs of spaces
    collapsed (a lone ``▁`` piece would otherwise leave two), ends stripped.

    Token ids always come from the fairseq dictionary; its specials (``<s>``, ``<pad>``,
    ``</s>``, ``<unk>``) are the first ``nspecial`` entries.
    """
    pieces = [dictionary[t] for t in tokens if t >= dictionary.nspecial]
    return " ".join("".join(pieces).replace(WORD_START, " ").split())


def complete_words(text: str, final: bool) -> List[str]:
    """Words of a growing ``text`` that can no longer change: all but the last one, which the
    next subword may still extend, unless ``final``."""
    words = text.split()
    return words if final else words[:-1]
