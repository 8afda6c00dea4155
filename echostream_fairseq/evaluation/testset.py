"""The test set an evaluation streams: source wav, source transcript and reference per utterance.

A StreamSpeech-layout manifest (``test_sampled.tsv``: ``id src_audio src_n_frames src_text
tgt_text tgt_audio tgt_n_frames``) names fbank features in ``src_audio``; the source wavs are
SimulEval's list ``<corpus>/simuleval/<split>/wav_list.txt``, one a line in manifest order (the
builder writes both from the same pairs). A manifest whose ``src_audio`` are wavs needs no list.

Everything is validated before any model runs, with the data package's validators: the manifest
(:func:`echostream_fairseq.data.validate.find_problems`: missing column, wrong field count, missing
or broken file, ...) and every wav (:func:`echostream_fairseq.data.audio.wav_num_samples`:
missing, unreadable, empty, not 16 kHz). Problems are raised together as a
:class:`~echostream_fairseq.data.validate.ManifestError`, each naming file, line and column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from echostream_fairseq.data.audio import SAMPLE_RATE, AudioError, read_wav, wav_num_samples
from echostream_fairseq.data.manifests import SPLIT_NAMES, read_tsv
from echostream_fairseq.data.validate import ManifestError, Problem, find_problems
from echostream_fairseq.errors import InputError

__all__ = ["JOIN_GAP_SECONDS", "TestSet", "TestUtterance", "default_wav_list",
           "joined_test_sentences", "load_test_set"]

#: silence between joined test sentences: a long stream made of single-sentence recordings
JOIN_GAP_SECONDS = 0.3

_AUDIO_SUFFIXES = (".wav", ".flac")
_WAV_COLUMN = "wav"  # what a wav-list problem names as its column


@dataclass(frozen=True)
class TestUtterance:
    """One test pair.

    Attributes:
        index: 0-based position in the manifest.
        utt_id: the manifest ``id``.
        wav: source speech (16 kHz).
        source_ms: its duration in milliseconds.
        source_text: the source-language transcript (``src_text``).
        reference: the target-language reference (``tgt_text``).
    """

    __test__ = False  # not a pytest test class, despite the name

    index: int
    utt_id: str
    wav: Path
    source_ms: float
    source_text: str
    reference: str


@dataclass(frozen=True)
class TestSet:
    """The utterances to evaluate and where their wavs were listed (None: ``src_audio``)."""

    __test__ = False

    utterances: List[TestUtterance]
    wav_list: Optional[Path]


def default_wav_list(manifest: Path) -> Path:
    """``<corpus>/simuleval/<split>/wav_list.txt`` of a StreamSpeech split manifest.

    Raises:
        ValueError: the manifest's name is not one of the corpus splits.
    """
    splits = {name: split for split, name in SPLIT_NAMES.items()}
    stem = Path(manifest).name[:-len(".tsv")] if Path(manifest).name.endswith(".tsv") else ""
    if stem not in splits:
        raise InputError(f"{manifest}: src_audio names features and the manifest is not one of "
                         f"{sorted(n + '.tsv' for n in splits)}: pass the source wavs with "
                         "--wav-list")
    return Path(manifest).parent / "simuleval" / splits[stem] / "wav_list.txt"


def _resolve(value: str, base: Path) -> Path:
    path = Path(value)
    return path if path.is_absolute() else base / path


def _wav_paths(manifest: Path, rows: List[dict], wav_list: Optional[Path]
               ) -> List[tuple[Path, str, int, str]]:
    """Per row: ``(wav, file naming it, line, column)`` for error messages."""
    if wav_list is None:
        return [(_resolve(r["src_audio"], manifest.parent), str(manifest), line, "src_audio")
                for line, r in enumerate(rows, start=2)]
    if not wav_list.is_file():
        raise ManifestError([Problem(str(wav_list), 0, _WAV_COLUMN,
                                     f"source wav list does not exist (needed for {manifest})")])
    lines = wav_list.read_text(encoding="utf-8").splitlines()
    if len(lines) != len(rows):
        raise ManifestError([Problem(str(wav_list), len(lines), _WAV_COLUMN,
                                     f"{len(lines)} wavs but {manifest} has {len(rows)} rows "
                                     "(the list must follow the manifest, one wav a line)")])
    paths = [(_resolve(line.strip(), wav_list.parent), str(wav_list), number, _WAV_COLUMN)
             for number, line in enumerate(lines, start=1)]
    # a wav named after another row's id means the list does not follow the manifest
    ids = {r["id"] for r in rows}
    misplaced = [Problem(str(wav_list), number, _WAV_COLUMN,
                         f"{wav.name} is utterance {wav.name.split('.')[0]!r} but manifest line "
                         f"{number + 1} is {r['id']!r}: the list must follow the manifest")
                 for (wav, _, number, _), r in zip(paths, rows)
                 if wav.name.split(".")[0] in ids and wav.name.split(".")[0] != r["id"]]
    if misplaced:
        raise ManifestError(misplaced)
    return paths


def load_test_set(manifest: Path, wav_list: Optional[Path] = None,
                  max_utterances: Optional[int] = None) -> TestSet:
    """Validated utterances of ``manifest`` (the first ``max_utterances`` when given).

    Args:
        manifest: a StreamSpeech-layout manifest with ``src_text`` and ``tgt_text``.
        wav_list: source wavs, one a line in manifest order; default: the manifest's ``src_audio``
            when they are wavs, else :func:`default_wav_list`.
        max_utterances: keep only the first N rows (all rows are validated).

    Raises:
        ManifestError: every problem found, each naming file, line and column.
        ValueError: no wav list can be derived for the manifest.
    """
    manifest = Path(manifest)
    problems = find_problems(manifest)
    if problems:
        raise ManifestError(problems)
    rows = read_tsv(manifest)
    if wav_list is None and not all(r["src_audio"].lower().endswith(_AUDIO_SUFFIXES)
                                    for r in rows):
        wav_list = default_wav_list(manifest)
    utterances, problems = [], []
    for index, (row, (wav, where, line, column)) in enumerate(
            zip(rows, _wav_paths(manifest, rows, wav_list))):
        try:
            num_samples, rate = wav_num_samples(wav, SAMPLE_RATE)
        except AudioError as err:
            problems.append(Problem(where, line, column, str(err)))
            continue
        if not row["src_text"].strip() or not row["tgt_text"].strip():
            empty = "src_text" if not row["src_text"].strip() else "tgt_text"
            problems.append(Problem(str(manifest), index + 2, empty, "empty text"))
            continue
        utterances.append(TestUtterance(index, row["id"], wav, 1000.0 * num_samples / rate,
                                        row["src_text"], row["tgt_text"]))
    if problems:
        raise ManifestError(problems)
    return TestSet(utterances[:max_utterances] if max_utterances is not None else utterances,
                   wav_list)


def joined_test_sentences(data_dir: Path, seconds: float) -> Tuple[np.ndarray, List[str]]:
    """A corpus's SimulEval test utterances (16 kHz) joined with :data:`JOIN_GAP_SECONDS` of
    silence, repeated as needed and cut to exactly ``seconds``, and the references of the
    utterances that are in it whole: the long streams of the benchmarks."""
    split = data_dir / "simuleval" / "test"
    wavs = (split / "wav_list.txt").read_text().split()
    references = (split / "target.txt").read_text().splitlines()
    gap = np.zeros(int(JOIN_GAP_SECONDS * SAMPLE_RATE), dtype=np.float32)
    pieces, whole, total, index = [], [], 0, 0
    limit = int(seconds * SAMPLE_RATE)
    while total < limit:
        samples, rate = read_wav(wavs[index % len(wavs)])
        if rate != SAMPLE_RATE:
            raise ValueError(f"{wavs[index % len(wavs)]}: expected {SAMPLE_RATE} Hz, got {rate}")
        pieces += [samples, gap]
        total += len(samples) + len(gap)
        if total - len(gap) <= limit:
            whole.append(references[index % len(wavs)])
        index += 1
    return np.concatenate(pieces)[:limit], whole
