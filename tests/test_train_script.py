"""scripts/train.py turns the recipe into fairseq-train's command: --dry-run prints it, --device
picks CPU or GPU, and a GPU asked for on a machine without one is a one-line error."""

import shlex
import subprocess
import sys
from typing import List

import pytest
import torch

from _fairseq_cli import REPO, corpus_dir


def _train(tiny_corpus, tmp_path, *extra: str) -> subprocess.CompletedProcess:
    data = corpus_dir(tiny_corpus)
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "train.py"),
         "--config", str(REPO / "configs" / "train" / "echostream_mini.yaml"),
         "--train-manifest", str(data / "train_sampled.units.tsv"),
         "--dev-manifest", str(data / "dev_sampled.units.tsv"),
         "--save-dir", str(tmp_path / "run"), *extra],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )


def _printed_command(result: subprocess.CompletedProcess) -> List[str]:
    assert result.returncode == 0, result.stderr[-2000:]
    return shlex.split(result.stdout.strip().splitlines()[-1])


def test_dry_run_prints_the_recipe_as_fairseq_train_flags(tiny_corpus, tmp_path):
    argv = _printed_command(_train(tiny_corpus, tmp_path, "--dry-run", "--batch-size", "8",
                                   "--max-update", "7"))
    assert argv[:2] == ["fairseq-train", str(corpus_dir(tiny_corpus))]
    assert argv[argv.index("--arch") + 1] == "echostream_mini"
    assert argv[argv.index("--optimizer") + 1] == "echostream_adam"
    assert argv[argv.index("--batch-size") + 1] == "8"
    assert argv[-2:] == ["--max-update", "7"]  # passed through last, so it wins over the recipe
    assert not (tmp_path / "run").exists()  # a dry run writes nothing


@pytest.mark.parametrize("device, on_cpu", [("cpu", True), ("cuda", False),
                                            ("auto", not torch.cuda.is_available())])
def test_device_decides_fairseqs_cpu_flag(tiny_corpus, tmp_path, device, on_cpu):
    argv = _printed_command(_train(tiny_corpus, tmp_path, "--dry-run", "--device", device))
    assert ("--cpu" in argv) is on_cpu


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_is_a_one_line_error(tiny_corpus, tmp_path):
    result = _train(tiny_corpus, tmp_path, "--device", "cuda")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --device cuda: torch sees no CUDA device here; use --device cpu or auto"]


def test_a_run_is_quiet_by_default_and_removes_what_a_killed_save_left(tiny_corpus, tmp_path):
    """No Hydra deprecation notices, no model repr (it is there with --log-level DEBUG); a
    stale ``*.pt.tmp`` of an interrupted save is removed before training starts."""
    (tmp_path / "run").mkdir()
    stale = tmp_path / "run" / "checkpoint_last.pt.tmp"
    stale.write_bytes(b"half a checkpoint")
    result = _train(tiny_corpus, tmp_path, "--num-workers", "0", "--batch-size", "8",
                    "--device", "cpu", "--max-update", "1", "--no-save")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "EchoStreamModel(" not in output and "hydra" not in output.lower(), output[:3000]
    assert "removing" in output and not stale.exists()


def test_a_log_file_gets_its_folder_or_a_one_line_error(tiny_corpus, tmp_path):
    """fairseq opens --log-file without making its folder (a traceback before): the folder is
    made, and one that cannot be is one line naming it."""
    log = tmp_path / "logs" / "deeper" / "train.log"
    result = _train(tiny_corpus, tmp_path, "--num-workers", "0", "--batch-size", "8",
                    "--device", "cpu", "--max-update", "1", "--no-save", "--log-file", str(log))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert '"train_num_updates": "1"' in log.read_text()
    (tmp_path / "a_file").write_text("")
    result = _train(tiny_corpus, tmp_path, "--device", "cpu", "--log-file",
                    str(tmp_path / "a_file" / "train.log"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'a_file' / 'train.log'}: its folder cannot be made (File exists; "
        "--log-file)"]

