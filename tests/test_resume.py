"""Resume loses nothing: a run SIGKILLed mid-epoch and resumed with ``scripts/train.py`` ends with
the same parameters and optimizer state as an uninterrupted run (bitwise, CPU, one thread, same
seed), and a kill while a checkpoint is written or copied leaves the previous one loadable."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

import pytest
import torch

from _fairseq_cli import REPO, TINY_MODEL, corpus_dir, tail
from echostream_fairseq.checkpoint_safety import safe_torch_load

TRAIN = REPO / "scripts" / "train.py"
CONFIG = REPO / "configs" / "train" / "echostream_mini.yaml"
TOTAL_UPDATES = 8  # 18 training pairs, 2 per batch: 9 updates per epoch, so every save is mid-epoch
# The freeze ends between the kill and the end, so the resumed optimizer must count across it.
RESTART_FLAGS = ("--freeze-decoders-updates", "5", "--encoder-lr", "0.004", "--decoder-lr", "0.001")


def _env() -> Dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")


def _train_args(data: Path, save: Path, max_update: int) -> List[str]:
    return [
        "--config", str(CONFIG), "--train-manifest", str(data / "train_sampled.units.tsv"),
        "--dev-manifest", str(data / "dev_sampled.units.tsv"), "--save-dir", str(save),
        "--num-workers", "0", "--batch-size", "2", *RESTART_FLAGS, *TINY_MODEL,
        "--max-update", str(max_update), "--save-interval-updates", "2", "--log-interval", "1",
        "--warmup-updates", "4", "--keep-interval-updates", "-1", "--keep-last-epochs", "-1",
    ]


def _run(args: Sequence[str], timeout: int = 180) -> str:
    result = subprocess.run([sys.executable, str(TRAIN), *args], capture_output=True, text=True,
                            timeout=timeout, env=_env(), cwd=REPO)
    output = result.stdout + result.stderr
    assert result.returncode == 0, tail(output)
    return output


def _load(path: Path) -> dict:
    return safe_torch_load(path)


def _assert_same_tensors(a: Dict[str, Any], b: Dict[str, Any], what: str) -> None:
    assert a.keys() == b.keys(), what
    for key in a:
        if not torch.is_tensor(a[key]):
            assert a[key] == b[key], f"{what}: {key}"
            continue
        assert torch.equal(a[key], b[key]), \
            f"{what}: {key} differs by {(a[key] - b[key]).abs().max()}"


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted_run(tiny_corpus, tmp_path):
    data = corpus_dir(tiny_corpus)
    reference = tmp_path / "reference"
    _run(_train_args(data, reference, TOTAL_UPDATES))

    interrupted = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, str(TRAIN), *_train_args(data, interrupted, 1000)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
                            cwd=REPO)
    deadline = time.monotonic() + 150
    while not (interrupted / "checkpoint_1_4.pt").exists():
        assert proc.poll() is None, "training exited before its 4th update"
        assert time.monotonic() < deadline, "no checkpoint after 4 updates in time"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _load(interrupted / "checkpoint_last.pt")
    iterator = killed_at["extra_state"]["train_iterator"]
    assert 0 < iterator["iterations_in_epoch"] < 9, "the kill must land mid-epoch"
    assert killed_at["optimizer_history"][-1]["num_updates"] < TOTAL_UPDATES

    # same command: resume is the default
    output = _run(_train_args(data, interrupted, TOTAL_UPDATES))
    loaded = re.search(r"Loaded checkpoint \S+checkpoint_last\.pt \(epoch 1 @ (\d+) updates\)",
                       output)
    assert loaded and 0 < int(loaded.group(1)) < TOTAL_UPDATES, tail(output)
    assert "restored the RNG states" in output

    expected, resumed = (_load(reference / "checkpoint_last.pt"),
                         _load(interrupted / "checkpoint_last.pt"))
    assert resumed["optimizer_history"][-1]["num_updates"] == TOTAL_UPDATES
    # tolerance: none (bitwise)
    _assert_same_tensors(expected["model"], resumed["model"], "parameters")
    for key, state in expected["last_optimizer_state"]["state"].items():
        _assert_same_tensors(state, resumed["last_optimizer_state"]["state"][key],
                             f"Adam state {key}")
    assert (expected["last_optimizer_state"]["echostream"]
            == resumed["last_optimizer_state"]["echostream"])
    assert (expected["optimizer_history"][-1]["lr_scheduler_state"]
            == resumed["optimizer_history"][-1]["lr_scheduler_state"])
    assert expected["extra_state"]["train_iterator"]["iterations_in_epoch"] == TOTAL_UPDATES


# Runs scripts/train.py in a child that SIGKILLs itself half-way through its second checkpoint
# write (torch.save into fairseq's ``.tmp`` file) or second copy (checkpoint_N.pt -> _last.pt).
_DYING_SAVE = r"""
import io, os, runpy, shutil, signal, sys
import torch

kind = sys.argv.pop(1)
calls = {"n": 0}
real_save, real_copy = torch.save, shutil.copyfile

def die_half_way(data, handle):
    handle.write(data[: len(data) // 2])
    handle.flush()
    os.kill(os.getpid(), signal.SIGKILL)

def save(obj, f, *args, **kwargs):
    calls["n"] += 1
    if kind == "write" and calls["n"] == 2:
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        die_half_way(buffer.getvalue(), f)
    return real_save(obj, f, *args, **kwargs)

def copyfile(src, dst, *args, **kwargs):
    last = os.path.join(os.path.dirname(src), "checkpoint_last")
    if kind == "copy" and calls["n"] == 2 and str(dst).startswith(last):
        with open(src, "rb") as source, open(dst, "wb") as target:
            die_half_way(source.read(), target)
    return real_copy(src, dst, *args, **kwargs)

torch.save, shutil.copyfile = save, copyfile
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("kill_during", ["write", "copy"])
def test_kill_during_checkpoint_save_leaves_previous_checkpoint_loadable(tiny_corpus, tmp_path,
                                                                         kill_during):
    from fairseq import checkpoint_utils

    import echostream_fairseq  # noqa: F401  (allow-lists fairseq's pickles, atomic copies)

    data = corpus_dir(tiny_corpus)
    save = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-c", _DYING_SAVE, kill_during, str(TRAIN), *_train_args(data, save, 6)],
        capture_output=True, text=True, timeout=180, env=_env(), cwd=REPO,
    )
    assert result.returncode == -signal.SIGKILL, tail(result.stdout + result.stderr)
    state = checkpoint_utils.load_checkpoint_to_cpu(str(save / "checkpoint_last.pt"))
    assert state["optimizer_history"][-1]["num_updates"] == 2  # the save before the killed one
    leftovers = sorted(p.name for p in save.iterdir() if p.name.endswith(".tmp"))
    assert leftovers == (["checkpoint_1_4.pt.tmp"] if kill_during == "write"
                         else ["checkpoint_last.pt.tmp"])
