"""Every entry point x every kind of bad checkpoint: one ``error:`` line naming the path, exit
status 2, no traceback, and a malicious pickle never runs.

In-process for our commands (a subprocess would mostly time torch's import); real subprocesses
for the programs whose ``main`` is not ours (``simuleval`` with an agent, ``fairseq-generate``),
where the plugin's excepthook turns the error into the same line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Callable, Dict, List

import pytest
import torch

from _fairseq_cli import (GCMVN_YAML, MULTITASK_YAML, REPO, USER_DIR, RunsShellOnUnpickle,
                         code_size, corpus_dir, load_file_module, tail)
from echostream_fairseq.checkpoint_safety import CheckpointLoadError

BIN = Path(sys.executable).parent
CONFIG = REPO / "configs" / "train" / "echostream_mini.yaml"
S2S_AGENT = "echostream_fairseq.agents.speech_to_speech.EchoStreamSpeechToSpeechAgent"


def _bad_checkpoints(folder: Path) -> Dict[str, Path]:
    """One file (or path) per kind, with what its error must say."""
    folder.mkdir(parents=True, exist_ok=True)
    kinds = {name: folder / f"{name}.pt" for name in (
        "missing", "folder", "empty", "truncated", "text", "foreign_dict", "bare_tensor",
        "foreign_zip", "malicious")}
    kinds["folder"].mkdir()
    kinds["empty"].write_bytes(b"")
    torch.save({"model": {"w": torch.zeros(64, 64)}}, kinds["truncated"])
    data = kinds["truncated"].read_bytes()
    kinds["truncated"].write_bytes(data[:len(data) // 2])
    kinds["text"].write_text("this is not a checkpoint\n")
    torch.save({"foo": torch.zeros(2)}, kinds["foreign_dict"])
    torch.save(torch.zeros(3), kinds["bare_tensor"])
    with zipfile.ZipFile(kinds["foreign_zip"], "w") as archive:
        archive.writestr("notes.txt", "a zip, not a checkpoint")
    torch.save({"model": {}, "cfg": RunsShellOnUnpickle(folder / "payload_ran")},
               kinds["malicious"])
    return kinds


REASONS = {"missing": "no such file", "folder": "is a directory", "empty": "empty file",
           "truncated": "truncated", "text": "not a torch checkpoint",
           "foreign_dict": "not a fairseq checkpoint", "bare_tensor": "Tensor",
           "foreign_zip": "not torch's checkpoint format", "malicious": "refused"}


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> Dict[str, Path]:
    return _bad_checkpoints(tmp_path_factory.mktemp("bad_checkpoints"))


def _assert_one_error_line(err: str, path: Path, kind: str) -> None:
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and str(path) in errors[0], err
    if kind in ("missing", "folder", "empty", "text", "foreign_zip", "malicious", "truncated",
                "bare_tensor"):
        assert REASONS[kind] in errors[0], errors[0]


def _stream_a_wav() -> Callable[[List[str]], int]:
    return load_file_module(REPO / "examples" / "stream_a_wav.py", "stream_a_wav_matrix").main


def _commands(data: Path, tmp: Path) -> Dict[str, Callable[[Path], int]]:
    from echostream_fairseq.cli import advise, evaluate, measure_t2u

    wav = next((data / "wav" / "source").glob("*.wav"))
    return {
        "evaluate": lambda ckpt: evaluate.main([
            "--checkpoint", str(ckpt), "--manifest", str(data / "test_sampled.tsv"),
            "--output-dir", str(tmp / "eval"), "--chunk-ms", "320", "--no-progress"]),
        "measure_t2u": lambda ckpt: measure_t2u.main([
            "--checkpoint", str(ckpt), "--manifest", str(data / "dev_sampled.units.tsv")]),
        "advise": lambda ckpt: advise.main([
            "--config", str(CONFIG), "--checkpoint", str(ckpt),
            "--train-manifest", str(data / "train_sampled.units.tsv"),
            "--dev-manifest", str(data / "dev_sampled.units.tsv")]),
        "stream_a_wav": lambda ckpt: _stream_a_wav()([
            "--checkpoint", str(ckpt), "--data-dir", str(data), "--wav", str(wav)]),
    }


@pytest.mark.parametrize("command", ["evaluate", "measure_t2u", "advise", "stream_a_wav"])
def test_our_commands_refuse_every_bad_checkpoint_in_one_line(tiny_corpus, bad, tmp_path,
                                                              capsys, command):
    run = _commands(corpus_dir(tiny_corpus), tmp_path)[command]
    for kind, path in bad.items():
        status = run(path)
        captured = capsys.readouterr()
        if kind == "foreign_dict" and command == "advise":
            # a dict of tensors is a bare state dict to the advisor: nothing of it fits
            assert status == 0 and "FROM-SCRATCH" in captured.out.upper(), captured.out
            continue
        assert status == 2, (kind, captured.err)
        _assert_one_error_line(captured.err, path, kind)
    assert not (bad["malicious"].parent / "payload_ran").exists()
    assert not (tmp_path / "eval").exists()  # refused before any output was written


def test_train_init_from_refuses_every_bad_checkpoint_in_one_line(tiny_corpus, bad, tmp_path,
                                                                  capsys):
    from echostream_fairseq.cli import train

    data = corpus_dir(tiny_corpus)
    for kind, path in bad.items():
        save = tmp_path / kind
        status = train.main([
            "--config", str(CONFIG), "--train-manifest", str(data / "train_sampled.units.tsv"),
            "--dev-manifest", str(data / "dev_sampled.units.tsv"), "--save-dir", str(save),
            "--num-workers", "0", "--batch-size", "8", "--device", "cpu", "--init-from", str(path),
            "--max-update", "1"])
        err = capsys.readouterr().err
        assert status == 2, (kind, err)
        if kind != "foreign_dict":  # no tensor of it matches the model: that error names it
            _assert_one_error_line(err, path, kind)
        assert not (save / "checkpoint_last.pt").exists()
    assert not (bad["malicious"].parent / "payload_ran").exists()


# fairseq-train's own ways to start from a file: every kind through fairseq's loader
# (--finetune-from-model, --restore-file), the kinds that differ early through the plugin's
# per-group loader (--load-pretrained-*, which shares the loader of scripts/train.py --init-from)
FAIRSEQ_TRAIN_STARTS = ([("--finetune-from-model", kind) for kind in REASONS]
                        + [("--restore-file", kind) for kind in ("missing", "text", "malicious")]
                        + [(option, kind) for option in ("--load-pretrained-encoder-from",
                                                         "--load-pretrained-decoders-from")
                           for kind in ("missing", "foreign_zip", "malicious")])


@pytest.mark.parametrize("option, kind", FAIRSEQ_TRAIN_STARTS)
def test_fairseq_train_refuses_every_bad_start_checkpoint_in_one_line(tiny_corpus, bad, tmp_path,
                                                                      option, kind):
    from _fairseq_cli import TINY_MODEL, data_args, run_fairseq_train

    path = bad[kind]
    save = tmp_path / "save"
    result = run_fairseq_train(data_args(corpus_dir(tiny_corpus), save) + [
        "--arch", "echostream_mini", *TINY_MODEL, "--optimizer", "adam", "--lr", "0.001",
        "--max-tokens", "100000", "--max-update", "1", "--disable-validation", "--cpu",
        "--num-workers", "0", option, str(path)])
    assert result.returncode == 2, tail(result.stdout + result.stderr)
    if kind == "foreign_dict":  # fairseq's loader reads it; the plugin names what it lacks
        assert "Traceback" not in result.stderr and str(path) in result.stderr
    else:
        _assert_one_error_line(result.stderr, path, kind)
    assert not list(save.glob("checkpoint*.pt"))
    assert not (bad["malicious"].parent / "payload_ran").exists()


def test_the_agents_raise_the_same_error(tiny_corpus, bad):
    from argparse import ArgumentParser

    from echostream_fairseq.agents.speech_to_speech import EchoStreamSpeechToSpeechAgent

    parser = ArgumentParser()
    EchoStreamSpeechToSpeechAgent.add_args(parser)
    parser.add_argument("--source-segment-size", type=float, default=320)
    for kind, path in bad.items():
        args = parser.parse_args(["--checkpoint", str(path), "--data-dir",
                                  str(corpus_dir(tiny_corpus))])
        with pytest.raises(CheckpointLoadError) as raised:
            EchoStreamSpeechToSpeechAgent.build_pipeline(args)
        assert str(path) in str(raised.value) and REASONS[kind] in str(raised.value), kind


def _run(command: List[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
                          check=False)


@pytest.mark.parametrize("kind", ["missing", "text", "bare_tensor", "malicious"])
def test_simuleval_and_fairseq_generate_print_one_line_too(tiny_corpus, bad, tmp_path, kind):
    data = corpus_dir(tiny_corpus)
    path = bad[kind]
    wav_list = tmp_path / "wav_list.txt"
    wav_list.write_text(f"{next((data / 'wav' / 'source').glob('*.wav'))}\n")
    (tmp_path / "target.txt").write_text("a sentence\n")
    simuleval = _run([str(BIN / "simuleval"), "--agent-class", S2S_AGENT, "--checkpoint",
                      str(path), "--data-dir", str(data), "--source", str(wav_list), "--target",
                      str(tmp_path / "target.txt"), "--source-segment-size", "320",
                      "--output", str(tmp_path / "out")], tmp_path)
    generate = _run([str(BIN / "fairseq-generate"), str(data), "--user-dir", str(USER_DIR),
                     "--config-yaml", GCMVN_YAML, "--multitask-config-yaml", MULTITASK_YAML,
                     "--task", "speech_to_speech_ctc", "--target-is-code",
                     "--target-code-size", str(code_size(data)), "--path", str(path),
                     "--gen-subset", "test_sampled", "--cpu"], tmp_path)
    for result in (simuleval, generate):
        assert result.returncode == 2, tail(result.stdout + result.stderr)
        _assert_one_error_line(result.stderr, path, kind)
    assert not (bad["malicious"].parent / "payload_ran").exists()


def test_evaluate_refuses_an_output_dir_it_could_not_write_before_any_work(tiny_corpus, tmp_path,
                                                                           capsys):
    from echostream_fairseq.cli import evaluate

    blocker = tmp_path / "report_here"
    blocker.write_text("a file where the report folder would go")
    status = evaluate.main(["--checkpoint", str(tmp_path / "never_read.pt"), "--manifest",
                            str(corpus_dir(tiny_corpus) / "test_sampled.tsv"),
                            "--output-dir", str(blocker), "--no-progress"])
    assert status == 2
    expected = f"error: {blocker}: exists and is not a folder (--output-dir)\n"
    assert capsys.readouterr().err == expected
