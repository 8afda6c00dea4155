"""One option vocabulary: every command's parser (the package's commands, the SimulEval agents,
the benches, the example) uses the names of ``echostream_fairseq.cli.vocabulary`` and nothing
else; old spellings only as aliases of their replacements; every console script is declared."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
from pathlib import Path
from typing import Dict

import pytest

from _fairseq_cli import load_file_module
from echostream_fairseq.cli.vocabulary import DEPRECATED_ALIASES, FLAGS

REPO = Path(__file__).resolve().parents[1]
CLI_DIR = REPO / "echostream_fairseq" / "cli"
NOT_COMMANDS = {"__init__", "common", "vocabulary"}
COMMANDS = sorted(p.stem for p in CLI_DIR.glob("*.py") if p.stem not in NOT_COMMANDS)
FILE_COMMANDS = ["bench/streaming_cost.py", "bench/long_stream_memory.py",
                 "bench/encoder_chunk_cost.py", "bench/batched_streams.py",
                 "bench/sentence_cuts.py", "bench/server_load.py", "bench/evaluation_speed.py",
                 "examples/stream_a_wav.py"]
AGENTS = ["echostream_fairseq.agents.speech_to_speech:EchoStreamSpeechToSpeechAgent",
          "echostream_fairseq.agents.speech_to_text:EchoStreamSpeechToTextAgent",
          "echostream_fairseq.agents.streaming_asr:EchoStreamASRAgent"]


def _load_file(relative: str):
    return load_file_module(REPO / relative, f"vocabulary_{Path(relative).stem}")


def _with_subcommands(where: str, parser: argparse.ArgumentParser
                      ) -> Dict[str, argparse.ArgumentParser]:
    """``parser`` and the parser of each of its subcommands (``where:NAME``)."""
    found = {where: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(_with_subcommands(f"{where}:{name}", sub))
    return found


def _parsers() -> Dict[str, argparse.ArgumentParser]:
    parsers = {}
    for name in COMMANDS:
        parsers.update(_with_subcommands(f"cli.{name}", importlib.import_module(
            f"echostream_fairseq.cli.{name}").build_parser()))
    parsers.update({relative: _load_file(relative).build_parser() for relative in FILE_COMMANDS})
    for target in AGENTS:
        module, name = target.split(":")
        parser = argparse.ArgumentParser()
        getattr(importlib.import_module(module), name).add_args(parser)
        parsers[name] = parser
    return parsers


@pytest.fixture(scope="module")
def parsers() -> Dict[str, argparse.ArgumentParser]:
    return _parsers()


def test_the_vocabulary_is_consistent():
    assert not set(FLAGS) & set(DEPRECATED_ALIASES)
    assert set(DEPRECATED_ALIASES.values()) <= set(FLAGS)


def test_every_option_is_in_the_vocabulary(parsers):
    unknown, misplaced = [], []
    for where, parser in parsers.items():
        for action in parser._actions:
            names = [s for s in action.option_strings if s.startswith("--")]
            for index, name in enumerate(names):
                if name in DEPRECATED_ALIASES:
                    if index == 0 or names[0] != DEPRECATED_ALIASES[name]:
                        misplaced.append(f"{where}: {name} must alias {DEPRECATED_ALIASES[name]}")
                elif name not in FLAGS and not name.startswith("--no-"):
                    unknown.append(f"{where}: {name}")
                elif name.startswith("--no-") and name not in FLAGS and name[5:] not in \
                        {f[2:] for f in FLAGS}:
                    unknown.append(f"{where}: {name}")  # --no-X is fine for a boolean --X
    assert not unknown, "options outside cli/vocabulary.py FLAGS:\n" + "\n".join(unknown)
    assert not misplaced, "\n".join(misplaced)


def test_every_command_takes_log_level_and_the_agents_the_decoding_options(parsers):
    for where, parser in parsers.items():
        options = {s for action in parser._actions for s in action.option_strings}
        if where.startswith("EchoStream"):
            assert {"--decode-config", "--unit-k2", "--unit-n2"} <= options, where
        elif any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
            continue  # its subcommands take it, after their name
        else:
            assert "--log-level" in options, where
    for where in ("cli.evaluate", "cli.measure_t2u", "bench/streaming_cost.py",
                  "bench/long_stream_memory.py", "examples/stream_a_wav.py"):
        assert "--decode-config" in {s for a in parsers[where]._actions for s in a.option_strings}


def test_every_command_is_a_declared_console_script():
    declared = {entry.name: entry.value for entry in
                importlib.metadata.entry_points(group="console_scripts")
                if entry.name.startswith("echostream-")}
    expected = {f"echostream-{name.replace('_', '-')}": f"echostream_fairseq.cli.{name}:main"
                for name in COMMANDS}
    assert declared == expected


def test_the_seed_spellings_still_parse():
    from echostream_fairseq.cli.evaluate import build_parser

    opts = build_parser().parse_args(["--checkpoint", "c.pt", "--test-manifest", "t.tsv",
                                      "--chunk-sizes", "320,640"])
    assert opts.manifest == Path("t.tsv") and opts.chunk_ms == [320, 640]


@pytest.mark.parametrize("bench,option,value", [
    ("bench/batched_streams.py", "--batch-sizes", "1,x"),
    ("bench/server_load.py", "--streams", "0,8"),
    ("bench/sentence_cuts.py", "--pause-ms", ""),
])
def test_the_benches_refuse_a_bad_number_list_naming_the_option(bench, option, value, capsys):
    module = _load_file(bench)
    with pytest.raises(SystemExit) as exited:
        module.main(["--checkpoint", "unused.pt", option, value])
    assert exited.value.code == 2
    assert f"{option} needs positive integers, comma-separated, got {value!r}" in \
        capsys.readouterr().err


@pytest.mark.parametrize("bench", ["bench/batched_streams.py", "bench/server_load.py",
                                   "bench/sentence_cuts.py", "bench/long_stream_memory.py",
                                   "bench/streaming_cost.py"])
def test_the_benches_refuse_an_unreadable_checkpoint_in_one_line(bench, tmp_path, capsys):
    checkpoint = tmp_path / "broken.pt"
    checkpoint.write_bytes(b"not a checkpoint")
    module = _load_file(bench)
    assert module.main(["--checkpoint", str(checkpoint), "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(checkpoint) in err and "Traceback" not in err


def test_the_evaluation_speed_bench_refuses_bad_input_in_one_line(tmp_path, capsys):
    module = _load_file("bench/evaluation_speed.py")
    with pytest.raises(SystemExit) as exited:
        module.main(["--checkpoint", "unused.pt", "--data-dir", str(tmp_path),
                     "--batch-size", "0"])
    assert exited.value.code == 2
    assert "--batch-size: expected a positive integer, got 0" in capsys.readouterr().err

    missing = tmp_path / "test_sampled.tsv"  # the default manifest of the corpus folder
    assert module.main(["--checkpoint", "unused.pt", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(missing) in err and "Traceback" not in err
