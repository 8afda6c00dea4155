"""scripts/restart_advisor.py picks evaluate / resume / decoders only / from scratch for the
checkpoint in hand, names the groups and vocabularies that do not fit, and prints the commands."""

import json
import shlex
import shutil
import subprocess
import sys
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


def _run_printed(command: str, *more: str) -> subprocess.CompletedProcess:
    """The advisor's train command as printed (``python`` is this interpreter), plus the
    machine's and the test's bounds."""
    words = shlex.split(command)
    assert words[:2] == ["python", "scripts/train.py"], words
    done = subprocess.run([sys.executable, *words[1:], "--num-workers", "0", "--device", "cpu",
                           "--disable-validation", *more], cwd=REPO, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _saved(folder: Path) -> Dict[str, Any]:
    return torch.load(folder / "checkpoint_last.pt", map_location="cpu", weights_only=False)


def test_other_vocabularies_keep_what_fits_and_name_each_reinitialised_head(setting, capsys):
    """StreamSpeech's released vocabularies (6000 spm pieces, 1000 units) on the tiny corpus:
    decoders only, every vocabulary-sized tensor re-initialised and named; the printed command
    trains 2 updates with the rest of the decoders loaded."""
    path = setting["root"] / "streamspeech_released_vocab.pt"
    released = streamspeech_state(setting["model"], RELEASED_VOCABULARY)
    save_streamspeech(released, path)
    advice = _advise(setting, path, capsys)
    assert advice["recommendation"] == "decoders-only", advice["reasons"]
    text = "\n".join(advice["groups"] + advice["reasons"])
    assert "unit vocabulary (K+5) is 1005 in the checkpoint" in text
    assert "the checkpoint has K=1000 units" in text
    assert "asr_spm size is 6000 in the checkpoint" in text
    for head in ("asr_ctc_decoder", "st_ctc_decoder", "mt_decoder", "unit_decoder"):
        assert f"re-initialised: {head}, " in text, text
    assert "re-initialised: asr_ctc_decoder, 2 of 2 tensors" in text  # a CTC head is its vocab
    _, command, _ = advice["commands"]
    save = Path(shlex.split(command)[shlex.split(command).index("--save-dir") + 1])
    _run_printed(command, "--max-update", "2")
    trained = _saved(save)
    assert trained["optimizer_history"][-1]["num_updates"] == 2
    # loaded, then trained: the T2U encoder moved away from the file's values but started there
    key = "synthesizer_encoder.layers.0.fc1.weight"
    before = setting["model"].state_dict()[key]
    after = trained["model"][key]
    assert (after - released[key]).abs().max() < (after - before).abs().max()


def test_a_streamspeech_checkpoint_of_another_size_is_read_from_its_cfg_and_weights(setting,
                                                                                    tiny_corpus,
                                                                                    capsys):
    """Decoder sizes and layer counts come from the weights, heads, upsample rate and causal T2U
    from the checkpoint's cfg; the printed command builds decoders that load whole and trains."""
    root = setting["root"] / "bigger"
    _, bigger = build_tiny_model(tiny_corpus, root, "--decoder-embed-dim", "48",
                                 "--decoder-ffn-embed-dim", "96", "--decoder-layers", "2",
                                 "--translation-decoder-layers", "2",
                                 "--decoder-attention-heads", "4")
    path = setting["root"] / "streamspeech_bigger.pt"
    save_streamspeech(streamspeech_state(bigger), path, model_cfg={
        "decoder_attention_heads": 4, "ctc_upsample_rate": 5, "uni_encoder": True,
        "decoder_embed_dim": 512})  # a cfg value the weights contradict: the weights win
    advice = _advise(setting, path, capsys)
    assert advice["recommendation"] == "decoders-only", advice["reasons"]
    settings = advice["checkpoint"]["settings"]
    assert settings["decoder_embed_dim"] == {"value": 48, "source": "weights"}
    assert settings["ctc_upsample_rate"] == {"value": 5, "source": "cfg"}
    _, command, _ = advice["commands"]
    words = shlex.split(command)
    fitted = {flag: words[words.index(flag) + 1] for flag in (
        "--decoder-embed-dim", "--decoder-ffn-embed-dim", "--decoder-layers",
        "--translation-decoder-layers", "--decoder-attention-heads", "--ctc-upsample-rate")}
    assert fitted == {"--decoder-embed-dim": "48", "--decoder-ffn-embed-dim": "96",
                      "--decoder-layers": "2", "--translation-decoder-layers": "2",
                      "--decoder-attention-heads": "4", "--ctc-upsample-rate": "5"}
    assert all(": loads (" in line for line in advice["groups"] if not line.startswith("encoder"))
    done = _run_printed(command, "--max-update", "2")
    assert "mt_decoder: loaded" in done.stderr + done.stdout
    trained = _saved(Path(words[words.index("--save-dir") + 1]))
    assert trained["cfg"]["model"].decoder_embed_dim == 48
    assert trained["cfg"]["model"].ctc_upsample_rate == 5


def test_a_plain_checkpoint_is_resumed_with_a_fresh_optimizer(setting, capsys):
    """The ``{epoch, model, optimizer, loss}`` layout of earlier scripts: RESUME in its folder
    from that file, with --reset-optimizer (a torch Adam state is not fairseq's)."""
    folder = setting["root"] / "plain"
    folder.mkdir()
    model = setting["model"]
    optimizer = torch.optim.Adam(model.parameters())
    path = folder / "model_epoch3.pt"
    torch.save({"epoch": 3, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "loss": 12.5}, path)
    advice = _advise(setting, path, capsys)
    assert advice["checkpoint"]["layout"] == "plain"
    assert advice["recommendation"] == "resume", advice["reasons"]
    _, command = advice["commands"]
    words = shlex.split(command)
    assert words[words.index("--restore-file") + 1] == str(path) and "--reset-optimizer" in words
    _run_printed(command, "--max-update", "2")
    trained = _saved(folder)
    assert trained["optimizer_history"][-1]["num_updates"] == 2


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
    _run_printed(train, "--max-update", "4")
    state = torch.load(folder / "checkpoint_last.pt", map_location="cpu", weights_only=False)
    assert state["optimizer_history"][-1]["num_updates"] == 4  # 2 restored + 2 trained


@pytest.mark.parametrize("data, expected", [
    ({"unit_k": 174}, "174"),  # the corpus report's K, whatever the checkpoint has
    ({"largest_unit": 990}, "1000"),  # StreamSpeech's layout: the checkpoint's K fits the units
    ({"largest_unit": 1203}, "1204"),  # it does not: the largest unit + 1
])
def test_the_unit_count_comes_from_the_data_and_the_checkpoint_only_where_it_fits(data,
                                                                                  expected):
    from argparse import Namespace

    from echostream_fairseq.cli.advise import fitting_flags

    recipe = Namespace(decoder_embed_dim=256, uni_encoder=True)
    settings = {"target_code_size": {"value": 1000, "source": "weights"},
                "decoder_embed_dim": {"value": 512, "source": "weights"}}
    flags, lines, notes = fitting_flags(settings, recipe, 500, data)
    assert flags == ["--decoder-embed-dim", "512", "--target-code-size", expected]
    assert lines[0] == "--decoder-embed-dim 512 (checkpoint weights; the recipe has 256)"
    # heads and upsample rate are in no weight: said when the decoders are another shape
    assert len(notes) == 2 and all("not recorded in the checkpoint" in n for n in notes)


def test_fitted_flags_replace_the_values_given_instead_of_repeating_the_option():
    from echostream_fairseq.cli.advise import _with_flags

    assert (_with_flags(["--decoder-layers", "1", "--dropout", "0.1"],
                        ["--decoder-layers", "2", "--uni-encoder", "--ctc-upsample-rate", "25"])
            == ["--decoder-layers", "2", "--dropout", "0.1", "--uni-encoder",
                "--ctc-upsample-rate", "25"])
