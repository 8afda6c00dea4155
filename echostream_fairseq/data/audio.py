"""Reading, writing and resampling wav files for the data package.

Every wav this package reads goes through :func:`read_wav`, so a wrong sample rate, an empty
file or an unreadable file always raises :class:`AudioError` naming the file.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Optional, Union

import numpy as np
import soundfile as sf

from echostream_fairseq.errors import UserError

logger = logging.getLogger(__name__)

__all__ = ["AudioError", "SAMPLE_RATE", "read_wav", "write_wav", "resample", "wav_duration",
           "wav_num_samples"]

#: Sample rate of every wav the corpus stores (source and target speech), in Hz.
SAMPLE_RATE = 16000
RESAMPLE_BLOCK_S = 0.25  # resample() pads its input to whole blocks of this many seconds

PathLike = Union[str, Path]


class AudioError(UserError, ValueError):
    """A wav file is missing, unreadable, empty or has an unexpected sample rate."""

    def __init__(self, path: PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _info(path: PathLike) -> sf._SoundFileInfo:
    """Header of ``path``; raises :class:`AudioError` if it is missing or unreadable."""
    if not Path(path).is_file():
        raise AudioError(path, "file does not exist")
    try:
        return sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(path, f"unreadable audio ({err})") from err


def wav_num_samples(path: PathLike, expected_sr: Optional[int] = SAMPLE_RATE) -> tuple[int, int]:
    """``(num_samples, sample_rate)`` of a wav, read from its header only.

    Raises :class:`AudioError` under the same conditions as :func:`read_wav`.
    """
    info = _info(path)
    _check_header(path, info.samplerate, info.frames, expected_sr)
    return info.frames, info.samplerate


def wav_duration(path: PathLike, expected_sr: Optional[int] = SAMPLE_RATE) -> float:
    """Duration of a wav in seconds, read from its header only (see :func:`wav_num_samples`)."""
    frames, sr = wav_num_samples(path, expected_sr)
    return frames / sr


def _check_header(path: PathLike, sr: int, frames: int, expected_sr: Optional[int]) -> None:
    if frames <= 0:
        raise AudioError(path, "empty audio (0 samples)")
    if expected_sr is not None and sr != expected_sr:
        raise AudioError(path, f"sample rate {sr} Hz, expected {expected_sr} Hz")


def read_wav(path: PathLike, expected_sr: Optional[int] = SAMPLE_RATE) -> tuple[np.ndarray, int]:
    """Read a wav as mono float32 in [-1, 1].

    Args:
        path: the wav file.
        expected_sr: the sample rate it must have; ``None`` accepts any rate.

    Returns:
        ``(samples, sample_rate)``: samples has shape (T,), dtype float32; multi-channel audio is
        averaged to mono.

    Raises:
        AudioError: the file is missing, unreadable, empty or has another sample rate.
    """
    info = _info(path)
    _check_header(path, info.samplerate, info.frames, expected_sr)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(path, f"unreadable audio ({err})") from err
    if data.shape[0] == 0:
        raise AudioError(path, "empty audio (0 samples)")
    return data.mean(axis=1).astype(np.float32, copy=False), sr


def resample(samples: np.ndarray, orig_sr: int, new_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a mono float32 signal with ``torchaudio.functional.resample``.

    The input is padded with zeros to whole blocks of ``RESAMPLE_BLOCK_S``: oneDNN (torch's CPU
    convolution) builds and keeps a primitive for every new input length, so a stream that
    resampled each sentence at its own length grew its RSS about a megabyte a minute (flat with
    the cache off). Blocks make the lengths repeat. The resampler pads with zeros after the end
    anyway, so the output is the same up to float rounding (within 5e-7).

    Args:
        samples: shape (T,), float32.
        orig_sr: its sample rate.
        new_sr: the wanted rate.

    Returns:
        shape (ceil(T * new_sr / orig_sr),), float32.
    """
    if orig_sr == new_sr:
        return samples.astype(np.float32, copy=False)
    # Imported here so that worker processes that only write wavs do not pay for torch.
    import torch
    import torchaudio.functional as taf

    length = len(samples)
    block = max(1, round(orig_sr * RESAMPLE_BLOCK_S))
    padded = np.zeros(-(-length // block) * block, dtype=np.float32)
    padded[:length] = samples
    gcd = math.gcd(orig_sr, new_sr)
    # torchaudio's own output length for the unpadded input
    target = int(torch.ceil(torch.as_tensor(new_sr // gcd * length / (orig_sr // gcd))))
    with torch.inference_mode():
        out = taf.resample(torch.from_numpy(padded), orig_sr, new_sr)
    return out[:target].numpy()


def write_wav(path: PathLike, samples: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    """Write mono 16-bit PCM atomically (a temporary file renamed into place).

    The rename means an interrupted build never leaves a truncated wav that a resumed build
    would take for finished work.

    Raises:
        AudioError: ``samples`` is empty.
    """
    if samples.size == 0:
        raise AudioError(path, "refusing to write empty audio")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    sf.write(str(tmp), np.clip(samples, -1.0, 1.0), sr, subtype="PCM_16", format="WAV")
    tmp.replace(path)
