"""Run-time text helpers: text normalisation as the multitask targets see it, unit strings.

Detokenisation moved to :mod:`echostream_fairseq.decoding.text` and the freedict sentence pairs
to :mod:`echostream_fairseq.corpus.freedict`; both are still importable from here.
"""

from __future__ import annotations

import logging
import re
from typing import Sequence

from echostream_fairseq.data._moved import moved_names
# re-exported: the detokenisation names used to live here
from echostream_fairseq.decoding.text import WORD_START, complete_words, detokenize

logger = logging.getLogger(__name__)

__all__ = [
    "WORD_START",
    "complete_words",
    "dedup_units",
    "detokenize",
    "format_units",
    "normalize_for_spm",
    "parse_units",
]

_WHITESPACE = re.compile(r"\s+")

# deprecated aliases: the freedict sentence pairs are corpus building
__getattr__ = moved_names(__name__, "echostream_fairseq.corpus.freedict",
                          ("DEU_ENG_DICT", "ENG_DEU_DICT", "SentencePair", "clean_sentence",
                           "extract_pairs", "load_freedict_pairs", "pair_id"))


def normalize_for_spm(text: str) -> str:
    """Text as StreamSpeech's multitask targets see it: lowercased, punctuation removed.

    Same rule as StreamSpeech's ``prep_cvss_c_multitask_data.py``: ``re.sub(r"[^\\w\\s]", "",
    text.lower())`` (so "Don't" becomes "dont"), plus whitespace collapsed.
    """
    return _WHITESPACE.sub(" ", re.sub(r"[^\w\s]", "", text.lower())).strip()


def parse_units(text: str) -> list[int]:
    """Parse a space-separated unit string (``tgt_audio`` column) into ints.

    Raises:
        ValueError: a token is not a non-negative integer.
    """
    units = []
    for token in text.split():
        if not token.isdigit():
            raise ValueError(f"unit {token!r} is not a non-negative integer")
        units.append(int(token))
    return units


def format_units(units: Sequence[int]) -> str:
    """Inverse of :func:`parse_units`."""
    return " ".join(str(int(u)) for u in units)


def dedup_units(units: Sequence[int]) -> tuple[list[int], list[int]]:
    """Collapse runs of equal units.

    Returns:
        ``(units, run_lengths)``: the de-duplicated units and how many frames each covered.
    """
    out: list[int] = []
    runs: list[int] = []
    for unit in units:
        if out and out[-1] == unit:
            runs[-1] += 1
        else:
            out.append(int(unit))
            runs.append(1)
    return out, runs
