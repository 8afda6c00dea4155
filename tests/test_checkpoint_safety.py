"""Checkpoint loading under torch 2.11: fairseq checkpoints load weights-only, nothing else runs."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import echostream_fairseq  # noqa: F401  (installs the guarded loader)
from _fairseq_cli import RunsShellOnUnpickle
from echostream_fairseq.checkpoint_safety import CheckpointLoadError, safe_torch_load
from fairseq import checkpoint_utils

FAIRSEQ_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def fairseq_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint written by a real fairseq-train run of a legacy (argparse) model."""
    root = tmp_path_factory.mktemp("fairseq_lm")
    words = "the a cat dog sat on mat ran far away home".split()
    for split, count in (("train", 128), ("valid", 32)):
        lines = [" ".join(words[(i * 7 + j) % len(words)] for j in range(8)) for i in range(count)]
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")

    def run(*command: str) -> None:
        done = subprocess.run(command, cwd=root, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]

    run(str(FAIRSEQ_BIN / "fairseq-preprocess"), "--only-source", "--trainpref", "train.txt",
        "--validpref", "valid.txt", "--destdir", "bin", "--workers", "1")
    run(str(FAIRSEQ_BIN / "fairseq-train"), "bin",
        "--user-dir", str(Path(echostream_fairseq.__file__).parent),
        "--task", "language_modeling", "--arch", "lstm_lm", "--decoder-layers", "1",
        "--decoder-embed-dim", "16", "--decoder-hidden-size", "16", "--decoder-out-embed-dim", "16",
        "--tokens-per-sample", "16", "--max-tokens", "256", "--optimizer", "adam", "--lr", "1e-3",
        "--max-update", "2", "--required-batch-size-multiple", "1", "--save-dir", "ckpt", "--cpu",
        "--no-epoch-checkpoints")
    return root / "ckpt" / "checkpoint_last.pt"


def test_fairseq_train_checkpoint_loads_weights_only(fairseq_checkpoint):
    state = checkpoint_utils.load_checkpoint_to_cpu(str(fairseq_checkpoint))
    assert isinstance(state["cfg"]["model"], __import__("argparse").Namespace)
    assert state["cfg"]["model"].arch == "lstm_lm"
    assert state["optimizer_history"][-1]["num_updates"] == 2
    models, _cfg, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(fairseq_checkpoint)],
        arg_overrides={"data": str(fairseq_checkpoint.parent.parent / "bin")}
    )
    assert sum(p.numel() for p in models[0].parameters()) > 0
    assert task.dictionary is not None


def test_checkpoint_with_pickled_dictconfig_loads(tmp_path):
    path = tmp_path / "old_layout.pt"
    config = OmegaConf.create({"model": {"arch": "x", "dims": [1, 2]}, "task": {"_name": "y"}})
    history = [{"criterion_name": "x", "optimizer_name": "adam", "num_updates": 3,
                "lr_scheduler_state": {"best": 1.0}}]
    torch.save({"cfg": config, "model": {"w": torch.ones(2)}, "optimizer_history": history,
                "extra_state": {}}, path)
    state = checkpoint_utils.load_checkpoint_to_cpu(str(path))
    assert state["cfg"]["model"]["dims"] == [1, 2]
    assert torch.equal(state["model"]["w"], torch.ones(2))


@pytest.mark.parametrize("loader", ["fairseq", "safe_torch_load"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, loader):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "malicious.pt"
    torch.save({"model": {}, "cfg": RunsShellOnUnpickle(marker)}, path)
    load = checkpoint_utils.load_checkpoint_to_cpu if loader == "fairseq" else safe_torch_load
    with pytest.raises(CheckpointLoadError, match="refused") as raised:
        load(str(path))
    assert str(path) in str(raised.value)
    assert "system" in str(raised.value)
    assert not marker.exists()


def test_truncated_checkpoint_names_the_path(fairseq_checkpoint, tmp_path):
    truncated = tmp_path / "truncated.pt"
    data = fairseq_checkpoint.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointLoadError, match="truncated") as raised:
        checkpoint_utils.load_checkpoint_to_cpu(str(truncated))
    assert str(truncated) in str(raised.value)


def test_missing_and_non_checkpoint_files_get_one_line_errors(tmp_path):
    with pytest.raises(CheckpointLoadError, match="no such file"):
        safe_torch_load(tmp_path / "absent.pt")
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a checkpoint\n")
    with pytest.raises(CheckpointLoadError) as raised:
        checkpoint_utils.load_checkpoint_to_cpu(str(text_file))
    assert str(text_file) in str(raised.value)
    assert "\n" not in str(raised.value)


def test_unsafe_load_override_is_refused(fairseq_checkpoint, monkeypatch):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(CheckpointLoadError, match="TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"):
        checkpoint_utils.load_checkpoint_to_cpu(str(fairseq_checkpoint))
