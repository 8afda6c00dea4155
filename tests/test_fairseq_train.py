"""Real ``fairseq-train`` runs on the tiny corpus: losses fall, validation runs, checkpoints load,
and StreamSpeech's own training command runs with only --user-dir/--arch changed."""

from argparse import Namespace
from pathlib import Path

import pytest
import torch

from _fairseq_cli import (
    DEV_SPLIT, TINY_MODEL, TRAIN_SPLIT, USER_DIR, code_size, corpus_dir, data_args, json_logs,
    run_fairseq_train, tail,
)

COMPONENTS = (
    "unit_ctc_loss",  # unit CTC
    "multitask_target_unigram_loss",  # MT cross-entropy
    "multitask_source_unigram_loss",  # ASR CTC
    "multitask_ctc_target_unigram_loss",  # ST CTC
)


@pytest.fixture(scope="module")
def trained_run(tiny_corpus, tmp_path_factory):
    """A 40-update run of a tiny echostream_mini (one batch per epoch, validation every 20)."""
    data = corpus_dir(tiny_corpus)
    save = tmp_path_factory.mktemp("train")
    args = data_args(data, save) + [
        "--arch", "echostream_mini", *TINY_MODEL,
        "--k1", "0", "--k2", "0", "--n1", "1", "--n2", "-1", "--multichunk", "--uni-encoder",
        "--ctc-upsample-rate", "10", "--label-smoothing", "0.1",
        "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--lr", "0.002", "--clip-norm", "1.0",
        "--max-tokens", "100000", "--required-batch-size-multiple", "1", "--max-update", "40",
        "--validate-interval", "20", "--save-interval", "20", "--no-epoch-checkpoints",
        "--no-progress-bar", "--log-format", "json", "--log-interval", "1",
        "--dropout", "0.0", "--seed", "1", "--cpu", "--num-workers", "0",
        "--log-file", str(save / "train.log"),
    ]
    result = run_fairseq_train(args)
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    return result.stdout + result.stderr, save


def test_every_loss_component_falls_during_fairseq_train(trained_run):
    output, _ = trained_run
    logs = json_logs(output, "train_inner")
    assert len(logs) >= 30, tail(output)
    for key in COMPONENTS + ("loss",):
        values = [log[key] for log in logs]
        start, end = sum(values[:3]) / 3, sum(values[-3:]) / 3
        assert end < start, f"{key}: start {start:.3f} -> end {end:.3f} ({values})"


def test_fairseq_train_validates_and_logs_every_component(trained_run):
    output, _ = trained_run
    valid = json_logs(output, "dev_sampled.units")
    assert valid, tail(output)
    for key in COMPONENTS:
        assert key in valid[-1]
    weights = json_logs(output, "train_inner")[-1]
    assert weights["multitask_target_unigram_loss_weight"] == 8.0  # from the multitask YAML
    assert weights["multitask_source_unigram_loss_weight"] == 4.0


def test_log_file_records_equal_the_console_records(trained_run):
    # --log-file holds bare JSON lines (no "| tag |"); the summary scripts read either output
    output, save = trained_run
    log_file = (save / "train.log").read_text(encoding="utf-8")
    assert "| train_inner |" not in log_file
    lines = log_file.splitlines()
    repeated = [a for a, b in zip(lines, lines[1:]) if a == b]
    assert not repeated, f"fairseq wrote records more than once: {repeated[:2]}"
    for tag in ("train_inner", "train", DEV_SPLIT):
        console = json_logs(output, tag)
        assert console, tag
        assert json_logs(log_file, tag) == console, tag


