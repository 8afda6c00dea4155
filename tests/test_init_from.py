"""Restarting after the encoder swap, end to end through both entry points.

A StreamSpeech-layout checkpoint (its real key names, a Conformer encoder, a 6000-piece ASR head
that does not fit this corpus) seeds a real training run:
* ``scripts/train.py --init-from`` (the per-group loader, then fairseq's --finetune-from-model);
* ``fairseq-train --finetune-from-model`` (the checkpoint upgrade hook) and
  ``fairseq-train --load-pretrained-decoders-from`` (the per-group loader);
* ``--load-pretrained-encoder-from`` takes the encoder of an EchoStream checkpoint only.
Decoders are frozen for the whole (one-update) run, so after it they must still equal the
StreamSpeech tensors bitwise, while the encoder and the mismatched ASR head keep training from
their fresh initialisation. Bad paths given to the command lines get one-line errors.
"""

import logging
import subprocess
import sys
from typing import Any, Dict

import pytest
import torch

from _fairseq_cli import REPO, TINY_MODEL, corpus_dir, load_script, run_fairseq_train, tail
from _streamspeech_state import (
    RELEASED_VOCABULARY, build_tiny_model, save_streamspeech, streamspeech_state, tiny_model_args,
)
from echostream_fairseq.checkpoints import group_of, read_model_state

ASR_HEAD = "source_unigram_decoder.proj.weight"
MT_LAYER = "target_unigram_decoder.layers.0.fc1.weight"
UNIT_LAYER = "decoder.layers.0.fc1.weight"


@pytest.fixture(scope="module")
def streamspeech(tiny_corpus, tmp_path_factory) -> Dict[str, Any]:
    """A StreamSpeech checkpoint whose ASR CTC head has the released 6000 rows."""
    folder = tmp_path_factory.mktemp("streamspeech")
    _, model = build_tiny_model(tiny_corpus, folder / "unused")
    resize = {k: rows for k, rows in RELEASED_VOCABULARY.items() if k.startswith("source_unigram")}
    state = streamspeech_state(model, resize)
    path = folder / "streamspeech.pt"
    save_streamspeech(state, path)
    return {"path": path, "state": state, "fresh": model.state_dict()}


def _assert_restarted_from_streamspeech(trained: Dict[str, torch.Tensor],
                                        streamspeech: Dict[str, Any]) -> None:
    state, fresh = streamspeech["state"], streamspeech["fresh"]
    # fairseq's own upgrades rewrite the "version" buffers
    loaded = [k for k in trained if group_of(k) != "encoder"
              and not k.startswith("source_unigram_decoder.") and not k.endswith(".version")]
    moved = [k for k in loaded if not torch.equal(trained[k], state[k])]
    assert loaded and not moved, f"frozen decoder tensors moved: {moved[:5]}"
    assert (torch.equal(trained[MT_LAYER], state[MT_LAYER])
            and torch.equal(trained[UNIT_LAYER], state[UNIT_LAYER]))
    # the ASR head of another vocabulary stayed at its initialisation, then trained with the encoder
    assert trained[ASR_HEAD].shape == fresh[ASR_HEAD].shape != state[ASR_HEAD].shape
    encoder = [k for k in trained if group_of(k) == "encoder"]
    assert not any(k in state and state[k].shape == trained[k].shape
                   and torch.equal(trained[k], state[k])
                   for k in encoder), "a Conformer tensor leaked into the Emformer encoder"
    assert sum(not torch.equal(trained[k], fresh[k]) for k in encoder) > len(encoder) // 2, \
        "encoder did not train"


