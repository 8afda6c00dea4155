"""Unit vocoders: the embedded centroid vocoder, fairseq CodeHiFiGAN loading, streaming joins.

The centroid tests fit a real (tiny) unit model on synthetic voiced audio; the CodeHiFiGAN tests
save a small randomly initialised fairseq ``CodeGenerator`` in StreamSpeech's format. One test
runs ``scripts/fit_vocoder.py`` on the session's tiny corpus.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from echostream_fairseq.data.audio import SAMPLE_RATE
from echostream_fairseq.data.manifests import read_tsv
from echostream_fairseq.data.text import dedup_units, parse_units
from echostream_fairseq.data.units import LogMelExtractor, fit_unit_model
from echostream_fairseq.vocoder import (CentroidVocoder, CodeHiFiGANUnitVocoder,
                                        build_vocoder, describe_vocoder, fit_duration_model,
                                        load_centroid_vocoder, load_code_hifigan)
from echostream_fairseq.vocoder.context import ContextAccumulator, ContextModel
from echostream_fairseq.vocoder.duration import round_durations
from echostream_fairseq.vocoder.fit import fit_spectra

REPO_ROOT = Path(__file__).resolve().parents[1]


def _voiced(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Harmonic speech-like audio with a gliding pitch and a syllable-rate envelope."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = 140 + 60 * np.sin(2 * np.pi * 0.8 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    harmonics = sum(np.sin(k * phase) / k for k in range(1, 15))
    envelope = 0.4 + 0.3 * np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6))
    return (0.15 * harmonics * envelope + 0.005 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def unit_data() -> dict:
    """A K=24 unit model fitted on synthetic audio, and unit runs of each utterance."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    extractor = LogMelExtractor()
    logmels = [extractor(_voiced(2.0, rng)) for _ in range(5)]
    model = fit_unit_model(logmels, 24, seed=0)
    runs = [(*dedup_units(model.frame_units(lm).tolist()), lm) for lm in logmels]
    return {"model": model, "runs": runs}


@pytest.fixture(scope="module")
def vocoder(unit_data: dict) -> CentroidVocoder:
    model = unit_data["model"]
    durations = fit_duration_model([run[:2] for run in unit_data["runs"]], model.num_units,
                                   fallback=model.unit_mean_run_length)
    return CentroidVocoder(fit_spectra(unit_data["runs"], model), durations, model.mel)


def _stream(vocoder, units, chunk):
    state, pieces = None, []
    for start in range(0, len(units), chunk):
        piece, state = vocoder.synthesize_chunk(units[start:start + chunk], state,
                                                final=start + chunk >= len(units))
        pieces.append(piece)
    return pieces


def _join_jumps(pieces: list[np.ndarray], radius: int) -> tuple[float, float]:
    """Largest sample-to-sample jump within ``radius`` of a chunk join, and away from joins."""
    signal = np.concatenate(pieces)
    jumps = np.abs(np.diff(signal))
    joins = np.cumsum([p.shape[0] for p in pieces])[:-1]
    near = np.zeros(jumps.shape[0], dtype=bool)
    for join in joins:
        near[max(0, join - radius):join + radius] = True
    return float(jumps[near].max()), float(jumps[~near].max())


# -- embedded centroid vocoder --------------------------------------------------------------
def test_whole_utterance_length_follows_durations(vocoder: CentroidVocoder,
                                                  unit_data: dict) -> None:
    units = unit_data["runs"][0][0]
    audio = vocoder.synthesize(units)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert vocoder.sample_rate == unit_data["model"].mel.sample_rate
    assert audio.shape[0] == vocoder.frames_for(units).shape[0] * vocoder.samples_per_frame
    assert np.abs(audio).max() > 0.01


def test_resynthesis_spectrum_close_to_centroids(vocoder: CentroidVocoder,
                                                 unit_data: dict) -> None:
    units = unit_data["runs"][1][0]
    target = vocoder.frames_for(units)
    got = LogMelExtractor(vocoder.mel)(vocoder.synthesize(units))[:target.shape[0]]
    assert np.corrcoef(got.ravel(), target.ravel())[0, 1] > 0.9


