"""scripts/restart_advisor.py picks evaluate / resume / decoders only / from scratch for the
checkpoint in hand, names the groups and vocabularies that do not fit, and prints the commands."""

import json
from pathlib import Path
from typing import Any, Dict

import pytest
import torch

from _fairseq_cli import REPO, TINY_MODEL, corpus_dir, load_script
from _streamspeech_state import (RELEASED_VOCABULARY, build_tiny_model, save_streamspeech,
                                 streamspeech_state)

CONFIG = REPO / "configs" / "train" / "echostream_mini.yaml"


@pytest.fixture(scope="module")
def setting(tiny_corpus, tmp_path_factory) -> Dict[str, Any]:
    root = tmp_path_factory.mktemp("advisor")
    _, model = build_tiny_model(tiny_corpus, root)
    return {"data": corpus_dir(tiny_corpus), "model": model, "root": root,
            "advisor": load_script("restart_advisor")}


def _advise(setting: Dict[str, Any], checkpoint: Path, capsys: Any, *extra: str) -> Dict[str, Any]:
    data = setting["data"]
    code = setting["advisor"].main([
        "--config", str(CONFIG), "--checkpoint", str(checkpoint), "--json",
        "--train-manifest", str(data / "train_sampled.units.tsv"),
        "--dev-manifest", str(data / "dev_sampled.units.tsv"),
        *TINY_MODEL, *extra,
    ])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def _own_checkpoint(setting: Dict[str, Any], name: str, num_updates: int) -> Path:
    folder = setting["root"] / name
    folder.mkdir()
    path = folder / "checkpoint_last.pt"
    torch.save({"args": None, "cfg": None, "model": setting["model"].state_dict(),
                "optimizer_history": [{"optimizer_name": "EchoStreamAdam",
                                       "num_updates": num_updates}],
                "extra_state": {"train_iterator": {"epoch": 2, "iterations_in_epoch": 3}},
                "last_optimizer_state": {"state": {}, "param_groups": []}}, path)
    return path


def test_unfinished_echostream_run_is_resumed_in_place_after_a_backup(setting, capsys):
    path = _own_checkpoint(setting, "unfinished", 40)
    advice = _advise(setting, path, capsys)
    assert advice["recommendation"] == "resume"
    backup, train = advice["commands"]
    # the file the run builds on, not its whole folder, with its size
    assert backup.startswith(f"cp -p {path} {path}.bak-") and backup.endswith(" KiB")
    assert ("scripts/train.py" in train and f"--save-dir {path.parent}" in train
            and "--init-from" not in train and "--restore-file" not in train)
    assert len(advice["groups"]) == 5 and all(": loads (" in line for line in advice["groups"])


def test_environment_names_the_embedded_vocoder_and_the_gpu(setting, capsys):
    advice = _advise(setting, _own_checkpoint(setting, "environment", 10), capsys)
    data = advice["data"]
    assert data["gpu"] is torch.cuda.is_available()
    units = setting["data"] / "units"
    expected = (units / "vocoder.npz" if (units / "vocoder.npz").is_file()
                else units / "unit_model.npz")
    assert data["vocoder"] == f"echostream_centroid {expected} (found)"
    assert data["warnings"] == []


def test_finished_run_is_evaluated(setting, capsys):
    path = _own_checkpoint(setting, "finished", 40)
    advice = _advise(setting, path, capsys, "--max-update", "40")
    assert advice["recommendation"] == "evaluate"


@pytest.mark.parametrize("num_updates, frozen_first", [(100, False), (20000, True)])
def test_streamspeech_checkpoint_gets_decoders_only_and_the_freeze_variant(setting, capsys,
                                                                           num_updates,
                                                                           frozen_first):
    path = setting["root"] / f"streamspeech_{num_updates}.pt"
    save_streamspeech(streamspeech_state(setting["model"]), path, num_updates=num_updates)
    advice = _advise(setting, path, capsys)
    assert advice["recommendation"] == "decoders-only"
    assert advice["checkpoint"]["layout"] == "streamspeech"
    assert any(line.startswith("encoder: does not load (StreamSpeech Conformer")
               for line in advice["groups"])
    backup, command, alternative = advice["commands"]
    assert backup.startswith(f"cp -p {path} ")
    for flag in ("--init-from", "--no-load-encoder", "--load-decoders"):
        assert flag in command.split()
    # long-trained decoders are frozen first (measured better); young ones get it as an option
    assert ("--freeze-decoders-updates" in command.split()) is frozen_first
    words = alternative.split()
    assert "--freeze-decoders-updates" in words
    assert (float(words[words.index("--encoder-lr") + 1])
            > float(words[words.index("--decoder-lr") + 1]))


def test_other_vocabularies_everywhere_mean_from_scratch_with_each_mismatch_named(setting, capsys):
    path = setting["root"] / "streamspeech_released_vocab.pt"
    save_streamspeech(streamspeech_state(setting["model"], RELEASED_VOCABULARY), path)
    advice = _advise(setting, path, capsys)
    assert advice["recommendation"] == "from-scratch"
    text = "\n".join(advice["groups"])
    assert "asr_ctc_decoder: does not load" in text and "unit_decoder: does not load" in text
    assert "unit vocabulary (K+5) is 1005 in the checkpoint" in text
    assert "the checkpoint has K=1000 units" in text
    assert "asr_spm size is 6000 in the checkpoint" in text


def test_missing_checkpoint_and_missing_manifests_get_clear_answers(setting, capsys, tmp_path):
    advisor = setting["advisor"]
    absent = tmp_path / "nope.pt"
    assert advisor.main(["--config", str(CONFIG), "--checkpoint", str(absent)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: cannot load checkpoint {absent}: no such file"
    path = _own_checkpoint(setting, "no_data", 5)
    code = advisor.main(["--config", str(CONFIG), "--checkpoint", str(path),
                         "--train-manifest", str(tmp_path / "train.tsv"),
                         "--dev-manifest", str(tmp_path / "dev.tsv")])
    out = capsys.readouterr().out
    assert code == 0
    assert ("problem: manifest" in out and "recommended: FIX-DATA" in out
            and "prepare_mini.py" in out)


def test_a_best_checkpoint_is_resumed_for_real_and_the_printed_command_runs(setting,
                                                                           tiny_checkpoint,
                                                                           capsys):
    """RESUME of a checkpoint_best.pt restores it in its own folder (weights, update count; a
    fresh optimizer for another optimizer's state): the printed command trains 2 more updates
    as printed."""
    import shlex
    import shutil
    import subprocess
    import sys

    folder = setting["root"] / "best_only"
    folder.mkdir()
    best = folder / "checkpoint_best.pt"
    shutil.copy(tiny_checkpoint, best)
    advice = _advise(setting, best, capsys, "--dropout", "0.0")
    assert advice["recommendation"] == "resume", advice["reasons"]
    _, train = advice["commands"]
    words = shlex.split(train)
    assert words[words.index("--save-dir") + 1] == str(folder)
    assert words[words.index("--restore-file") + 1] == str(best)
    assert "--reset-optimizer" in words  # the tiny model was trained with fairseq's adam
    done = subprocess.run([sys.executable, *words[1:], "--num-workers", "0", "--device", "cpu",
                           "--max-update", "4", "--disable-validation"], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    state = torch.load(folder / "checkpoint_last.pt", map_location="cpu", weights_only=False)
    assert state["optimizer_history"][-1]["num_updates"] == 4  # 2 restored + 2 trained
