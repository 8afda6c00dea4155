"""What every command shares: one error line and exit status 2 for bad input, provenance."""

from __future__ import annotations

import argparse
import re

import pytest

from echostream_fairseq.cli.common import (EXIT_USER_ERROR, UserError, positive_int, provenance,
                                           run_main)


def _raise(error: BaseException):
    def body() -> None:
        raise error
    return body


def test_user_errors_are_one_line_and_status_2(capsys):
    assert run_main(_raise(UserError("data/x.tsv:3: column 'id' is empty"))) == EXIT_USER_ERROR
    assert capsys.readouterr().err == "error: data/x.tsv:3: column 'id' is empty\n"
    assert run_main(_raise(ValueError("bad")), (ValueError,)) == EXIT_USER_ERROR
    assert capsys.readouterr().err == "error: bad\n"


def test_other_errors_are_not_hidden():
    with pytest.raises(KeyError):
        run_main(_raise(KeyError("a bug")), (ValueError,))


def test_a_body_status_is_the_exit_status():
    assert run_main(lambda: None) == 0 and run_main(lambda: 1) == 1


def test_positive_int():
    assert positive_int("3") == 3
    for text in ("0", "-1", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_int(text)


def test_provenance_names_the_commit_the_tree_state_the_command_and_the_configs():
    record = provenance(["--manifest", "t.tsv"], {"decode": "configs/decode/deen_mini.yaml"})
    assert re.fullmatch(r"[0-9a-f]{40}", record["git_commit"])
    assert isinstance(record["git_dirty"], bool)
    assert record["argv"][1:] == ["--manifest", "t.tsv"]
    assert record["configs"] == {"decode": "configs/decode/deen_mini.yaml"}


def test_importing_a_script_runs_nothing(tmp_path):
    """fairseq imports ``examples.*``, which finds ``scripts/examples.py`` when a script runs:
    the wrappers must act only as ``__main__``."""
    import importlib.util
    from pathlib import Path

    scripts = sorted((Path(__file__).resolve().parents[1] / "scripts").glob("*.py"))
    assert len(scripts) >= 12
    for path in scripts:
        spec = importlib.util.spec_from_file_location(f"imported_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # a command run here would parse pytest's argv and exit
        assert callable(module.main), path