def test_fairseq_checkpoint_loads_back_with_user_dir(trained_run):
    from fairseq import checkpoint_utils, utils

    _, save = trained_run
    utils.import_user_module(Namespace(user_dir=str(USER_DIR)))
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(save / "checkpoint_last.pt")])
    model = models[0]
    prefixes = {key.split(".")[0] for key in model.state_dict()}
    assert prefixes == {"encoder", "source_unigram_decoder", "ctc_target_unigram_decoder",
                        "target_unigram_decoder", "synthesizer_encoder", "decoder"}
    assert task.target_dictionary[task.target_dictionary.blank_index] == "<blank>"
    assert task.target_dictionary.blank_index == len(task.target_dictionary) - 1
    assert cfg.model.segment_length == 8
    saved = torch.load(save / "checkpoint_last.pt", map_location="cpu")["model"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key


def streamspeech_simul_command(data: Path, save: Path) -> list:
    """StreamSpeech's train.simul-s2st.sh option list, in its order.

    Changed: --user-dir, --arch (the brief), data/subset/save paths and --target-code-size (the
    corpus), model sizes (tiny, same flags), --max-update 2 and --required-batch-size-multiple 1
    (a 20-pair corpus), --fp16 -> --cpu (fairseq has no fp16 training on CPU), --num-workers 8 -> 0
    (2 shared cores).
    """
    return [
        str(data),
        "--user-dir", str(USER_DIR),
        "--config-yaml", "config_gcmvn.yaml",
        "--multitask-config-yaml", "config_mtl_asr_st_ctcst.yaml",
        "--task", "speech_to_speech_ctc", "--target-is-code",
        "--target-code-size", str(code_size(data)),
        "--vocoder", "code_hifigan",
        "--criterion", "speech_to_unit_2pass_ctc_asr_st", "--label-smoothing", "0.1",
        "--rdrop-alpha", "0.0",
        "--arch", "echostream", "--share-decoder-input-output-embed",
        "--encoder-layers", "2", "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
        "--encoder-attention-heads", "2",
        "--translation-decoder-layers", "1", "--synthesizer-encoder-layers", "1",
        "--decoder-layers", "1", "--decoder-embed-dim", "32", "--decoder-ffn-embed-dim", "64",
        "--decoder-attention-heads", "2",
        "--k1", "0", "--k2", "0", "--n1", "1", "--n2", "-1",
        "--chunk-size", "8", "--multichunk",
        "--uni-encoder",
        "--dropout", "0.1", "--attention-dropout", "0.1", "--relu-dropout", "0.1",
        "--train-subset", TRAIN_SPLIT, "--valid-subset", DEV_SPLIT,
        "--ctc-upsample-rate", "25",
        "--save-dir", str(save),
        "--validate-interval", "1000", "--validate-interval-updates", "1000",
        "--save-interval", "1", "--save-interval-updates", "1000",
        "--keep-last-epochs", "15",
        "--no-progress-bar", "--log-format", "json", "--log-interval", "100",
        "--lr", "0.001", "--lr-scheduler", "inverse_sqrt", "--warmup-init-lr", "1e-7",
        "--warmup-updates", "10000",
        "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--clip-norm", "1.0",
        "--max-tokens", "22000", "--max-target-positions", "1200", "--update-freq", "2",
        "--attn-type", "espnet", "--pos-enc-type", "rel_pos",
        "--keep-interval-updates", "40",
        "--keep-best-checkpoints", "20",
        "--seed", "1", "--cpu", "--num-workers", "0",
        "--max-update", "2", "--required-batch-size-multiple", "1",
    ]


def test_streamspeech_simul_recipe_runs_with_only_user_dir_and_arch_changed(tiny_corpus, tmp_path):
    data = corpus_dir(tiny_corpus)
    result = run_fairseq_train(streamspeech_simul_command(data, tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode == 0, tail(output)
    assert "done training" in output
    # Conformer-only options are accepted and reported once each
    assert output.count("option --attn-type=espnet is ignored") == 1, tail(output)
    assert output.count("option --pos-enc-type=rel_pos is ignored") == 1
    assert (tmp_path / "checkpoint_last.pt").is_file()
    from fairseq import checkpoint_utils, utils

    utils.import_user_module(Namespace(user_dir=str(USER_DIR)))  # allow-lists fairseq's pickles
    cfg = checkpoint_utils.load_checkpoint_to_cpu(str(tmp_path / "checkpoint_last.pt"))["cfg"]
    assert cfg["model"].segment_length == 8  # --chunk-size 8 -> Emformer segment of 8 frames


def test_hydra_config_trains_through_fairseq_hydra_train(tiny_corpus, tmp_path):
    """configs/train/echostream_mini.yaml is a complete hydra config for fairseq's entry point."""
    import os
    import subprocess
    import sys

    data = corpus_dir(tiny_corpus)
    save = tmp_path / "hydra_checkpoints"
    command = [
        str(Path(sys.executable).with_name("fairseq-hydra-train")),
        "--config-dir", str(USER_DIR.parent / "configs" / "train"),
        "--config-name", "echostream_mini",
        f"task.data={data}", f"common.user_dir={USER_DIR}",
        f"task.target_code_size={code_size(data)}",
        "optimization.max_update=2", "dataset.max_tokens=3000", f"checkpoint.save_dir={save}",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    state = torch.load(save / "checkpoint_last.pt", weights_only=True)
    # hydra stores the model cfg as a dict
    assert state["cfg"]["model"]["_name"] == "echostream_mini"
    assert state["optimizer_history"][-1]["num_updates"] == 2