@pytest.mark.parametrize("chunk", [1, 3, 8])
def test_streaming_matches_whole_without_clicks(vocoder: CentroidVocoder, unit_data: dict,
                                                chunk: int) -> None:
    units = unit_data["runs"][2][0]
    whole = vocoder.synthesize(units)
    pieces = _stream(vocoder, units, chunk)
    streamed = np.concatenate(pieces)
    assert streamed.shape == whole.shape  # same frames; every sample emitted exactly once
    extractor = LogMelExtractor(vocoder.mel)
    spectral = np.corrcoef(extractor(streamed).ravel(), extractor(whole).ravel())[0, 1]
    assert spectral > 0.98, spectral
    near_join, elsewhere = _join_jumps(pieces, vocoder.samples_per_frame // 4)
    # A click would be a jump far above the signal's own largest step; allow 20 % margin.
    assert near_join <= 1.2 * elsewhere, (near_join, elsewhere)
    assert near_join <= 1.2 * float(np.abs(np.diff(whole)).max())


def test_streaming_cost_is_constant_per_chunk(vocoder: CentroidVocoder,
                                              unit_data: dict) -> None:
    units = [u for run in unit_data["runs"] for u in run[0]] * 2
    cheap = vocoder.with_settings(griffin_lim_iters=1)  # the span, not the phase, is tested
    state, held = None, []
    for start in range(0, len(units), 4):
        _, state = cheap.synthesize_chunk(units[start:start + 4], state, final=False)
        held.append((state.raw_frames.shape[0], state.angles.shape[1]))
    # What a chunk touches (kept frames, Griffin-Lim span) stays bounded as the prefix grows.
    assert max(h[0] for h in held[5:]) <= max(h[0] for h in held[:5]) + 20
    assert max(h[1] for h in held[5:]) <= max(h[1] for h in held[:5]) + 20
    assert state.raw_offset > 0


def test_empty_and_one_unit_inputs(vocoder: CentroidVocoder) -> None:
    assert vocoder.synthesize([]).shape == (0,)
    one = vocoder.synthesize([3])  # shorter than the STFT window
    assert one.shape[0] == vocoder.frames_for([3]).shape[0] * vocoder.samples_per_frame
    audio, state = vocoder.synthesize_chunk([], None, final=False)
    assert audio.shape == (0,) and not state.finished
    audio, state = vocoder.synthesize_chunk([], state, final=True)
    assert audio.shape == (0,)
    with pytest.raises(ValueError, match="already finished"):
        vocoder.synthesize_chunk([1], state, final=True)


def test_unit_out_of_range_names_unit_and_k(vocoder: CentroidVocoder) -> None:
    k = vocoder.num_units
    with pytest.raises(ValueError, match=rf"unit {k} at position 1 .*K = {k}"):
        vocoder.synthesize([0, k, 1])
    with pytest.raises(ValueError, match="unit -1"):
        vocoder.synthesize_chunk([-1], None, final=True)


def test_unit_model_file_errors_name_the_file(tmp_path: Path, unit_data: dict) -> None:
    missing = tmp_path / "nowhere.npz"
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        load_centroid_vocoder(missing)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, centroids=np.zeros((2, 80)))
    with pytest.raises(ValueError, match=r"wrong\.npz.*missing keys"):
        load_centroid_vocoder(wrong)
    partial = tmp_path / "unit_model.npz"
    unit_data["model"].save(partial)
    with np.load(partial) as data:
        kept = {k: data[k] for k in data.files if k != "mel_n_fft"}
    np.savez(partial, **kept)
    with pytest.raises(ValueError, match=r"unit_model\.npz.*mel_n_fft"):
        load_centroid_vocoder(partial)


def test_vocoder_file_round_trip(tmp_path: Path, vocoder: CentroidVocoder,
                                 unit_data: dict) -> None:
    path = tmp_path / "units" / "vocoder.npz"
    vocoder.save(path)
    loaded = build_vocoder({}, data_dir=tmp_path)
    assert isinstance(loaded, CentroidVocoder) and loaded.durations.kind == "context"
    units = unit_data["runs"][3][0]
    np.testing.assert_allclose(loaded.synthesize(units), vocoder.synthesize(units), atol=1e-5)
    unit_model_only = tmp_path / "bare"
    unit_data["model"].save(unit_model_only / "units" / "unit_model.npz")
    fallback = build_vocoder({}, data_dir=unit_model_only)
    assert fallback.durations.kind == "unit" and fallback.synthesize(units).size > 0


