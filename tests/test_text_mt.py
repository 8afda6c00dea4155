"""The text-MT ceiling (``echostream-text-mt``): fairseq's own preprocess, train and generate on the
corpus's subwords, scored as text and through the target voice; resumable; bad input is one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from echostream_fairseq.cli import text_mt
from echostream_fairseq.data.manifests import MULTITASK_YAML, multitask_folders, read_tsv


@pytest.fixture(scope="module")
def text_mt_run(tiny_corpus, tmp_path_factory) -> tuple[Path, dict]:
    work = tmp_path_factory.mktemp("text_mt") / "work"
    assert text_mt.main(["--data-dir", str(tiny_corpus), "--output-dir", str(work),
                         "--max-update", "2"]) == 0
    return work, json.loads((work / "text_mt.json").read_text(encoding="utf-8"))


def test_trains_on_the_speech_models_subwords_and_scores_text_and_cascade(tiny_corpus,
                                                                         text_mt_run):
    work, result = text_mt_run
    target_folder = multitask_folders(tiny_corpus)["target_unigram"][0]
    pieces = [r["tgt_text"] for r in read_tsv(target_folder / "train_sampled.units.tsv")]
    assert (work / "text" / "train.en").read_text(encoding="utf-8").splitlines() == pieces
    assert len((work / "text" / "train.de").read_text(encoding="utf-8").splitlines()) == 18
    assert result["updates"] == 2 and (work / "checkpoints" / "checkpoint_best.pt").is_file()
    assert result["text"]["num_sentences"] == 1 and 0.0 <= result["text"]["bleu"] <= 100.0
    test_refs = [r["tgt_text"] for r in read_tsv(tiny_corpus / "test_sampled.tsv")]
    assert [e["reference"] for e in result["examples"]] == test_refs
    # a 2-update model writes something (here: up to the length cap); piper speaks it
    assert result["examples"][0]["hypothesis"]
    assert result["cascade"]["num_sentences"] == 1 and result["cascade"]["speech_s"] > 0.5
    assert result["provenance"]["argv"][0]


def test_a_rerun_reuses_the_binarised_text_and_resumes_training(tiny_corpus, text_mt_run,
                                                               tmp_path):
    work, _ = text_mt_run
    preprocess_log = (work / "preprocess.log").read_text(encoding="utf-8")
    out = tmp_path / "again.json"
    assert text_mt.main(["--data-dir", str(tiny_corpus), "--output-dir", str(work),
                         "--max-update", "3", "--no-speech", "--output", str(out)]) == 0
    again = json.loads(out.read_text(encoding="utf-8"))
    assert again["updates"] == 3 and "cascade" not in again
    assert (work / "preprocess.log").read_text(encoding="utf-8") == preprocess_log
    assert "Loaded checkpoint" in (work / "train.log").read_text(encoding="utf-8")
    # at its --max-update already, a rerun does not train (fairseq-train would add an update)
    train_log = (work / "train.log").read_text(encoding="utf-8")
    assert text_mt.main(["--data-dir", str(tiny_corpus), "--output-dir", str(work),
                         "--max-update", "3", "--no-speech", "--output", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["updates"] == 3
    assert (work / "train.log").read_text(encoding="utf-8") == train_log


def test_other_german_text_is_translated_as_the_gold_test_text_is(tiny_corpus, text_mt_run,
                                                                    tmp_path, capsys):
    """--source-text (e.g. a speech model's ASR transcripts) goes through the same model and
    subwords: the gold German sentences given that way are translated exactly as the ceiling's
    own test run translated them."""
    work, result = text_mt_run
    gold = tmp_path / "gold.de"
    gold.write_text("".join(r["src_text"] + "\n"
                            for r in read_tsv(tiny_corpus / "test_sampled.tsv")), encoding="utf-8")
    out = tmp_path / "from_gold.json"
    args = ["--data-dir", str(tiny_corpus), "--output-dir", str(work), "--max-update", "2",
            "--no-speech"]
    assert text_mt.main([*args, "--source-text", str(gold), "--output", str(out)]) == 0
    again = json.loads(out.read_text(encoding="utf-8"))
    assert again["source_text"] == str(gold) and again["examples"] == result["examples"]
    assert again["text"]["bleu"] == result["text"]["bleu"]
    logged = tmp_path / "utterances.jsonl"  # an evaluation's log: its streaming German ASR
    test_id = read_tsv(tiny_corpus / "test_sampled.tsv")[0]["id"]
    logged.write_text(json.dumps({"id": test_id, "asr_text": gold.read_text().strip()}) + "\n",
                      encoding="utf-8")
    assert text_mt.main([*args, "--source-text", str(logged), "--output", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["examples"] == result["examples"]

    gold.write_text("\n", encoding="utf-8")  # the ASR heard no word: nothing to translate
    assert text_mt.main([*args, "--source-text", str(gold), "--output", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["examples"][0]["hypothesis"] == ""

    gold.write_text("one line\ntoo many\n", encoding="utf-8")
    assert text_mt.main([*args, "--source-text", str(gold), "--output", str(out)]) == 2
    assert f"{gold}: 2 sentences, but the test set has 1" in capsys.readouterr().err
    logged.write_text(json.dumps({"id": test_id}) + "\n", encoding="utf-8")
    assert text_mt.main([*args, "--source-text", str(logged), "--output", str(out)]) == 2
    assert f"{logged}: not an utterances.jsonl with id and asr_text" in capsys.readouterr().err
    logged.write_text(json.dumps({"id": "elsewhere", "asr_text": "ja"}) + "\n", encoding="utf-8")
    assert text_mt.main([*args, "--source-text", str(logged), "--output", str(out)]) == 2
    assert f"{logged}: 1 utterances, not the test set's 1 (missing ['{test_id}'])" in \
        capsys.readouterr().err
    assert text_mt.main([*args, "--source-text", str(gold)]) == 2
    assert "--source-text needs --output" in capsys.readouterr().err


def test_a_corpus_without_its_multitask_yaml_is_one_line(tiny_corpus, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_corpus, data, ignore=shutil.ignore_patterns("fbank", "wav"))
    (data / MULTITASK_YAML).unlink()
    assert text_mt.main(["--data-dir", str(data), "--output-dir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{data / MULTITASK_YAML}: no such file" in err
    assert text_mt.main(["--data-dir", str(tmp_path / "nowhere"),
                         "--output-dir", str(tmp_path / "w")]) == 2
    assert "no such corpus folder" in capsys.readouterr().err
