"""Whisper-encoder units: k-means over Whisper tiny.en's encoder states of the target speech,
spoken by the embedded vocoder from the log-mel of their frames (``--unit-type whisper``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from echostream_fairseq.data.audio import read_wav
from echostream_fairseq.data.manifests import read_tsv
from echostream_fairseq.data.text import parse_units
from echostream_fairseq.data.units import (LogMelExtractor, UnitModel, analysis_frames,
                                           load_unit_model, whisper_encoder_frames)
from echostream_fairseq.data.validate import find_problems


@pytest.fixture(scope="module")
def whisper_corpus(tiny_corpus, prepare_mini, tmp_path_factory) -> tuple[Path, str]:
    """The tiny corpus rebuilt from stage 5 with Whisper-encoder units, and the builder's log."""
    data = tmp_path_factory.mktemp("whisper_units") / "data"
    shutil.copytree(tiny_corpus, data)
    return data, prepare_mini(data, "--unit-type", "whisper", "--skip-asr").stderr


def test_encoder_states_are_50_hz_deterministic_and_aligned_to_the_log_mel(tiny_corpus):
    row = read_tsv(tiny_corpus / "test_sampled.tsv")[0]
    samples, _ = read_wav(tiny_corpus / "wav" / "target" / f"{row['id']}.wav")
    states = whisper_encoder_frames(samples)
    assert states.dtype == np.float32 and states.shape[1] == 384
    assert abs(states.shape[0] - len(samples) / 320) <= 2  # 50 states per second
    assert np.array_equal(states, whisper_encoder_frames(samples))
    # ... whatever the caller's BLAS threads (the mel's float32 matmul once made them differ
    # by up to 0.09 between one and two threads, and a corpus build's units with them)
    from threadpoolctl import threadpool_limits
    for threads in (1, 2):
        with threadpool_limits(threads, user_api="blas"):
            assert np.array_equal(states, whisper_encoder_frames(samples)), threads
    logmel = LogMelExtractor()(samples)
    frames = analysis_frames("whisper", samples, logmel)
    assert frames.shape == (logmel.shape[0], 384)  # one per log-mel frame
    assert analysis_frames("logmel", samples, logmel) is logmel
    with pytest.raises(ValueError, match="unknown unit features 'hubert'"):
        analysis_frames("hubert", samples, logmel)


def test_a_whisper_corpus_holds_units_of_the_encoder_states(whisper_corpus):
    data, log = whisper_corpus
    assert "Stage 3: target speech: done already, skipped" in log  # the speech is the same
    model = load_unit_model(data / "units" / "unit_model.npz")
    k = model.num_units
    assert model.features == "whisper" and 2 <= k <= 500
    assert model.centroids.shape == (k, 384) and model.unit_mean_logmel.shape == (k, 80)
    report = json.loads((data / "report.json").read_text(encoding="utf-8"))
    assert report["units"]["num_units"] == k and report["units"]["unit_type"] == "whisper"
    assert "Whisper-encoder k-means" in (data / "REPORT.md").read_text(encoding="utf-8")
    for name in ("train_sampled.units.tsv", "dev_sampled.units.tsv", "test_sampled.tsv"):
        assert find_problems(data / name, k) == []
    row = read_tsv(data / "test_sampled.tsv")[0]
    samples, _ = read_wav(data / "wav" / "target" / f"{row['id']}.wav")
    logmel = LogMelExtractor()(samples)
    assert parse_units(row["tgt_audio"]) == model.encode(model.analysis_frames(samples, logmel))


def test_the_embedded_vocoder_is_fitted_on_whisper_units_and_speaks_them(whisper_corpus,
                                                                       tmp_path):
    from echostream_fairseq.cli import fit_vocoder, measure_vocoder
    from echostream_fairseq.vocoder import build_vocoder

    data, _ = whisper_corpus
    assert fit_vocoder.main(["--data-dir", str(data)]) == 0
    vocoder = build_vocoder(data / "config_gcmvn.yaml")
    row = read_tsv(data / "test_sampled.tsv")[0]
    speech = vocoder.synthesize(parse_units(row["tgt_audio"]))
    target, _ = read_wav(data / "wav" / "target" / f"{row['id']}.wav")
    assert 0.5 * len(target) < len(speech) < 2.0 * len(target)  # durations from the unit runs
    out = tmp_path / "scores.json"
    assert measure_vocoder.main(["--data-dir", str(data), "--max-utterances", "1",
                                 "--no-ceiling", "--output", str(out)]) == 0
    scores = json.loads(out.read_text(encoding="utf-8"))
    assert scores["num_units"] == vocoder.num_units
    assert scores["variants"]["default"]["audio_s"] > 0


def test_unit_models_remember_their_features_and_old_files_read_as_log_mel(tiny_corpus,
                                                                           tmp_path):
    model = load_unit_model(tiny_corpus / "units" / "unit_model.npz")
    assert model.features == "logmel"
    whisper = UnitModel(centroids=np.zeros((3, 384), np.float32),
                        unit_mean_logmel=model.unit_mean_logmel[:3],
                        unit_mean_run_length=np.ones(3, np.float32),
                        unit_counts=np.ones(3, np.int64), mel=model.mel, features="whisper")
    whisper.save(tmp_path / "whisper.npz")
    assert load_unit_model(tmp_path / "whisper.npz").features == "whisper"
    with np.load(tiny_corpus / "units" / "unit_model.npz") as data:
        old = {key: data[key] for key in data.files if key != "features"}
    np.savez(tmp_path / "old.npz", **old)
    assert load_unit_model(tmp_path / "old.npz").features == "logmel"
