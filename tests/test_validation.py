"""Manifest validation: every bad input is reported with its file, line and column."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from echostream_fairseq.data.audio import AudioError, read_wav, write_wav
from echostream_fairseq.data.features import fbank_num_frames
from echostream_fairseq.data.manifests import MANIFEST_COLUMNS, write_tsv
from echostream_fairseq.cli.validate import main
from echostream_fairseq.data.validate import (ManifestError, Problem, find_problems,
                                              validate_manifest)

K = 500


def _features(path: Path, frames: int = 50, dim: int = 80) -> Path:
    np.save(path, np.zeros((frames, dim), dtype=np.float32))
    return path


def _row(utt_id: str, src_audio: Path, src_n_frames: int, units: str = "1 2 3",
         tgt_n_frames: int = 3) -> tuple:
    return (utt_id, str(src_audio), src_n_frames, "Hallo Welt.", "Hello world.", units,
            tgt_n_frames)


def _manifest(tmp_path: Path, rows: list[tuple], header=MANIFEST_COLUMNS) -> Path:
    path = tmp_path / "train_sampled.units.tsv"
    write_tsv(path, header, [r[:len(header)] for r in rows])
    return path


def _only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


def test_valid_manifest_has_no_problems(tmp_path: Path) -> None:
    feats = _features(tmp_path / "a.npy")
    write_wav(tmp_path / "b.wav", np.full(16000, 0.1, dtype=np.float32))
    manifest = _manifest(tmp_path, [_row("a", feats, 50), _row("b", tmp_path / "b.wav", 16000)])
    assert find_problems(manifest, K) == []
    assert validate_manifest(manifest, K) == 2


def test_wrong_sample_rate_wav_is_reported(tmp_path: Path) -> None:
    wav = tmp_path / "8k.wav"
    sf.write(str(wav), np.full(8000, 0.1, dtype=np.float32), 8000, subtype="PCM_16")
    problem = _only(find_problems(_manifest(tmp_path, [_row("a", wav, 8000)]), K))
    assert (problem.line, problem.column) == (2, "src_audio")
    assert "8k.wav" in problem.message and "8000 Hz, expected 16000 Hz" in problem.message


def test_empty_wav_is_reported(tmp_path: Path) -> None:
    wav = tmp_path / "empty.wav"
    sf.write(str(wav), np.zeros(0, dtype=np.float32), 16000, subtype="PCM_16")
    problem = _only(find_problems(_manifest(tmp_path, [_row("a", wav, 1)]), K))
    assert (problem.line, problem.column) == (2, "src_audio")
    assert "empty.wav" in problem.message and "empty audio" in problem.message


def test_reading_a_bad_wav_anywhere_names_the_file(tmp_path: Path) -> None:
    wav = tmp_path / "22k.wav"
    sf.write(str(wav), np.full(2205, 0.1, dtype=np.float32), 22050, subtype="PCM_16")
    with pytest.raises(AudioError, match=r"22k\.wav: sample rate 22050 Hz, expected 16000 Hz"):
        read_wav(wav)
    (tmp_path / "garbage.wav").write_bytes(b"not a wav at all")
    with pytest.raises(AudioError, match=r"garbage\.wav: unreadable audio"):
        read_wav(tmp_path / "garbage.wav")
    with pytest.raises(AudioError, match="refusing to write empty audio"):
        write_wav(tmp_path / "x.wav", np.zeros(0, dtype=np.float32))


def test_missing_column_is_reported_on_the_header_line(tmp_path: Path) -> None:
    header = MANIFEST_COLUMNS[:-1]  # no tgt_n_frames
    manifest = _manifest(tmp_path, [_row("a", _features(tmp_path / "a.npy"), 50)], header)
    problem = _only(find_problems(manifest, K))
    assert (problem.line, problem.column) == (1, "tgt_n_frames")
    assert "missing from the header" in problem.message


def test_unit_outside_the_dictionary_is_reported(tmp_path: Path) -> None:
    feats = _features(tmp_path / "a.npy")
    manifest = _manifest(tmp_path, [_row("a", feats, 50, units=f"1 {K} 7 {K + 3}",
                                         tgt_n_frames=4)])
    problem = _only(find_problems(manifest, K))
    assert (problem.line, problem.column) == (2, "tgt_audio")
    assert f"[{K}, {K + 3}] outside the dictionary [0, {K})" in problem.message
    assert find_problems(manifest, K + 4) == []  # the same units fit a larger K


def test_wrong_feature_shape_is_reported(tmp_path: Path) -> None:
    feats = _features(tmp_path / "a40.npy", frames=50, dim=40)
    problem = _only(find_problems(_manifest(tmp_path, [_row("a", feats, 50)]), K))
    assert (problem.line, problem.column) == (2, "src_audio")
    assert "a40.npy" in problem.message and "(50, 40), expected (n, 80)" in problem.message


def test_n_frames_mismatches_are_reported(tmp_path: Path) -> None:
    feats = _features(tmp_path / "a.npy", frames=50)
    manifest = _manifest(tmp_path, [_row("a", feats, 49, units="4 5 6", tgt_n_frames=2)])
    problems = find_problems(manifest, K)
    assert [(p.line, p.column) for p in problems] == [(2, "src_n_frames"), (2, "tgt_n_frames")]
    assert "49 but" in problems[0].message and "has 50 frames" in problems[0].message
    assert "2 but tgt_audio holds 3 units" in problems[1].message


def test_every_problem_is_listed_with_file_line_and_column(tmp_path: Path) -> None:
    good = _features(tmp_path / "good.npy")
    rows = [
        _row("ok", good, 50),
        _row("gone", tmp_path / "missing.npy", 50),
        _row("text", good, 50, units="1 x 3"),
        _row("dup", good, 50, units="1 1 2"),
        _row("ok", good, 50),  # repeated id
    ]
    manifest = _manifest(tmp_path, rows)
    with open(manifest, "a", encoding="utf-8") as handle:
        handle.write("short\trow\n")
    problems = find_problems(manifest, K)
    located = [(p.line, p.column) for p in problems]
    assert located == [(3, "src_audio"), (4, "tgt_audio"), (5, "tgt_audio"), (6, "id"),
                       (7, "src_n_frames")]
    assert "missing.npy: file does not exist" in problems[0].message
    assert "'x' is not a non-negative integer" in problems[1].message
    assert "de-duplicated" in problems[2].message
    assert all(p.file == str(manifest) for p in problems)
    with pytest.raises(ManifestError) as info:
        validate_manifest(manifest, K)
    assert info.value.problems == problems
    assert f"{manifest}:3: column 'src_audio'" in str(info.value)


def test_zip_entries_are_checked(tmp_path: Path) -> None:
    blob = io.BytesIO()
    np.save(blob, np.zeros((30, 80), dtype=np.float32))
    data = b"HEADER" + blob.getvalue()
    (tmp_path / "fbank80.zip").write_bytes(data)
    entry = f"{tmp_path / 'fbank80.zip'}:6:{len(data) - 6}"
    manifest = _manifest(tmp_path, [("a", entry, 30, "x", "y", "1 2", 2),
                                    ("b", f"{tmp_path / 'fbank80.zip'}:6:99999", 30, "x", "y",
                                     "1 2", 2)])
    problem = _only(find_problems(manifest, K))
    assert problem.line == 3 and "runs past the end" in problem.message


def test_fbank_frame_count_formula() -> None:
    assert fbank_num_frames(16000) == 98  # 1 s: 1 + (16000 - 400) // 160
    assert fbank_num_frames(399) == 0


def test_command_line_prints_problems_and_fails(tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    feats = _features(tmp_path / "a.npy")
    manifest = _manifest(tmp_path, [_row("a", feats, 50, units="1 600 2", tgt_n_frames=3)])
    assert main([str(manifest), "--num-units", str(K)]) == 1
    out = capsys.readouterr().out
    assert f"{manifest}:2: column 'tgt_audio'" in out and "1 problem(s)" in out
    assert main([str(manifest), "--num-units", "1000"]) == 0
    assert "OK" in capsys.readouterr().out


def test_without_num_units_the_corpus_report_gives_k_or_the_output_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    feats = _features(tmp_path / "a.npy")
    manifest = _manifest(tmp_path, [_row("a", feats, 50, units="1 99999 2", tgt_n_frames=3)])
    assert main([str(manifest)]) == 0
    assert "unit ids not range-checked" in capsys.readouterr().out
    (tmp_path / "report.json").write_text('{"units": {"num_units": 500}}')
    assert main([str(manifest)]) == 1  # unit 99999 >= K = 500 of the corpus beside it
    assert f"{manifest}:2: column 'tgt_audio'" in capsys.readouterr().out
