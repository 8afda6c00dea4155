"""Sentence pairs from Debian's freedict dictionaries: the text source of the mini corpus.

The freedict files hold human-written example sentences as dictionary entries::

    "Das ist deine Ansicht."  - That's your take.                     (deu-eng)
    "The surface of the door blistered."  - Die Oberfläche der Tür warf Blasen.   (eng-deu)

An entry counts as a sentence when its quoted head starts with a capital letter, holds at least
two words and ends in ``.``, ``?`` or ``!``. The translation side may list alternatives
(``It's all just sound and fury!, It's pure hype!``, ``the very/mere thought``); we keep the first.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional

from echostream_fairseq.data.text import normalize_for_spm

logger = logging.getLogger(__name__)

__all__ = [
    "DEU_ENG_DICT",
    "ENG_DEU_DICT",
    "SentencePair",
    "clean_sentence",
    "dedup_key",
    "extract_pairs",
    "load_freedict_pairs",
    "pair_id",
]

DEU_ENG_DICT = Path("/usr/share/dictd/freedict-deu-eng.dict.dz")
ENG_DEU_DICT = Path("/usr/share/dictd/freedict-eng-deu.dict.dz")

# `"<head>"  - <tail>`: two spaces, a dash, one space. The head is matched greedily up to the
# last `"  - ` so that quotes inside the head do not cut it.
_ENTRY = re.compile(r'^\s*"(?P<head>.+)"\s{2}-\s(?P<tail>.+?)\s*$')
# Only entries whose quoted head starts like a sentence (see _SENTENCE_HEAD).
_ENTRY_LINE = re.compile(r'^[ \t]*"[A-ZÄÖÜ0-9¿¡][^\n]*"  - [^\n]*$', re.MULTILINE)
_SENTENCE_HEAD = re.compile(r"^[A-ZÄÖÜ0-9¿¡].*\S\s+\S.*[.?!]$")
# Alternatives after a finished sentence: "First one., Second one." -> split after the mark.
_ALTERNATIVE_SPLIT = re.compile(r"(?<=[.?!])\s*,\s+")
_BRACKETS = re.compile(r"\s*(\([^()]*\)|\[[^\[\]]*\]|\{[^{}]*\})")
# word/word alternatives inside a sentence: keep the first word.
_SLASH_WORDS = re.compile(r"([^\W\d_][\w'’-]*)(?:/[^\W\d_][\w'’-]*)+")
# Dictionary shorthand marks a phrase entry, not a sentence.
_SHORTHAND = re.compile(r"\b(sb|sth|jdn|jdm|jds|etw|usw|o\.ä)\.", re.IGNORECASE)
_QUOTES = re.compile(r'["„“”»«]')
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,?!;:])")
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class SentencePair:
    """One German->English sentence pair.

    Attributes:
        id: stable id derived from the text (``deen_`` + 12 hex digits of SHA-1), so that files
            named after it stay valid however the corpus is sampled or split.
        de: German source sentence.
        en: English target sentence.
        origin: ``"deu-eng"`` or ``"eng-deu"`` (which dictionary gave it).
    """

    id: str
    de: str
    en: str
    origin: str


def pair_id(de: str, en: str) -> str:
    """Stable id of a pair: a hash of both sides."""
    digest = hashlib.sha1(f"{de}\t{en}".encode("utf-8")).hexdigest()
    return f"deen_{digest[:12]}"


def clean_sentence(text: str, min_words: int = 2, max_words: int = 25,
                   max_chars: int = 200) -> Optional[str]:
    """Reduce one side of an entry to a single clean sentence, or ``None`` to drop it.

    Keeps the first of several alternatives (``., `` separated, ``word/word``), drops bracketed
    notes, collapses whitespace and enforces the length limits. Entries whose alternatives are
    whole phrases separated by `` / `` are dropped: the first alternative cannot be cut out
    without guessing where it starts.
    """
    text = _ALTERNATIVE_SPLIT.split(text.strip(), maxsplit=1)[0]
    text = _BRACKETS.sub("", text)
    if " / " in text or " /" in text or "/ " in text:
        return None
    text = _SLASH_WORDS.sub(r"\1", text)
    # Quoted words inside a sentence: the quotes carry no sound, keep the words.
    text = _QUOTES.sub("", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", _WHITESPACE.sub(" ", text)).strip()
    # Anything left that TTS would read out literally or that breaks a TSV means a bad entry.
    if not text or any(c in text for c in '/\t<>{}[]()=|_#@*…'):
        return None
    if _SHORTHAND.search(text):
        return None
    if not (text[0].isupper() or text[0].isdigit()):
        return None
    if text[-1] not in ".?!":
        text += "."
    n_words = len(text.split())
    if not (min_words <= n_words <= max_words) or len(text) > max_chars:
        return None
    return text


def _read_entry_lines(path: Path) -> list[str]:
    """The lines of a freedict file that look like ``"..."  - ...`` entries.

    The files hold ~2.4M lines each; one regex pass over the whole text finds the ~10% that
    matter several times faster than testing every line in Python.
    """
    # The .dict.dz files are dictzip, a gzip variant that the gzip module reads as is.
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        text = handle.read()
    return _ENTRY_LINE.findall(text)


def extract_pairs(lines: Iterable[str], head_is_german: bool, origin: str,
                  min_words: int = 2, max_words: int = 25) -> Iterator[SentencePair]:
    """Yield cleaned sentence pairs from freedict lines (duplicates included).

    Args:
        lines: raw lines of a freedict ``.dict`` file.
        head_is_german: True for deu-eng (the quoted head is German), False for eng-deu.
        origin: label stored in each pair.
        min_words, max_words: length limits per side.
    """
    for line in lines:
        match = _ENTRY.match(line)
        if match is None:
            continue
        head = match.group("head").strip()
        if not _SENTENCE_HEAD.match(head):
            continue
        head_clean = clean_sentence(head, min_words, max_words)
        tail_clean = clean_sentence(match.group("tail"), min_words, max_words)
        if head_clean is None or tail_clean is None:
            continue
        de, en = (head_clean, tail_clean) if head_is_german else (tail_clean, head_clean)
        # A translation three times longer than its source is a paraphrase, not a translation.
        n_de, n_en = len(de.split()), len(en.split())
        if max(n_de, n_en) > 3 * min(n_de, n_en):
            continue
        yield SentencePair(pair_id(de, en), de, en, origin)


def dedup_key(text: str) -> str:
    """A side as duplicates are found: spm-normalised, whitespace collapsed."""
    return " ".join(normalize_for_spm(text).split())


def load_freedict_pairs(deu_eng: Path = DEU_ENG_DICT, eng_deu: Path = ENG_DEU_DICT,
                        min_words: int = 2, max_words: int = 25) -> list[SentencePair]:
    """All distinct sentence pairs of both dictionaries, in file order (deu-eng first).

    A pair is dropped when its English or its German side (lowercased, punctuation removed)
    was already seen, so each sentence appears once on each side. Parsed once per process.

    Raises:
        FileNotFoundError: a dictionary file is missing (with the apt-get command to fix it).
    """
    return list(_load_freedict_pairs(Path(deu_eng), Path(eng_deu), min_words, max_words))


@functools.lru_cache(maxsize=4)
def _load_freedict_pairs(deu_eng: Path, eng_deu: Path, min_words: int,
                         max_words: int) -> tuple[SentencePair, ...]:
    for path in (deu_eng, eng_deu):
        if not Path(path).is_file():
            raise FileNotFoundError(
                f"{path} not found; install it with: "
                "sudo apt-get install dict-freedict-deu-eng dict-freedict-eng-deu")
    seen_en: set[str] = set()
    seen_de: set[str] = set()
    pairs: list[SentencePair] = []
    sources = ((deu_eng, True, "deu-eng"), (eng_deu, False, "eng-deu"))
    for path, head_is_german, origin in sources:
        n_before = len(pairs)
        for pair in extract_pairs(_read_entry_lines(Path(path)), head_is_german, origin,
                                  min_words, max_words):
            key_en, key_de = dedup_key(pair.en), dedup_key(pair.de)
            if key_en in seen_en or key_de in seen_de:
                continue
            seen_en.add(key_en)
            seen_de.add(key_de)
            pairs.append(pair)
        logger.info("%s: %d distinct new pairs", path, len(pairs) - n_before)
    return tuple(pairs)