def test_duration_model_back_off_and_rounding() -> None:
    runs = [([1, 2, 3], [2, 5, 1]), ([1, 2, 3], [2, 5, 1]), ([4, 2, 1], [1, 1, 3])]
    model = fit_duration_model(runs, 5, min_count=2)
    assert model.predict([2], left=1, right=3)[0, 0] == pytest.approx(5.0)  # full context
    assert model.predict([2], left=4, right=3)[0, 0] == pytest.approx(5.0)  # (unit, next)
    assert model.predict([1], left=None, right=0)[0, 0] == pytest.approx(2.0)  # (prev, unit)
    assert model.predict([2], left=4, right=0)[0, 0] == pytest.approx(11 / 3)  # unit mean
    assert model.with_kind("unit").predict([2], left=1, right=3)[0, 0] == pytest.approx(11 / 3)
    assert model.right_context == 1 and model.with_kind("unit").right_context == 0
    frames, carry = round_durations(np.full(10, 1.26), 0.0, cumulative=True)
    assert frames.min() >= 1 and abs(frames.sum() + carry - 12.6) < 1e-9
    assert round_durations(np.array([0.2, 1.6]), cumulative=False)[0].tolist() == [1, 2]


def _random_unit_sequences(rng: np.random.Generator, count: int, num_units: int,
                           length: int = 30) -> list[np.ndarray]:
    """De-duplicated unit sequences (no unit follows itself)."""
    out = []
    for _ in range(count):
        units = [int(rng.integers(num_units))]
        while len(units) < length:
            unit = int(rng.integers(num_units))
            if unit != units[-1]:
                units.append(unit)
        out.append(np.asarray(units))
    return out


def test_context_durations_beat_unit_means_on_held_out_runs() -> None:
    # Run lengths that depend on the next unit (as a vowel lengthens before a voiced
    # consonant), plus noise: the context model must find it on runs it was not fitted on.
    rng = np.random.default_rng(0)
    num_units = 12
    own_length = rng.integers(1, 3, num_units)

    def run_lengths(units: np.ndarray) -> np.ndarray:
        following = np.append(units[1:], -1)
        return own_length[units] + 2 * (following % 3 == 0) + (rng.random(units.size) < 0.2)

    fitted = [(u, run_lengths(u)) for u in _random_unit_sequences(rng, 300, num_units)]
    held_out = [(u, run_lengths(u)) for u in _random_unit_sequences(rng, 100, num_units)]
    model = fit_duration_model(fitted, num_units)
    truth = np.concatenate([runs for _, runs in held_out])

    def held_out_mse(predictor) -> float:
        predicted = np.concatenate([predictor.predict(u)[:, 0] for u, _ in held_out])
        return float(np.mean((predicted - truth) ** 2))

    context_mse, unit_mse = held_out_mse(model), held_out_mse(model.with_kind("unit"))
    # Measured 0.19 vs 0.99 (the noise alone is 0.16).
    assert context_mse < 0.25 and unit_mse > 0.8, (context_mse, unit_mse)


