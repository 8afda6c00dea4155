"""What every command shares: one error line and exit status 2 for bad input, provenance."""

from __future__ import annotations

import argparse
import re

import pytest

from echostream_fairseq.cli.common import (EXIT_USER_ERROR, UserError, count_or_all, positive_int,
                                           provenance, run_main)


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


def test_count_or_all_takes_all_for_no_limit():
    rows = list(range(600))
    assert rows[:count_or_all("all")] == rows and rows[:count_or_all("504")] == rows[:504]
    with pytest.raises(argparse.ArgumentTypeError):
        count_or_all("0")
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-utterances", type=count_or_all, default=100)
    assert parser.parse_args(["--max-utterances", "all"]).max_utterances is None


def test_provenance_names_the_commit_the_tree_state_the_command_and_the_configs():
    record = provenance(["--manifest", "t.tsv"], {"decode": "configs/decode/deen_mini.yaml"})
    assert re.fullmatch(r"[0-9a-f]{40}", record["git_commit"])
    assert isinstance(record["git_dirty"], bool)
    assert record["argv"][1:] == ["--manifest", "t.tsv"]
    assert record["configs"] == {"decode": "configs/decode/deen_mini.yaml"}


def test_importing_a_script_runs_nothing(tmp_path):
    """fairseq imports ``examples.*``, which finds ``scripts/examples.py`` when a script runs:
    the wrappers must act only as ``__main__``."""
    from pathlib import Path

    from _fairseq_cli import load_file_module

    scripts = sorted((Path(__file__).resolve().parents[1] / "scripts").glob("*.py"))
    assert len(scripts) >= 12
    for path in scripts:
        # a command run here would parse pytest's argv and exit
        module = load_file_module(path, f"imported_{path.stem}")
        assert callable(module.main), path


def test_prepare_refuses_stages_that_would_run_nothing(capsys):
    from echostream_fairseq.cli import prepare
    from echostream_fairseq.corpus.build import EXTRA_PAIR_ORIGINS, STAGES, UNIT_TYPES

    # the CLI's copies (it does not import the builder to parse its options)
    assert list(prepare.STAGE_NUMBERS) == [number for number, _, _ in STAGES]
    assert prepare.UNIT_TYPES == UNIT_TYPES
    assert set(prepare.EXTRA_PAIR_SOURCES) == set(EXTRA_PAIR_ORIGINS)
    for argv in (["--stage", "9"], ["--stage", "5", "--stop-stage", "3"], ["--max-pairs", "0"]):
        with pytest.raises(SystemExit) as raised:
            prepare.main(argv)
        assert raised.value.code == 2 and "error:" in capsys.readouterr().err


def test_unreadable_manifests_and_configs_name_the_file(tmp_path):
    from echostream_fairseq.data.manifests import ManifestReadError, read_tsv
    from echostream_fairseq.data.validate import find_problems
    from echostream_fairseq.errors import ConfigError, UserError
    from echostream_fairseq.training import load_recipe

    binary = tmp_path / "binary.tsv"
    binary.write_bytes(b"id\tsrc_audio\n\xff\xfe bad\n")
    (tmp_path / "folder.tsv").mkdir()
    for path, reason in ((binary, "not UTF-8 text (byte 0xff at offset 13)"),
                         (tmp_path / "folder.tsv", "a folder, not a manifest TSV"),
                         (tmp_path / "absent.tsv", "no such manifest")):
        with pytest.raises(ManifestReadError) as raised:
            read_tsv(path)
        assert str(raised.value).startswith(str(path)) and reason in str(raised.value)
        assert isinstance(raised.value, UserError)
    (problem,) = find_problems(binary)
    assert (problem.line, problem.message) == (2, "not UTF-8 text (byte 0xff at offset 13)")
    config = tmp_path / "binary.yaml"
    config.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ConfigError, match=f"config {config}: not UTF-8 text"):
        load_recipe(config)


@pytest.mark.corpus  # a subprocess
def test_install_system_deps_help_installs_nothing():
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "install_system_deps.sh"
    done = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0 and done.stdout.startswith("usage:")
    assert subprocess.run(["bash", str(script), "--bogus"], capture_output=True,
                          timeout=30).returncode == 2


def test_an_output_folder_that_cannot_be_written_is_refused_before_the_work(tmp_path):
    from echostream_fairseq.cli.common import check_output_dir

    check_output_dir(tmp_path / "new" / "deeper")  # creatable: fine, and nothing created
    assert not (tmp_path / "new").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="exists and is not a folder"):
        check_output_dir(tmp_path / "file")
    with pytest.raises(UserError, match="is not a writable folder"):
        check_output_dir(tmp_path / "file" / "below")


def test_debugging_shows_the_traceback_of_user_errors(monkeypatch):
    monkeypatch.setenv("ECHOSTREAM_DEBUG", "1")
    with pytest.raises(UserError, match="data/x.tsv"):
        run_main(_raise(UserError("data/x.tsv: bad")))


def test_a_plain_value_error_is_a_bug_and_keeps_its_traceback():
    """Only the user-error family is one line: a shape error of our own code is not bad input."""
    from echostream_fairseq.errors import InputError

    with pytest.raises(ValueError, match="shape"):
        run_main(_raise(ValueError("shape mismatch")))
    assert run_main(_raise(InputError("config x.yaml: no such file"))) == EXIT_USER_ERROR
