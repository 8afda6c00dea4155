"""Discrete target units: k-means over 50 Hz frames of the target speech.

The frames are the log-mel itself (``features = "logmel"``, the default) or the encoder states of
the Whisper tiny.en model the project ships for scoring (``features = "whisper"``: 384-d, 50 Hz,
a phonetic representation, as HuBERT's is for StreamSpeech); either way each unit keeps the mean
log-mel and run length of its frames, which is what the centroid vocoder speaks.

Recipe measured in ``unit-vocoder-feasibility.md``: 80-bin magnitude log-mel (n_fft 1024, hop
320 = 20 ms at 16 kHz, slaney), MiniBatchKMeans with K = 500 fitted on a few hundred utterances
of one piper voice, frame units de-duplicated. A unit maps back to speech through its mean log-mel
and mean run length (centroid vocoder + Griffin-Lim), so :class:`UnitModel` saves both, with the
mel settings, in one ``.npz`` (``data/units/unit_model.npz``). Fitting it is a corpus-building
step: :mod:`echostream_fairseq.corpus.units`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchaudio

from echostream_fairseq.data._moved import moved_names
from echostream_fairseq.data.audio import SAMPLE_RATE
from echostream_fairseq.data.text import dedup_units

logger = logging.getLogger(__name__)

__all__ = [
    "LogMelExtractor",
    "MelSettings",
    "UnitModel",
    "UNIT_FEATURES",
    "analysis_frames",
    "load_unit_model",
    "whisper_encoder_frames",
]

UNIT_MODEL_VERSION = 1
# deprecated aliases: the k-means fitting is a corpus-building step now
__getattr__ = moved_names(__name__, "echostream_fairseq.corpus.units",
                          ("effective_num_units", "fit_unit_model"))


@dataclass(frozen=True)
class MelSettings:
    """Log-mel analysis the units are defined over (saved with the unit model)."""

    sample_rate: int = SAMPLE_RATE
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
        features: what the centroids live in: ``"logmel"`` (centroids (K, n_mels)) or
            ``"whisper"`` (Whisper tiny.en encoder states, (K, 384)).
    """

    centroids: np.ndarray
    unit_mean_logmel: np.ndarray
    unit_mean_run_length: np.ndarray
    unit_counts: np.ndarray
    mel: MelSettings
    features: str = "logmel"

    def analysis_frames(self, samples: np.ndarray, logmel: np.ndarray) -> np.ndarray:
        """The frames this model's units are found in (:func:`analysis_frames`)."""
        return analysis_frames(self.features, samples, logmel)

    @property
    def num_units(self) -> int:
        """K, what users pass as ``--target-code-size``."""
        return int(self.centroids.shape[0])

    def frame_units(self, frames: np.ndarray) -> np.ndarray:
        """Nearest centroid of every analysis frame: (F, D) -> (F,) int64."""
        # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2; ||x||^2 is constant per frame. In float64:
        # float32 BLAS rounding depends on how many threads split the product, and a near-tie
        # must not give a frame another unit on another machine.
        centroids = self.centroids.astype(np.float64)
        scores = np.asarray(frames, dtype=np.float64) @ centroids.T * -2.0 + (
            centroids**2).sum(axis=1)
        return scores.argmin(axis=1).astype(np.int64)

    def encode(self, frames: np.ndarray) -> list[int]:
        """De-duplicated units of one utterance's analysis frames (F, D)."""
        return dedup_units(self.frame_units(frames).tolist())[0]

    def save(self, path: Path) -> None:
        """Write the model as ``.npz`` (arrays plus ``mel_<field>`` scalars)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        mel_fields = {f"mel_{k}": np.asarray(v) for k, v in dataclasses.asdict(self.mel).items()}
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, version=np.asarray(UNIT_MODEL_VERSION), centroids=self.centroids,
                 unit_mean_logmel=self.unit_mean_logmel,
                 unit_mean_run_length=self.unit_mean_run_length, unit_counts=self.unit_counts,
                 features=np.asarray(self.features), **mel_fields)
        tmp.replace(path)


UNIT_FEATURES = ("logmel", "whisper")


def analysis_frames(features: str, samples: np.ndarray, logmel: np.ndarray) -> np.ndarray:
    """The frames units are found in, one per log-mel frame: the log-mel itself, or the Whisper
    encoder states of ``samples`` (16 kHz) cut or edge-padded to ``len(logmel)``."""
    if features == "logmel":
        return logmel
    if features != "whisper":
        raise ValueError(f"unknown unit features {features!r}; expected one of {UNIT_FEATURES}")
    states = whisper_encoder_frames(samples)
    if states.shape[0] >= logmel.shape[0]:
        return states[:logmel.shape[0]]
    return np.pad(states, ((0, logmel.shape[0] - states.shape[0]), (0, 0)), mode="edge")


@functools.lru_cache(maxsize=1)
def _whisper_encoder() -> Any:
    from echostream_fairseq.scoring.asr_bleu import load_whisper_tiny_en

    return load_whisper_tiny_en()


def whisper_encoder_frames(samples: np.ndarray) -> np.ndarray:
    """Whisper tiny.en encoder states of 16 kHz ``samples``: (F, 384) float32 at 50 Hz.

    The utterance is encoded alone, not padded to Whisper's 30 s window: 45x faster (0.03 s
    against 1.4 s for a 2 s utterance, measured), and deterministic; the states differ from the
    padded ones, which is no matter for units that are only ever computed this way.
    """
    import ctranslate2

    from echostream_fairseq.scoring.asr_bleu import one_blas_thread

    model = _whisper_encoder()
    with one_blas_thread():  # the states must not depend on the machine's thread count
        mel = model.feature_extractor(np.asarray(samples, dtype=np.float32))  # (80, 2F), 100 Hz
    mel = np.ascontiguousarray(mel[:, :max(2, mel.shape[1] - mel.shape[1] % 2)][None])
    states = model.model.encode(ctranslate2.StorageView.from_array(mel), to_cpu=True)
    return np.asarray(states, dtype=np.float32)[0]


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
                         unit_counts=data["unit_counts"], mel=MelSettings(**mel_kwargs),
                         # files written before Whisper units existed are log-mel ones
                         features=str(data["features"]) if "features" in data else "logmel")