def test_context_spectra_beat_unit_means_and_store_compactly(tmp_path: Path) -> None:
    # Spectra whose residual from the unit's mean depends on the previous unit (coarticulation)
    # and lies in a 3-dimensional subspace: rank 3 must keep it, and a save/load must not change
    # a prediction.
    rng = np.random.default_rng(1)
    num_units, width = 10, 16
    unit_means = rng.normal(size=(num_units, width))
    directions = rng.normal(size=(3, width))
    pull = rng.normal(size=(num_units + 1, 3))  # row -1: utterance start

    def run_sums(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lengths = rng.integers(1, 4, units.size).astype(np.float64)
        previous = np.concatenate([[-1], units[:-1]])
        frames = unit_means[units] + pull[previous] @ directions
        frames += 0.05 * rng.normal(size=frames.shape)
        return frames * lengths[:, None], lengths

    fitted = _random_unit_sequences(rng, 200, num_units)
    held_out = _random_unit_sequences(rng, 50, num_units)
    models = {}
    for rank in (None, 3):
        accumulator = ContextAccumulator(num_units, width)
        for units in fitted:
            accumulator.add(units, *run_sums(units))
        models[rank] = accumulator.finish(min_count=2, rank=rank)
    truth = np.concatenate([unit_means[u] + pull[np.concatenate([[-1], u[:-1]])] @ directions
                            for u in held_out])

    def held_out_mse(model) -> float:
        return float(np.mean((np.concatenate([model.predict(u) for u in held_out]) - truth) ** 2))

    full, compact = held_out_mse(models[None]), held_out_mse(models[3])
    unit = held_out_mse(models[None].with_kind("unit"))
    # Measured 0.037 (full), 0.038 (rank 3), 1.56 (unit means); what is left of the full
    # tables' error is mostly utterance-final units, whose rare contexts back off.
    assert full < 0.06 and compact < 1.05 * full and unit > 1.0, (full, compact, unit)
    assert models[3].basis.shape == (3, width)
    assert models[3].tables["triple"][1].dtype == np.float16
    np.savez(tmp_path / "spectra.npz", **models[3].arrays("spec"))
    with np.load(tmp_path / "spectra.npz") as data:  # allow_pickle=False: plain arrays only
        loaded = ContextModel.from_arrays(data, "spec")
    for units in held_out[:5]:
        np.testing.assert_array_equal(loaded.predict(units), models[3].predict(units))


# -- fairseq CodeHiFiGAN --------------------------------------------------------------------
def _tiny_hifigan_config(channels: int = 32) -> dict:
    return {"resblock": "1", "upsample_rates": [5, 4, 4, 2, 2],
            "upsample_kernel_sizes": [11, 8, 8, 4, 4], "upsample_initial_channel": channels,
            "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3, 5]],
            "num_embeddings": 30, "embedding_dim": 8, "model_in_dim": 8, "code_hop_size": 320,
            "f0": False, "sampling_rate": SAMPLE_RATE,
            "dur_predictor_params": {"encoder_embed_dim": 8, "var_pred_hidden_dim": 8,
                                     "var_pred_kernel_size": 3, "var_pred_dropout": 0.5}}


def _save_hifigan(folder: Path, config: dict, seed: int = 0) -> tuple[Path, Path]:
    from fairseq.models.text_to_speech.codehifigan import CodeGenerator

    torch.manual_seed(seed)
    generator = CodeGenerator(config)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"generator": generator.state_dict()}, folder / "g_00000100")
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder / "config.json", folder / "g_00000100"


@pytest.fixture(scope="module")
def hifigan_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _save_hifigan(tmp_path_factory.mktemp("hifigan"), _tiny_hifigan_config())


def test_code_hifigan_matches_fairseq_duration_prediction(hifigan_files) -> None:
    config_path, checkpoint = hifigan_files
    vocoder = load_code_hifigan(config_path, checkpoint)
    units = np.random.default_rng(1).integers(0, 30, 25).tolist()
    audio = vocoder.synthesize(units)
    with torch.inference_mode():
        reference = vocoder.generator(code=torch.tensor([units]), dur_prediction=True)
    np.testing.assert_allclose(audio, reference.reshape(-1).numpy().clip(-1, 1), atol=1e-6)
    assert audio.shape[0] == vocoder.durations(units).sum() * vocoder.samples_per_frame
    assert vocoder.synthesize([]).shape == (0,)
    with pytest.raises(ValueError, match="unit 30 .*K = 30"):
        vocoder.synthesize([30])


