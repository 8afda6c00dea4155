"""Fitting the discrete target units of the corpus: k-means over log-mel frames of target speech.

The fitted :class:`~echostream_fairseq.data.units.UnitModel` (centroids plus what a centroid
vocoder needs) is run-time data and lives in :mod:`echostream_fairseq.data.units`; only the
fitting, a corpus-building step, is here.
"""

from __future__ import annotations

import logging
from typing import Optional, Sequence

import numpy as np

from echostream_fairseq.data.text import dedup_units
from echostream_fairseq.data.units import MelSettings, UnitModel

logger = logging.getLogger(__name__)

__all__ = ["effective_num_units", "fit_unit_model"]

# Up to this many fitting frames (a few dozen utterances) k-means runs exactly; beyond, the
# measured MiniBatchKMeans recipe.
_EXACT_KMEANS_MAX_FRAMES = 20000


def effective_num_units(num_frames: int, requested: int, min_frames_per_unit: int = 10) -> int:
    """K actually fitted: the requested K, shrunk when there are too few frames to fill it.

    A tiny corpus (20 pairs, ~2,000 frames) cannot support K = 500 clusters; with fewer than
    ``min_frames_per_unit`` frames per cluster k-means degenerates into memorising frames.
    """
    return int(max(2, min(requested, num_frames // min_frames_per_unit)))


def fit_unit_model(logmels: Sequence[np.ndarray], num_units: int, seed: int = 0,
                   settings: MelSettings = MelSettings(),
                   min_frames_per_unit: int = 10,
                   analysis: Optional[Sequence[np.ndarray]] = None,
                   features: str = "logmel") -> UnitModel:
    """Fit k-means units on frames of the given utterances.

    Args:
        logmels: per-utterance log-mel, each (F_i, n_mels): what each unit's statistics (and so
            the vocoder) are made of.
        num_units: requested K (shrunk by :func:`effective_num_units` if needed).
        seed: k-means random state.
        settings: the mel settings the frames were computed with.
        analysis: per-utterance frames k-means runs on, each (F_i, D), one per log-mel frame
            (default: the log-mel itself).
        features: what ``analysis`` is (:attr:`UnitModel.features`).

    Returns:
        The fitted :class:`UnitModel`.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    analysis = logmels if analysis is None else analysis
    frames = np.concatenate(analysis, axis=0).astype(np.float32)
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
    mean_logmel = np.concatenate(logmels, axis=0).mean(axis=0, dtype=np.float64)
    model = UnitModel(centroids=centroids,
                      unit_mean_logmel=np.tile(mean_logmel.astype(np.float32), (k, 1)),
                      unit_mean_run_length=np.ones(k, dtype=np.float32),
                      unit_counts=np.zeros(k, dtype=np.int64), mel=settings, features=features)
    if features == "logmel":
        model.unit_mean_logmel = centroids.copy()  # an unseen unit sounds like its centroid
    _fill_unit_statistics(model, logmels, analysis)
    return model


def _fill_unit_statistics(model: UnitModel, logmels: Sequence[np.ndarray],
                          analysis: Sequence[np.ndarray]) -> None:
    """Per-unit mean log-mel, frame counts and mean run lengths over the fitting utterances."""
    k = model.num_units
    sums = np.zeros((k, logmels[0].shape[1]), dtype=np.float64)
    counts = np.zeros(k, dtype=np.int64)
    run_sums = np.zeros(k, dtype=np.float64)
    run_counts = np.zeros(k, dtype=np.int64)
    for logmel, frames in zip(logmels, analysis):
        frame_units = model.frame_units(frames)
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
