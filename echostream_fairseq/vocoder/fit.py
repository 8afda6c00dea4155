"""Fit the embedded vocoder's durations and spectra on a corpus (``echostream-fit-vocoder``).

The manifests hold de-duplicated units only, so run lengths are recomputed: the train split's
target wavs go through the same log-mel analysis and nearest-centroid assignment as the corpus
builder (``UnitModel.frame_units``), then runs are counted. The same pass collects each run's
log-mel frames for the context spectra (mean log-mel of a unit between given neighbours).

Defaults (measured with ``echostream-measure-vocoder`` on the full corpus, see the README):
context durations (min count 2) and context spectra (min count 3, residual rank 24). Context
spectra were what lifted resynthesis ASR-BLEU (64.2 -> 71.7 on the 504 test sentences); better
duration predictors (an MLP over +-3 units) lowered the held-out duration error a little but not
ASR-BLEU.
On a small corpus most contexts are rare and back off to per-unit means, so the same fit works.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from echostream_fairseq.data.audio import read_wav
from echostream_fairseq.data.manifests import read_tsv
from echostream_fairseq.data.text import dedup_units
from echostream_fairseq.data.units import LogMelExtractor, UnitModel, load_unit_model
from echostream_fairseq.vocoder.centroid import CentroidVocoder, CentroidVocoderSettings
from echostream_fairseq.vocoder.context import ContextAccumulator, ContextModel
from echostream_fairseq.vocoder.duration import fit_duration_model

logger = logging.getLogger(__name__)

__all__ = ["SPECTRA_MIN_COUNT", "SPECTRA_RANK", "UnitRuns", "corpus_unit_runs",
           "fit_centroid_vocoder", "fit_spectra", "read_unit_model", "target_wav"]

# (units (U,), run lengths (U,), log-mel frames (sum(runs), n_mels)) of one utterance.
UnitRuns = tuple[list[int], list[int], np.ndarray]

TRAIN_MANIFEST = "train_sampled.units.tsv"
UNIT_MODEL = Path("units") / "unit_model.npz"
# Context spectra: min count 3 and residual rank 24 had the held-out log-mel error of full
# float32 tables at min count 2 (0.207 vs 0.210) at a ninth of the size (7 MB vs 66 MB on the
# full corpus).
SPECTRA_MIN_COUNT = 3
SPECTRA_RANK = 24


def read_unit_model(path: Union[str, Path]) -> UnitModel:
    """``load_unit_model`` with errors that name the file.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a key is missing or the version differs.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"unit model {path} does not exist (build the corpus first: "
                                f"scripts/prepare_mini.py)")
    try:
        return load_unit_model(path)
    except KeyError as err:
        raise ValueError(f"{path}: not a unit model, missing key {err}") from err


def target_wav(data_dir: Path, utt_id: str) -> Path:
    """Where the corpus builder puts the target (English) speech of an utterance."""
    return Path(data_dir) / "wav" / "target" / f"{utt_id}.wav"


def corpus_unit_runs(model: UnitModel, wavs: Iterable[Path]) -> list[UnitRuns]:
    """Frame units of each wav, de-duplicated: ``(units, run_lengths, logmel)`` per wav."""
    extractor = LogMelExtractor(model.mel)
    out = []
    for wav in wavs:
        samples, _ = read_wav(wav, expected_sr=model.mel.sample_rate)
        logmel = extractor(samples)
        units, runs = dedup_units(model.frame_units(model.analysis_frames(samples, logmel))
                                  .tolist())
        out.append((units, runs, logmel))
    return out


def fit_spectra(runs: Sequence[UnitRuns], model: UnitModel, min_count: int = SPECTRA_MIN_COUNT,
                kind: str = "context", rank: Optional[int] = SPECTRA_RANK) -> ContextModel:
    """Mean log-mel frame per unit and per unit context, values (K, n_mels).

    ``rank`` stores context residuals compactly (see :mod:`.context`); ``None``: full tables.
    """
    accumulator = ContextAccumulator(model.num_units, model.mel.n_mels)
    for units, lengths, logmel in runs:
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        accumulator.add(units, np.add.reduceat(logmel.astype(np.float64), starts, axis=0),
                        np.asarray(lengths, dtype=np.float64))
    return accumulator.finish(fallback=model.unit_mean_logmel, min_count=min_count, kind=kind,
                              rank=rank)


def fit_centroid_vocoder(data_dir: Union[str, Path], kind: str = "context",
                         spectra_kind: str = "context",
                         settings: CentroidVocoderSettings = CentroidVocoderSettings(),
                         ids: Optional[Sequence[str]] = None, min_count: int = 2,
                         spectra_min_count: int = SPECTRA_MIN_COUNT,
                         spectra_rank: Optional[int] = SPECTRA_RANK) -> CentroidVocoder:
    """Fit durations and spectra on a corpus's train split and build the vocoder.

    Args:
        data_dir: corpus folder (``train_sampled.units.tsv``, ``units/unit_model.npz``,
            ``wav/target/``).
        kind: duration model kind (``unit`` or ``context``).
        spectra_kind: ``context`` (per-context mean log-mel with back-off; the measured
            default, ~9 MB at K = 500 on 9,074 utterances) or ``unit`` (each unit's mean).
        settings: synthesis settings stored with the vocoder.
        ids: utterances to fit on (default: the whole train split).
        min_count: fewest examples for a context duration.
        spectra_min_count: fewest examples for a context spectrum.
        spectra_rank: principal directions kept of the context spectra residuals (``None``:
            full float32 tables).
    """
    data_dir = Path(data_dir)
    model = read_unit_model(data_dir / UNIT_MODEL)
    if ids is None:
        manifest = data_dir / TRAIN_MANIFEST
        if not manifest.is_file():
            raise FileNotFoundError(f"train manifest {manifest} does not exist")
        ids = [row["id"] for row in read_tsv(manifest)]
    runs = corpus_unit_runs(model, (target_wav(data_dir, i) for i in ids))
    durations = fit_duration_model([(u, r) for u, r, _ in runs], model.num_units,
                                   fallback=model.unit_mean_run_length, min_count=min_count,
                                   kind=kind)
    # per-unit spectra drop the context tables below, so they need no compacting either
    spectra = fit_spectra(runs, model, min_count=spectra_min_count, kind=spectra_kind,
                          rank=spectra_rank if spectra_kind == "context" else None)
    if spectra_kind == "unit":  # drop the context tables nobody will read
        spectra = ContextModel.per_unit(spectra.unit_values)
    logger.info("fitted durations and spectra on %d utterances of %s", len(runs), data_dir)
    return CentroidVocoder(spectra, durations, model.mel, settings)
