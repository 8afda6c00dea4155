"""Discrete target units: k-means over 50 Hz log-mel frames of the target speech.

Recipe measured in ``unit-vocoder-feasibility.md``: 80-bin magnitude log-mel (n_fft 1024, hop
320 = 20 ms at 16 kHz, slaney), MiniBatchKMeans with K = 500 fitted on a few hundred utterances
of one piper voice, frame units de-duplicated. A unit maps back to speech through its mean log-mel
and mean run length (centroid vocoder + Griffin-Lim), so :class:`UnitModel` saves both, with the
mel settings, in one ``.npz`` (``data/units/unit_model.npz``).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torchaudio

from echostream_fairseq.data.text import dedup_units

logger = logging.getLogger(__name__)

__all__ = [
    "LogMelExtractor",
    "MelSettings",
    "UnitModel",
    "effective_num_units",
    "fit_unit_model",
    "load_unit_model",
]

UNIT_MODEL_VERSION = 1
# Up to this many fitting frames (a few dozen utterances) k-means runs exactly; beyond, the
# measured MiniBatchKMeans recipe.
_EXACT_KMEANS_MAX_FRAMES = 20000


@dataclass(frozen=True)
class MelSettings:
    """Log-mel analysis the units are defined over (saved with the unit model)."""

    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 320
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0
    power: float = 1.0  # magnitude, not power: what the Griffin-Lim vocoder inverts
    norm: str = "slaney"
    mel_scale: str = "slaney"
    center: bool = True
    log_floor: float = 1e-5

    @property
    def frames_per_second(self) -> float:
        """Unit frame rate before de-duplication (50 Hz by default)."""
        return self.sample_rate / self.hop_length


class LogMelExtractor:
    """Log-mel frames of 16 kHz mono audio under given :class:`MelSettings`."""

    def __init__(self, settings: MelSettings = MelSettings()) -> None:
        self.settings = settings
        self._mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=settings.sample_rate, n_fft=settings.n_fft,
            win_length=settings.win_length, hop_length=settings.hop_length,
            f_min=settings.f_min, f_max=settings.f_max, n_mels=settings.n_mels,
            power=settings.power, norm=settings.norm, mel_scale=settings.mel_scale,
            center=settings.center)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """Log-mel of samples.

        Args:
            samples: shape (T,), float32, at ``settings.sample_rate``.

        Returns:
            shape (F, n_mels), float32, F = T // hop_length + 1 (centered frames).
        """
        with torch.inference_mode():
            mel = self._mel(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)))
            logmel = torch.log(torch.clamp(mel, min=self.settings.log_floor))
        return logmel.T.contiguous().numpy()


@dataclass
class UnitModel:
    """Fitted units and what a centroid vocoder needs to turn them back into speech.

    Attributes:
        centroids: (K, n_mels) k-means centroids in log-mel space.
        unit_mean_logmel: (K, n_mels) mean log-mel of the fitting frames of each unit (the
            centroid for a unit no fitting frame chose).
        unit_mean_run_length: (K,) mean number of 20 ms frames a unit lasts before
            de-duplication, on the fitting utterances (1.0 where unseen).
        unit_counts: (K,) fitting frames per unit.
        mel: the analysis settings.
    """

    centroids: np.ndarray
    unit_mean_logmel: np.ndarray
    unit_mean_run_length: np.ndarray
    unit_counts: np.ndarray
    mel: MelSettings

    @property
    def num_units(self) -> int:
        """K, what users pass as ``--target-code-size``."""
        return int(self.centroids.shape[0])

    def frame_units(self, logmel: np.ndarray) -> np.ndarray:
        """Nearest centroid of every frame: (F, n_mels) -> (F,) int64."""
        # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2; ||x||^2 is constant per frame.
        scores = logmel @ self.centroids.T * -2.0 + (self.centroids**2).sum(axis=1)
        return scores.argmin(axis=1).astype(np.int64)

    def encode(self, logmel: np.ndarray) -> list[int]:
        """De-duplicated units of one utterance's log-mel (F, n_mels)."""
        return dedup_units(self.frame_units(logmel).tolist())[0]

    def save(self, path: Path) -> None:
        """Write the model as ``.npz`` (arrays plus ``mel_<field>`` scalars)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        mel_fields = {f"mel_{k}": np.asarray(v) for k, v in dataclasses.asdict(self.mel).items()}
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, version=np.asarray(UNIT_MODEL_VERSION), centroids=self.centroids,
                 unit_mean_logmel=self.unit_mean_logmel,
                 unit_mean_run_length=self.unit_mean_run_length, unit_counts=self.unit_counts,
                 **mel_fields)
        tmp.replace(path)


def load_unit_model(path: Path) -> UnitModel:
    """Read a :class:`UnitModel` written by :meth:`UnitModel.save`.

    Raises:
        ValueError: the file lacks a field or has another version.
    """
    with np.load(path) as data:
        if int(data.get("version", -1)) != UNIT_MODEL_VERSION:
            raise ValueError(f"{path}: unit model version {data.get('version')} is not "
                             f"{UNIT_MODEL_VERSION}")
        mel_kwargs = {}
        for field in dataclasses.fields(MelSettings):
            value = data[f"mel_{field.name}"].item()
            mel_kwargs[field.name] = value
        return UnitModel(centroids=data["centroids"],
                         unit_mean_logmel=data["unit_mean_logmel"],
                         unit_mean_run_length=data["unit_mean_run_length"],
                         unit_counts=data["unit_counts"], mel=MelSettings(**mel_kwargs))


def effective_num_units(num_frames: int, requested: int, min_frames_per_unit: int = 10) -> int:
    """K actually fitted: the requested K, shrunk when there are too few frames to fill it.

    A tiny corpus (20 pairs, ~2,000 frames) cannot support K = 500 clusters; with fewer than
    ``min_frames_per_unit`` frames per cluster k-means degenerates into memorising frames.
    """
    return int(max(2, min(requested, num_frames // min_frames_per_unit)))


def fit_unit_model(logmels: Sequence[np.ndarray], num_units: int, seed: int = 0,
                   settings: MelSettings = MelSettings(),
                   min_frames_per_unit: int = 10) -> UnitModel:
    """Fit k-means units on log-mel frames of the given utterances.

    Args:
        logmels: per-utterance log-mel, each (F_i, n_mels).
        num_units: requested K (shrunk by :func:`effective_num_units` if needed).
        seed: k-means random state.
        settings: the mel settings the frames were computed with.

    Returns:
        The fitted :class:`UnitModel`.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    frames = np.concatenate(logmels, axis=0).astype(np.float32)
    k = effective_num_units(frames.shape[0], num_units, min_frames_per_unit)
    if k < num_units:
        logger.warning("only %d fitting frames: K shrunk from %d to %d", frames.shape[0],
                       num_units, k)
    if frames.shape[0] <= _EXACT_KMEANS_MAX_FRAMES:
        # Tiny corpora: exact Lloyd k-means is faster here than mini-batches with n_init=3.
        kmeans = KMeans(n_clusters=k, n_init=1, random_state=seed)
    else:
        kmeans = MiniBatchKMeans(n_clusters=k, batch_size=4096, n_init=3, max_iter=200,
                                 random_state=seed)
    kmeans.fit(frames)
    centroids = kmeans.cluster_centers_.astype(np.float32)
    model = UnitModel(centroids=centroids, unit_mean_logmel=centroids.copy(),
                      unit_mean_run_length=np.ones(k, dtype=np.float32),
                      unit_counts=np.zeros(k, dtype=np.int64), mel=settings)
    _fill_unit_statistics(model, logmels)
    return model


def _fill_unit_statistics(model: UnitModel, logmels: Sequence[np.ndarray]) -> None:
    """Per-unit mean log-mel, frame counts and mean run lengths over the fitting utterances."""
    k = model.num_units
    sums = np.zeros_like(model.centroids, dtype=np.float64)
    counts = np.zeros(k, dtype=np.int64)
    run_sums = np.zeros(k, dtype=np.float64)
    run_counts = np.zeros(k, dtype=np.int64)
    for logmel in logmels:
        frame_units = model.frame_units(logmel)
        np.add.at(sums, frame_units, logmel)
        counts += np.bincount(frame_units, minlength=k)
        units, runs = dedup_units(frame_units.tolist())
        np.add.at(run_sums, units, runs)
        run_counts += np.bincount(units, minlength=k)
    seen = counts > 0
    model.unit_mean_logmel[seen] = (sums[seen] / counts[seen, None]).astype(np.float32)
    model.unit_counts = counts
    has_runs = run_counts > 0
    model.unit_mean_run_length[has_runs] = run_sums[has_runs] / run_counts[has_runs]
