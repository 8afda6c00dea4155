"""Shipped models: the export writes a self-contained folder (float16 weights, no optimizer state,
relative YAMLs, sha256 of every file), a name or the folder loads wherever a checkpoint does and
streams as the float32 original, a damaged or missing model is one line and exit 2, a failed
export leaves the previous model; and the model shipped in models/ streams what its card says."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from _fairseq_cli import TINY_MODEL, corpus_dir, load_script
from echostream_fairseq.checkpoint_safety import safe_torch_load
from echostream_fairseq.checkpoints import load_model_and_task, read_model_state
from echostream_fairseq.cli import evaluate as evaluate_cli
from echostream_fairseq.cli import export_model
from echostream_fairseq.corpus.build import build_test_only
from echostream_fairseq.data.audio import read_wav
from echostream_fairseq.data.manifests import read_tsv
from echostream_fairseq.data.text import parse_units
from echostream_fairseq.evaluation.streaming_eval import UtteranceRun, stream_utterance
from echostream_fairseq.evaluation.testset import load_test_set
from echostream_fairseq.shipped import CARD_JSON, find_shipped_model
from echostream_fairseq.streaming import StreamingS2STPipeline
from echostream_fairseq.vocoder.piper_phonemes import phoneme_units

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "echostream-mini-de-en"
MAX_SHIPPED_BYTES = 40 * 1000 * 1000


def _export(checkpoint: Path, corpus: Path, output: Path, *extra: str) -> int:
    return export_model.main(["--checkpoint", str(checkpoint), "--data-dir", str(corpus),
                              "--manifest", str(corpus / "test_sampled.tsv"),
                              "--output-dir", str(output), "--log-level", "WARNING", *extra])


@pytest.fixture(scope="module")
def exported(tiny_corpus: Path, talkative_checkpoint: Path, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("models") / "tiny-de-en"
    assert _export(talkative_checkpoint, corpus_dir(tiny_corpus), output) == 0
    return output


def _streamed(model, task, manifest: Path) -> dict:
    pipeline = StreamingS2STPipeline.from_task(model, task, export_model.record_config(model))
    utterance = load_test_set(manifest, max_utterances=1).utterances[0]
    samples, rate = read_wav(utterance.wav)
    run = UtteranceRun(utterance, stream_utterance(pipeline, samples, rate,
                                                   export_model.RECORD_CHUNK_MS))
    seconds = sum(step.speech.size for step in run.steps) / pipeline.vocoder.sample_rate
    return {"asr_text": run.asr_text, "target_text": run.target_text, "speech_s": seconds}


def test_the_export_is_weights_only_fp16_with_relative_yamls_and_checksums(exported: Path):
    state = safe_torch_load(exported / "model.pt")
    assert "last_optimizer_state" not in state or not state["last_optimizer_state"]
    floats = [t for t in state["model"].values() if t.is_floating_point()]
    assert floats and all(str(t.dtype) == "torch.float16" for t in floats)
    card = json.loads((exported / CARD_JSON).read_text(encoding="utf-8"))
    assert card["name"] == "tiny-de-en" and card["dtype"] == "float16"
    for name, digest in card["files"].items():
        assert hashlib.sha256((exported / name).read_bytes()).hexdigest() == digest
    assert {"model.pt", "data/config_gcmvn.yaml", "data/config_mtl_asr_st_ctcst.yaml",
            "data/gcmvn.npz"} <= set(card["files"])
    for name in ("config_gcmvn.yaml", "config_mtl_asr_st_ctcst.yaml"):
        text = (exported / "data" / name).read_text(encoding="utf-8")
        assert "/" + str(REPO).split("/")[1] not in text and "/tmp" not in text  # no absolute path
    vocoder = yaml.safe_load((exported / "data" / "config_gcmvn.yaml").read_text())["vocoder"]
    assert (exported / "data" / vocoder["checkpoint"]).is_file()  # the vocoder travels too
    assert card["fp16_check"].startswith("1 of 1 test sentences")
    assert "# tiny-de-en" in (exported / "README.md").read_text(encoding="utf-8")


def test_a_name_loads_the_model_and_it_streams_as_its_float32_original(
        exported: Path, tiny_corpus: Path, talkative_checkpoint: Path, monkeypatch, tmp_path):
    monkeypatch.setenv("ECHOSTREAM_MODELS_DIR", str(exported.parent))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    corpus = corpus_dir(tiny_corpus)
    manifest = corpus / "test_sampled.tsv"
    # a data folder given beside a shipped model is not used: its own dictionaries are
    model, task = load_model_and_task("tiny-de-en", tmp_path / "elsewhere")
    original = _streamed(*load_model_and_task(talkative_checkpoint, corpus), manifest)
    shipped = _streamed(model, task, manifest)
    assert shipped["target_text"] == original["target_text"] != ""
    assert shipped["asr_text"] == original["asr_text"]
    assert abs(shipped["speech_s"] - original["speech_s"]) < 0.05
    recorded = json.loads((exported / CARD_JSON).read_text())["recorded"][0]
    assert (recorded["asr_text"], recorded["target_text"]) == (shipped["asr_text"],
                                                               shipped["target_text"])
    assert find_shipped_model(exported).name == "tiny-de-en"  # the folder works as well


def test_a_damaged_or_unknown_model_is_one_line_and_exit_2(exported: Path, tiny_corpus: Path,
                                                          tmp_path, monkeypatch, capsys):
    damaged = tmp_path / "tiny-de-en"
    shutil.copytree(exported, damaged)
    weights = bytearray((damaged / "model.pt").read_bytes())
    weights[len(weights) // 2] ^= 0xFF
    (damaged / "model.pt").write_bytes(bytes(weights))
    manifest = str(corpus_dir(tiny_corpus) / "test_sampled.tsv")
    argv = ["--manifest", manifest, "--output-dir", str(tmp_path / "eval"), "--no-offline",
            "--no-speech", "--no-progress"]
    assert evaluate_cli.main(["--checkpoint", str(damaged), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.pt: sha256" in err[0] and "damaged" in err[0], err
    monkeypatch.setenv("ECHOSTREAM_MODELS_DIR", str(exported.parent))
    assert evaluate_cli.main(["--checkpoint", "no-such-model", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such file or shipped model" in err[0], err
    assert "shipped models: tiny-de-en" in err[0]


def test_a_failed_export_leaves_the_previous_model_as_it_was(exported: Path, tiny_corpus: Path,
                                                             talkative_checkpoint: Path, tmp_path,
                                                             capsys):
    output = tmp_path / "tiny-de-en"
    shutil.copytree(exported, output)
    before = (output / CARD_JSON).read_bytes()
    broken = tmp_path / "corpus"
    shutil.copytree(corpus_dir(tiny_corpus), broken)
    # a copied corpus's YAMLs still name the original's files: they cannot travel
    assert _export(talkative_checkpoint, broken, output) == 2
    assert "outside the corpus folder" in capsys.readouterr().err
    (broken / "config_gcmvn.yaml").unlink()
    assert _export(talkative_checkpoint, broken, output) == 2
    assert "config_gcmvn.yaml: missing" in capsys.readouterr().err
    assert (output / CARD_JSON).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "tiny-de-en"]  # no leftovers


def test_the_test_only_build_speaks_the_corpus_test_sentences(tiny_corpus: Path, tmp_path):
    manifest = build_test_only(tmp_path / "demo", 1)
    row = read_tsv(manifest)[0]
    corpus_row = read_tsv(corpus_dir(tiny_corpus) / "test_sampled.tsv")[0]
    assert row["id"] == corpus_row["id"]  # the tiny corpus's test pair is the full corpus's first
    assert Path(row["src_audio"]).read_bytes() == (
        corpus_dir(tiny_corpus) / "wav" / "source" / f"{row['id']}.wav").read_bytes()
    assert parse_units(row["tgt_audio"]) == phoneme_units(row["tgt_text"])
    assert load_test_set(manifest).utterances[0].source_text == corpus_row["src_text"]


@pytest.mark.corpus
def test_the_shipped_model_streams_what_its_card_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    size = sum(p.stat().st_size for p in SHIPPED.rglob("*") if p.is_file())
    assert size <= MAX_SHIPPED_BYTES, f"{SHIPPED}: {size / 1e6:.1f} MB"
    shipped = find_shipped_model(SHIPPED.name)
    assert shipped is not None and shipped.folder == SHIPPED
    recorded = shipped.card["recorded"][0]
    manifest = build_test_only(tmp_path / "demo", 1)
    assert read_tsv(manifest)[0]["id"] == recorded["id"]
    streamed = _streamed(*load_model_and_task(SHIPPED.name), manifest)
    assert streamed["asr_text"] == recorded["asr_text"]
    assert streamed["target_text"] == recorded["target_text"] != ""
    assert abs(streamed["speech_s"] - recorded["speech_s"]) < 0.05


def test_float16_that_changes_the_output_is_refused_for_float32(tiny_corpus: Path,
                                                                 talkative_checkpoint: Path,
                                                                 tmp_path, monkeypatch):
    monkeypatch.setattr(export_model, "SPEECH_TOLERANCE_S", -1.0)  # any difference is too much
    output = tmp_path / "tiny-de-en"
    assert _export(talkative_checkpoint, corpus_dir(tiny_corpus), output) == 0
    card = json.loads((output / CARD_JSON).read_text(encoding="utf-8"))
    assert card["dtype"] == "float32" and card["fp16_check"].startswith("float16 was refused")
    state = safe_torch_load(output / "model.pt")
    assert all(str(t.dtype) == "torch.float32" for t in state["model"].values()
               if t.is_floating_point())
    assert find_shipped_model(output) is not None
    find_shipped_model(output).verify()  # the checksums are of the float32 file


def test_a_shipped_model_seeds_a_training_run_by_name(exported: Path, tiny_corpus: Path,
                                                      tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("ECHOSTREAM_MODELS_DIR", str(exported.parent))
    data = corpus_dir(tiny_corpus)
    torch.set_num_threads(1)
    code = load_script("train").main([
        "--config", str(REPO / "configs" / "train" / "echostream_mini.yaml"),
        "--train-manifest", str(data / "train_sampled.units.tsv"),
        "--dev-manifest", str(data / "dev_sampled.units.tsv"),
        "--save-dir", str(tmp_path / "run"), "--num-workers", "0", "--batch-size", "4",
        "--device", "cpu", "--init-from", "tiny-de-en", "--load-encoder", "--load-decoders",
        *TINY_MODEL, "--max-update", "1", "--disable-validation", "--no-epoch-checkpoints"])
    assert code == 0
    seed, _ = read_model_state(tmp_path / "run" / "initial_weights.pt")
    shipped, _ = read_model_state(exported / "model.pt")
    assert seed.keys() == shipped.keys()
    # embed_tokens is tied to output_projection, which the talkative fixture edited alone: the
    # loaded (tied) tensor is the projection's
    tied = {f"{d}.embed_tokens.weight": f"{d}.output_projection.weight"
            for d in ("decoder", "target_unigram_decoder")}
    assert all(torch.equal(seed[k], shipped[tied.get(k, k)].float()) for k in seed
               if shipped[k].is_floating_point())


def test_fairseq_generate_and_finetune_from_model_take_a_shipped_models_name(
        exported: Path, tiny_corpus: Path, tiny_num_units: int, tmp_path, monkeypatch):
    import torch
    from _fairseq_cli import TINY_MODEL, data_args, run_fairseq_train, tail
    from test_generate import run_generate, two_utterance_corpus

    monkeypatch.setenv("ECHOSTREAM_MODELS_DIR", str(exported.parent))
    corpus = corpus_dir(tiny_corpus)
    data = two_utterance_corpus(corpus, tmp_path / "gen")
    options = ("--gen-output", "text", "--beam", "1", "--max-len-a", "0", "--max-len-b", "20")
    by_name = run_generate(data, Path("tiny-de-en"), tiny_num_units, *options)
    by_file = run_generate(data, exported / "model.pt", tiny_num_units, *options)
    hypotheses = [line for line in by_name.splitlines() if line.startswith("D-")]
    assert len(hypotheses) == 2 and hypotheses == [
        line for line in by_file.splitlines() if line.startswith("D-")]
    save = tmp_path / "save"
    result = run_fairseq_train(data_args(corpus, save) + [
        "--arch", "echostream_mini", *TINY_MODEL, "--uni-encoder", "--ctc-upsample-rate", "10",
        "--optimizer", "adam", "--lr", "1e-12", "--max-tokens", "100000", "--max-update", "1",
        "--disable-validation", "--cpu", "--num-workers", "0", "--no-epoch-checkpoints",
        "--finetune-from-model", "tiny-de-en"])
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    assert str(exported / "model.pt") in result.stdout + result.stderr  # fairseq says it loaded it
    tuned, _ = read_model_state(save / "checkpoint_last.pt")
    shipped, _ = read_model_state(exported / "model.pt")
    name = "encoder.subsample.conv_layers.0.weight"
    # lr 1e-12: Adam moves each weight by about 1e-12, which float32 shows only on weights near
    # zero; far below float16's resolution, far above what a fresh initialisation would match
    assert torch.allclose(tuned[name], shipped[name].float(), rtol=0, atol=1e-9)