def test_code_hifigan_streaming_joins(hifigan_files) -> None:
    vocoder = load_code_hifigan(*hifigan_files)
    units = np.random.default_rng(2).integers(0, 30, 40).tolist()
    whole = vocoder.synthesize(units)
    pieces = _stream(vocoder, units, 5)
    streamed = np.concatenate(pieces)
    assert abs(streamed.shape[0] - whole.shape[0]) <= 2 * vocoder.samples_per_frame
    n = min(streamed.shape[0], whole.shape[0])
    assert np.corrcoef(streamed[:n], whole[:n])[0, 1] > 0.95
    near_join, elsewhere = _join_jumps(pieces, vocoder.samples_per_frame // 4)
    assert near_join <= 1.2 * elsewhere


def test_code_hifigan_errors(tmp_path: Path, hifigan_files) -> None:
    config_path, checkpoint = hifigan_files
    config = _tiny_hifigan_config()
    del config["upsample_rates"]
    bad_json = tmp_path / "no_rates.json"
    bad_json.write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ValueError, match=r"no_rates\.json.*upsample_rates"):
        load_code_hifigan(bad_json, checkpoint)
    wider = _save_hifigan(tmp_path / "wide", _tiny_hifigan_config(channels=64))[1]
    with pytest.raises(ValueError, match=r"shape mismatches .*checkpoint"):
        load_code_hifigan(config_path, wider)
    no_generator = tmp_path / "model.pt"
    torch.save({"model": {}}, no_generator)
    with pytest.raises(ValueError, match="no 'generator'"):
        load_code_hifigan(config_path, no_generator)


def test_build_vocoder_reads_data_config(tmp_path: Path, hifigan_files) -> None:
    config_path, checkpoint = hifigan_files
    yaml_path = tmp_path / "config_gcmvn.yaml"
    yaml_path.write_text(yaml.safe_dump({"input_channels": 1, "vocoder": {
        "type": "code_hifigan", "config": str(config_path), "checkpoint": str(checkpoint)}}))
    assert isinstance(build_vocoder(yaml_path), CodeHiFiGANUnitVocoder)
    with pytest.raises(ValueError, match="unknown vocoder type"):
        build_vocoder({"vocoder": {"type": "wavenet"}})


# -- the real corpus --------------------------------------------------------------------------
def test_fit_vocoder_script_on_tiny_corpus(tiny_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "vocoder.npz"
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "fit_vocoder.py"),
                    "--data-dir", str(tiny_corpus), "--output", str(out)], check=True,
                   cwd=REPO_ROOT, capture_output=True, timeout=300)
    vocoder = load_centroid_vocoder(out)
    # Few contexts of a tiny corpus reach the min counts; the rest back off to unit means.
    assert vocoder.spectra.kind == "context" and vocoder.durations.kind == "context"
    row = read_tsv(tiny_corpus / "test_sampled.tsv")[0]
    audio = vocoder.synthesize(parse_units(row["tgt_audio"]))
    assert audio.shape[0] > vocoder.sample_rate // 2 and np.isfinite(audio).all()
    default = build_vocoder(tiny_corpus / "config_gcmvn.yaml")
    assert isinstance(default, CentroidVocoder) and default.num_units == vocoder.num_units


def test_describe_vocoder_names_what_build_vocoder_would_load(tmp_path: Path) -> None:
    units = tmp_path / "units"
    units.mkdir()
    assert describe_vocoder({}, tmp_path) == (
        f"echostream_centroid {units / 'vocoder.npz'} (MISSING)", [units / "vocoder.npz"])
    (units / "unit_model.npz").write_bytes(b"")
    assert describe_vocoder({}, tmp_path) == (
        f"echostream_centroid {units / 'unit_model.npz'} (found)", [])
    (units / "vocoder.npz").write_bytes(b"")  # the fitted file wins, as in build_vocoder
    assert describe_vocoder({}, tmp_path) == (
        f"echostream_centroid {units / 'vocoder.npz'} (found)", [])
    hifigan = {"vocoder": {"type": "code_hifigan", "config": "hifigan.json",
                           "checkpoint": "/abs/g.pt"}}
    assert describe_vocoder(hifigan, tmp_path) == (
        f"code_hifigan {tmp_path / 'hifigan.json'} (MISSING), /abs/g.pt (MISSING)",
        [tmp_path / "hifigan.json", Path("/abs/g.pt")])
    with pytest.raises(ValueError, match="unknown vocoder type 'wavenet'"):
        describe_vocoder({"vocoder": {"type": "wavenet"}}, tmp_path)
    with pytest.raises(ValueError, match="lacks the key 'checkpoint'"):
        describe_vocoder({"vocoder": {"type": "echostream_centroid"}}, tmp_path)
