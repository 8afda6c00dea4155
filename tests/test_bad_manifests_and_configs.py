"""Every entry point that reads a manifest or a config x every kind of bad one: exit status 2,
one ``error:`` line naming the file, no traceback, nothing written (in-process)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import pytest

from _fairseq_cli import REPO, corpus_dir

CONFIG = REPO / "configs" / "train" / "echostream_mini.yaml"


def _bad_manifest_bytes(data: Path, name: str) -> Dict[str, Optional[bytes]]:
    """Each kind of broken copy of the tiny corpus' ``name`` manifest (None: no file)."""
    text = (data / name).read_text(encoding="utf-8")
    header, *rows = text.splitlines()
    columns = header.split("\t")
    drop = columns.index("src_n_frames")
    without_column = "\n".join("\t".join(f for i, f in enumerate(line.split("\t")) if i != drop)
                               for line in [header, *rows]) + "\n"
    first_id = rows[0].split("\t")[0]
    fields = rows[0].split("\t")
    fields[columns.index("tgt_audio")] = "99999 " + fields[columns.index("tgt_audio")]
    return {
        "missing_file": None,
        "missing_column": without_column.encode("utf-8"),
        "not_utf8": text.replace(first_id, "\u00e4" + first_id, 1).encode("latin-1"),
        "unit_out_of_range": ("\n".join([header, "\t".join(fields), *rows[1:]]) + "\n")
        .encode("utf-8"),
    }


def _corpus_with(data: Path, folder: Path, name: str, content: Optional[bytes]) -> Path:
    """A corpus folder like ``data`` (its files linked) whose ``name`` manifest is ``content``;
    returns that manifest's path."""
    folder.mkdir(parents=True)
    for entry in data.iterdir():
        if entry.name == name:
            continue
        if entry.suffix == ".tsv":  # copied: the commands check that manifests share a folder
            (folder / entry.name).write_bytes(entry.read_bytes())
        else:
            (folder / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    if content is not None:
        (folder / name).write_bytes(content)
    return folder / name


def _bad_configs(folder: Path) -> Dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    kinds = {"missing": folder / "absent.yaml", "binary": folder / "binary.yaml",
             "invalid_yaml": folder / "invalid.yaml"}
    kinds["binary"].write_bytes(b"\xff\xfe\x00\x01binary")
    kinds["invalid_yaml"].write_text("model: [unclosed\n")
    return kinds


TRAIN, DEV, TEST = "train_sampled.units.tsv", "dev_sampled.units.tsv", "test_sampled.tsv"


def _manifest_command(command: str, manifest: Path, tmp: Path, checkpoint: Path) -> int:
    from echostream_fairseq.cli import evaluate, measure_t2u, train

    corpus = manifest.parent
    if command == "evaluate":
        return evaluate.main(["--checkpoint", str(checkpoint), "--manifest", str(manifest),
                              "--output-dir", str(tmp / "eval"), "--no-progress"])
    if command == "measure_t2u":
        return measure_t2u.main(["--checkpoint", str(checkpoint), "--manifest", str(manifest)])
    return train.main(["--config", str(CONFIG), "--train-manifest", str(manifest),
                       "--dev-manifest", str(corpus / DEV), "--save-dir", str(tmp / "train"),
                       "--num-workers", "0", "--batch-size", "8", "--device", "cpu",
                       "--max-update", "1", "--no-save"])


@pytest.mark.parametrize("command, name", [("evaluate", TEST), ("measure_t2u", DEV),
                                           ("train", TRAIN)])
def test_bad_manifests_are_one_line(tiny_corpus, tiny_checkpoint, tmp_path, capsys, command,
                                    name):
    data = corpus_dir(tiny_corpus)
    failures: List[str] = []
    for kind, content in _bad_manifest_bytes(data, name).items():
        if command == "evaluate" and kind == "unit_out_of_range":
            continue  # a test set's units are not read: streaming writes its own
        manifest = _corpus_with(data, tmp_path / kind, name, content)
        status = _manifest_command(command, manifest, tmp_path / kind, tiny_checkpoint)
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        if status != 2 or "Traceback" in err or len(errors) != 1 or str(manifest) not in errors[0]:
            failures.append(f"{kind}: status {status}: {err[-800:]}")
        assert not (tmp_path / kind / "eval").exists()
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("command", ["train", "advise", "evaluate_decode", "measure_t2u_decode"])
def test_bad_configs_are_one_line(tiny_corpus, tiny_checkpoint, tmp_path, capsys, command):
    from echostream_fairseq.cli import advise, evaluate, measure_t2u, train

    data = corpus_dir(tiny_corpus)
    manifests = ["--train-manifest", str(data / "train_sampled.units.tsv"),
                 "--dev-manifest", str(data / "dev_sampled.units.tsv")]
    runs = {
        "train": lambda c: train.main(["--config", str(c), *manifests, "--dry-run"]),
        "advise": lambda c: advise.main(["--config", str(c), "--checkpoint",
                                         str(tiny_checkpoint), *manifests]),
        "evaluate_decode": lambda c: evaluate.main([
            "--checkpoint", str(tiny_checkpoint), "--manifest", str(data / "test_sampled.tsv"),
            "--output-dir", str(tmp_path / "eval"), "--decode-config", str(c)]),
        "measure_t2u_decode": lambda c: measure_t2u.main([
            "--checkpoint", str(tiny_checkpoint), "--manifest",
            str(data / "dev_sampled.units.tsv"), "--decode-config", str(c)]),
    }
    failures = []
    for kind, config in _bad_configs(tmp_path / "configs").items():
        status = runs[command](config)
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        if status != 2 or "Traceback" in err or len(errors) != 1 or str(config) not in errors[0]:
            failures.append(f"{kind}: status {status}: {err[-600:]}")
    assert not failures, "\n".join(failures)
    assert not (tmp_path / "eval").exists()
