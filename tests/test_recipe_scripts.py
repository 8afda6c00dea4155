"""The recipe's helper scripts refuse bad arguments before any work, in one line, exit 2."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / "recipes" / "deen_mini" / script), *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_learning_curve_names_a_missing_checkpoint_before_evaluating(tmp_path):
    present = tmp_path / "checkpoint1.pt"
    present.write_bytes(b"")
    missing = tmp_path / "checkpoint2.pt"
    done = _run("learning_curve.sh", "--out-dir", str(tmp_path / "curve"),
                f"1111={present}", f"2222={missing}")
    assert done.returncode == 2
    assert done.stderr.strip().endswith(f"{missing}: no such checkpoint")
    assert not (tmp_path / "curve").exists()
    assert _run("learning_curve.sh").returncode == 2  # no checkpoint at all: the usage


def test_the_learning_curve_refuses_a_label_that_is_not_an_update_count(tmp_path):
    """The label names the folder a rerun deletes and redoes: only a positive number, once."""
    checkpoint = tmp_path / "checkpoint1.pt"
    checkpoint.write_bytes(b"")
    out = tmp_path / "curve"
    out.mkdir()
    (out / "kept").write_text("a finished evaluation", encoding="utf-8")
    for points in ([f"={checkpoint}"], [f"..={checkpoint}"], [f"0={checkpoint}"],
                   [f"7={checkpoint}", f"7={checkpoint}"], ["--out-dir"]):
        done = _run("learning_curve.sh", "--out-dir", str(out), *points)
        assert done.returncode == 2, points
    assert (out / "kept").read_text(encoding="utf-8") == "a finished evaluation"


def test_the_shipped_benches_refuse_an_unknown_summary_before_the_first_bench():
    done = _run("shipped_benches.sh", "evaluation_speed", "server_loads")
    assert done.returncode == 2 and "no bench for server_loads" in done.stderr
    assert "evaluation_speed:" not in done.stdout  # nothing started