def test_train_script_init_from_streamspeech_loads_decoders_and_trains_the_encoder(
        tiny_corpus, streamspeech, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    data = corpus_dir(tiny_corpus)
    save = tmp_path / "swap"
    torch.set_num_threads(1)
    code = load_script("train").main([
        "--config", str(REPO / "configs" / "train" / "echostream_mini.yaml"),
        "--train-manifest", str(data / "train_sampled.units.tsv"),
        "--dev-manifest", str(data / "dev_sampled.units.tsv"),
        "--save-dir", str(save), "--num-workers", "0", "--batch-size", "4", "--device", "cpu",
        "--init-from", str(streamspeech["path"]), "--no-load-encoder", "--load-decoders",
        "--freeze-decoders-updates", "5", *TINY_MODEL, "--max-update", "1", "--disable-validation",
        "--no-epoch-checkpoints",
    ])
    assert code == 0
    report = caplog.text
    # the mismatch is reported
    assert "asr_ctc_decoder" in report and "6000" in report, report[-3000:]
    seed, _ = read_model_state(save / "initial_weights.pt")
    assert torch.equal(seed[MT_LAYER], streamspeech["state"][MT_LAYER])
    _assert_restarted_from_streamspeech(read_model_state(save / "checkpoint_last.pt")[0],
                                        streamspeech)


@pytest.mark.parametrize("option", ["--finetune-from-model", "--load-pretrained-decoders-from"])
def test_fairseq_train_restarts_from_streamspeech_decoders(tiny_corpus, streamspeech, tmp_path,
                                                           option):
    save = tmp_path / "finetune"
    args = tiny_model_args(tiny_corpus, save) + [
        option, str(streamspeech["path"]),
        "--optimizer", "echostream_adam", "--freeze-decoders-updates", "5", "--lr", "0.002",
        "--max-tokens", "100000", "--batch-size", "4", "--max-update", "1", "--disable-validation",
        "--no-epoch-checkpoints", "--num-workers", "0", "--seed", "1",
    ]
    result = run_fairseq_train(args)
    output = result.stdout + result.stderr
    assert result.returncode == 0, tail(output)
    if option == "--finetune-from-model":
        # the upgrade hook says why the encoder is re-initialised
        assert "Conformer" in output, tail(output)
    else:
        # the per-group report
        assert "asr_ctc_decoder" in output and "6000" in output, tail(output)
    _assert_restarted_from_streamspeech(read_model_state(save / "checkpoint_last.pt")[0],
                                        streamspeech)


def test_load_pretrained_encoder_takes_only_the_encoder(tiny_corpus, tiny_checkpoint, streamspeech,
                                                        tmp_path):
    from echostream_fairseq.checkpoint_safety import CheckpointLoadError
    from echostream_fairseq.training import build_task_and_model

    args = tiny_model_args(tiny_corpus, tmp_path / "unused")
    _, _, model = build_task_and_model(args + ["--load-pretrained-encoder-from",
                                               str(tiny_checkpoint)])
    source, _ = read_model_state(tiny_checkpoint)
    built = model.state_dict()
    encoder = [k for k in built if group_of(k) == "encoder"]
    assert encoder and all(torch.equal(built[k], source[k]) for k in encoder)
    assert not torch.equal(built[MT_LAYER], source[MT_LAYER])  # decoders keep their initialisation
    # a Conformer encoder cannot seed an Emformer
    with pytest.raises(ValueError, match="no tensor fits"):
        build_task_and_model(args + ["--load-pretrained-encoder-from",
                                     str(streamspeech["path"])])
    with pytest.raises(CheckpointLoadError, match="no such file"):
        build_task_and_model(args + ["--load-pretrained-decoders-from",
                                     str(tmp_path / "absent.pt")])


@pytest.mark.parametrize("script, flag", [("train.py", "--init-from"),
                                          ("restart_advisor.py", "--checkpoint")])
@pytest.mark.parametrize("bad", ["absent", "text"])
def test_command_lines_give_one_line_errors_for_bad_checkpoints(tiny_corpus, tmp_path, script,
                                                                flag, bad):
    data = corpus_dir(tiny_corpus)
    path = tmp_path / "absent.pt"
    if bad == "text":
        path = tmp_path / "notes.pt"
        path.write_text("not a checkpoint\n")
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / script),
         "--config", str(REPO / "configs" / "train" / "echostream_mini.yaml"),
         "--train-manifest", str(data / "train_sampled.units.tsv"),
         "--dev-manifest", str(data / "dev_sampled.units.tsv"), flag, str(path),
         *(["--save-dir", str(tmp_path / "run")] if script == "train.py" else [])],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert len(errors) == 1 and str(path) in errors[0], result.stderr[-2000:]
