"""fairseq's two log formats read into the same records: ``--log-format json`` and ``simple``
(what ``make demo`` writes), console lines and ``--log-file`` lines alike."""

from __future__ import annotations

from echostream_fairseq.cli import summarize_training
from echostream_fairseq.training_logs import log_records, simple_records

SIMPLE = "\n".join([
    "epoch 001:     10 / 24 loss=67.783, unit_ctc_loss=14.928, wps=514.5, ups=0.64, bsz=7.7, "
    "num_updates=10, lr=2.0e-04, train_wall=16, wall=16",
    "2026-12-03 06:39:00,798 | INFO | train_inner | epoch 026:     20 / 24 loss=27.139, "
    "ups=0.66, bsz=7.7, num_updates=620, wall=868",
    "epoch 001 | valid on 'dev_sampled.units' subset | loss 37.935 | unit_ctc_loss 9.305 | "
    "num_updates 24",
    "epoch 001 | loss 53.241 | unit_ctc_loss 12.052 | num_updates 24",
]) + "\n"
JSON = """\
{"epoch": 1, "update": 0.417, "loss": "67.783", "unit_ctc_loss": "14.928", "num_updates": "10"}
{"epoch": 1, "dev_sampled.units_loss": "37.935", "dev_sampled.units_num_updates": "24"}
"""


def test_simple_and_json_logs_give_the_same_records():
    interval, console = simple_records(SIMPLE, "train_inner")
    assert interval["loss"] == 67.783 and interval["num_updates"] == 10 and interval["lr"] == 2e-4
    assert console["num_updates"] == 620 and console["wall"] == 868
    (valid,) = simple_records(SIMPLE, "dev_sampled.units")
    assert valid == {"loss": 37.935, "unit_ctc_loss": 9.305, "num_updates": 24}
    (epoch,) = simple_records(SIMPLE, "train")
    assert epoch["loss"] == 53.241
    assert log_records(JSON, "train_inner")[0]["loss"] == interval["loss"]
    assert log_records(JSON, "dev_sampled.units")[0]["loss"] == valid["loss"]


def test_summarize_training_reads_a_simple_log(tmp_path, capsys):
    log = tmp_path / "train.log"
    log.write_text(SIMPLE)
    assert summarize_training.main([str(log), "--output", str(tmp_path / "records.json")]) == 0
    out = capsys.readouterr().out
    assert "| train | 10 | 16 | 67.783 | 14.928 |" in out and "| valid | 24 |" in out
    empty = tmp_path / "empty.log"
    empty.write_text("nothing logged\n")
    assert summarize_training.main([str(empty)]) == 2
    assert "no training records" in capsys.readouterr().err
