"""Sentence and phrase pairs from Debian's ``trans-de-en``: the Ding German-English dictionary.

Each line of ``/usr/share/trans/de-en`` is one entry, German and English sides split by `` :: ``;
each side lists aligned sub-entries split by `` | `` (a headword, its plural, example phrases and
sentences), and each sub-entry lists alternatives split by ``;``, with notes in ``{}`` (gender,
part of speech), ``[]`` (register, field), ``<>`` (abbreviations) and ``()`` (context)::

    Abart {f}; Variante {f} | Es gibt sie in den unterschiedlichsten Varianten. :: variation;
    variant | They come in all shapes and sizes.

A sub-entry pair is a **sentence pair** when, after keeping the first alternative of each side
and dropping the notes, both sides start with a capital letter or digit, hold at least 3 words and
end in ``.``, ``?`` or ``!``; it is a **phrase pair** when both sides hold 2 to 12 words and are
not sentences. The dictionary is GPL-2+ (like FreeDict): it is read where Debian installs it and
nothing of it is committed.
"""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path
from typing import Iterable, Iterator, Optional

from echostream_fairseq.corpus.freedict import SentencePair, clean_sentence, pair_id

logger = logging.getLogger(__name__)

__all__ = ["DING_DE_EN", "DING_PHRASE", "DING_SENTENCE", "clean_phrase", "extract_ding_pairs",
           "load_ding_pairs"]

DING_DE_EN = Path("/usr/share/trans/de-en")
DING_SENTENCE, DING_PHRASE = "ding", "ding-phrase"  # the pairs' origin labels
MIN_SENTENCE_WORDS = 3
PHRASE_WORDS = (2, 12)

_NOTES = re.compile(r"\s*(\{[^{}]*\}|\[[^\[\]]*\]|<[^<>]*>|\([^()]*\))")
_WHITESPACE = re.compile(r"\s+")
# Dictionary placeholders (somebody, something, jemanden, etwas...): a phrase with a slot is a
# pattern, not something a speaker says.
_PLACEHOLDER = re.compile(r"\b(sb|sth|jdn|jdm|jds|jd|etw|usw|o\.ä)\b\.?", re.IGNORECASE)
_TYPOGRAPHIC = str.maketrans({"’": "'", "‘": "'", "´": "'"})


def _first_alternative(text: str) -> str:
    """The notes dropped, then the first ``;`` alternative, whitespace collapsed."""
    text = _NOTES.sub("", text.translate(_TYPOGRAPHIC))
    return _WHITESPACE.sub(" ", text.split(";", 1)[0]).strip()


def clean_phrase(text: str, min_words: int = PHRASE_WORDS[0],
                 max_words: int = PHRASE_WORDS[1]) -> Optional[str]:
    """One side of a phrase sub-entry (first alternative, notes dropped), or ``None``."""
    if not text or any(c in text for c in '/\t"<>{}[]()=|_#@*…+&%$§'):
        return None
    if _PLACEHOLDER.search(text):
        return None
    if not min_words <= len(text.split()) <= max_words:
        return None
    return text


def _is_sentence(text: str) -> bool:
    return bool(text) and text[-1] in ".?!" and (text[0].isupper() or text[0].isdigit())


def extract_ding_pairs(lines: Iterable[str]) -> Iterator[SentencePair]:
    """Sentence and phrase pairs of Ding lines, in file order (duplicates included)."""
    for line in lines:
        if line.startswith("#") or " :: " not in line:
            continue
        german, english = line.rstrip("\n").split(" :: ", 1)
        german_parts, english_parts = german.split(" | "), english.split(" | ")
        if len(german_parts) != len(english_parts):
            continue  # sub-entries no longer line up
        for de_raw, en_raw in zip(german_parts, english_parts):
            de, en = _first_alternative(de_raw), _first_alternative(en_raw)
            if _is_sentence(de) and _is_sentence(en):
                de_clean = clean_sentence(de, MIN_SENTENCE_WORDS)
                en_clean = clean_sentence(en, MIN_SENTENCE_WORDS)
                origin = DING_SENTENCE
            else:
                de_clean, en_clean, origin = clean_phrase(de), clean_phrase(en), DING_PHRASE
            if de_clean is None or en_clean is None:
                continue
            n_de, n_en = len(de_clean.split()), len(en_clean.split())
            if max(n_de, n_en) > 3 * min(n_de, n_en):  # a paraphrase, not a translation
                continue
            yield SentencePair(pair_id(de_clean, en_clean), de_clean, en_clean, origin)


def load_ding_pairs(path: Path = DING_DE_EN) -> list[SentencePair]:
    """Distinct Ding pairs (a side seen before drops the pair), sentences and phrases.

    Raises:
        FileNotFoundError: the dictionary is missing (with the apt-get command to fix it).
    """
    return list(_load_ding_pairs(Path(path)))


@functools.lru_cache(maxsize=2)
def _load_ding_pairs(path: Path) -> tuple[SentencePair, ...]:
    from echostream_fairseq.corpus.freedict import dedup_key

    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; install it with: "
                                "sudo apt-get install trans-de-en")
    with open(path, encoding="utf-8") as handle:
        lines = handle.readlines()
    seen_de: set[str] = set()
    seen_en: set[str] = set()
    pairs = []
    for pair in extract_ding_pairs(lines):
        key_de, key_en = dedup_key(pair.de), dedup_key(pair.en)
        if key_de in seen_de or key_en in seen_en:
            continue
        seen_de.add(key_de)
        seen_en.add(key_en)
        pairs.append(pair)
    logger.info("%s: %d sentence and %d phrase pairs", path,
                sum(p.origin == DING_SENTENCE for p in pairs),
                sum(p.origin == DING_PHRASE for p in pairs))
    return tuple(pairs)
