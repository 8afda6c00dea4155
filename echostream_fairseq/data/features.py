"""Source features: 80-d Kaldi fbank (as fairseq's speech_to_text data_utils) and global CMVN.

fairseq computes fbank with ``torchaudio.compliance.kaldi.fbank`` on 16 kHz mono audio in the
int16 range (float samples scaled by 2^15), 25 ms windows every 10 ms; StreamSpeech stores them
as ``.npy``/zip entries and normalises them with global CMVN stats (``gcmvn.npz``: ``mean``,
``std``, each of shape (80,)) computed over the training set.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import torch
import torchaudio.compliance.kaldi as kaldi
from tqdm import tqdm

from echostream_fairseq.data.audio import SAMPLE_RATE, read_wav, wav_num_samples
from echostream_fairseq.errors import UserError

logger = logging.getLogger(__name__)

__all__ = [
    "FBANK_DIM",
    "FeatureError",
    "FeatureStats",
    "compute_fbank",
    "compute_gcmvn",
    "extract_fbank_files",
    "fbank_num_frames",
    "read_feature_shape",
]

FBANK_DIM = 80
FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
_INT16_SCALE = 2**15


class FeatureError(UserError, ValueError):
    """A feature file is missing, unreadable or has the wrong shape."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = str(path)
        super().__init__(f"{path}: {reason}")


@dataclass
class FeatureStats:
    """What a feature run did: files made, files reused, frames in all."""

    made: int = 0
    reused: int = 0
    frames: int = 0


def fbank_num_frames(num_samples: int, sample_rate: int = SAMPLE_RATE) -> int:
    """Frames Kaldi fbank yields for ``num_samples`` (snip_edges=True, the default)."""
    window = int(sample_rate * FRAME_LENGTH_MS / 1000)
    shift = int(sample_rate * FRAME_SHIFT_MS / 1000)
    return 0 if num_samples < window else 1 + (num_samples - window) // shift


def compute_fbank(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """80-d Kaldi fbank of mono float samples in [-1, 1].

    Args:
        samples: shape (T,), float32.
        sample_rate: must be 16000 (what the model's frame geometry assumes).

    Returns:
        shape (N, 80), float32, N = :func:`fbank_num_frames` (T).

    Raises:
        ValueError: wrong sample rate or audio shorter than one window.
    """
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"fbank expects {SAMPLE_RATE} Hz audio, got {sample_rate} Hz")
    if fbank_num_frames(len(samples), sample_rate) == 0:
        raise ValueError(f"audio of {len(samples)} samples is shorter than one fbank window")
    with torch.inference_mode():
        wave = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)) * _INT16_SCALE
        feats = kaldi.fbank(wave.unsqueeze(0), num_mel_bins=FBANK_DIM,
                            frame_length=FRAME_LENGTH_MS, frame_shift=FRAME_SHIFT_MS,
                            sample_frequency=sample_rate)
    return feats.numpy().astype(np.float32, copy=False)


def read_feature_shape(path: Path) -> tuple[int, ...]:
    """Shape of a ``.npy`` feature file, read from its header only.

    Raises:
        FeatureError: missing or unreadable file.
    """
    if not Path(path).is_file():
        raise FeatureError(path, "file does not exist")
    try:
        return tuple(np.load(path, mmap_mode="r").shape)
    except (ValueError, OSError, EOFError) as err:
        raise FeatureError(path, f"unreadable .npy ({err})") from err


def _valid_existing(npy: Path, wav: Path) -> Optional[int]:
    """Frame count of a finished feature file, or None when it must be (re)made."""
    if not npy.is_file():
        return None
    try:
        shape = read_feature_shape(npy)
    except FeatureError as err:
        logger.warning("redoing %s", err)
        return None
    expected = fbank_num_frames(wav_num_samples(wav, SAMPLE_RATE)[0])
    if shape != (expected, FBANK_DIM):
        logger.warning("redoing %s: shape %s, expected (%d, %d)", npy, shape, expected, FBANK_DIM)
        return None
    return shape[0]


def _extract_one(pair: tuple[Path, Path]) -> int:
    wav, npy = pair
    samples, sr = read_wav(wav, SAMPLE_RATE)
    feats = compute_fbank(samples, sr)
    npy.parent.mkdir(parents=True, exist_ok=True)
    tmp = npy.with_name(npy.stem + ".tmp.npy")
    np.save(tmp, feats)
    tmp.replace(npy)  # atomic, so a resumed build never sees half a file
    return feats.shape[0]


def extract_fbank_files(pairs: Sequence[tuple[Path, Path]], workers: int = 1,
                        desc: str = "fbank") -> FeatureStats:
    """Write an fbank ``.npy`` for every ``(wav, npy)`` pair whose npy is not already valid."""
    stats = FeatureStats()
    todo = []
    for wav, npy in pairs:
        frames = _valid_existing(Path(npy), Path(wav))
        if frames is None:
            todo.append((Path(wav), Path(npy)))
        else:
            stats.reused += 1
            stats.frames += frames
    logger.info("%s: %d to compute, %d reused", desc, len(todo), stats.reused)
    # torch ops release the GIL, so threads give real parallelism here without fork/spawn costs.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for frames in tqdm(pool.map(_extract_one, todo), total=len(todo), desc=desc,
                           unit="utt"):
            stats.frames += frames
    stats.made = len(todo)
    return stats


def compute_gcmvn(npy_paths: Iterable[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Global mean and standard deviation over all frames of the given feature files.

    Accumulated in float64; the variance is floored at 1e-8 as in fairseq's
    ``cal_gcmvn_stats``.

    Returns:
        ``(mean, std)``, each shape (80,), float32.

    Raises:
        ValueError: no frames.
    """
    total = np.zeros(FBANK_DIM, dtype=np.float64)
    total_sq = np.zeros(FBANK_DIM, dtype=np.float64)
    count = 0
    for path in npy_paths:
        feats = np.load(path).astype(np.float64)
        total += feats.sum(axis=0)
        total_sq += (feats**2).sum(axis=0)
        count += feats.shape[0]
    if count == 0:
        raise ValueError("no feature frames to compute global CMVN from")
    mean = total / count
    var = np.maximum(total_sq / count - mean**2, 1e-8)
    return mean.astype(np.float32), np.sqrt(var).astype(np.float32)
