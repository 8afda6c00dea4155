"""scripts/measure_t2u.py: the reference text through a checkpoint's T2U, vocoder and recogniser,
on two tiny-corpus utterances with their units."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from _fairseq_cli import corpus_dir, load_script
from echostream_fairseq.data.manifests import read_tsv
from echostream_fairseq.data.text import parse_units
from echostream_fairseq.evaluation.report import load_ceilings
from test_generate import SPLIT, two_utterance_corpus

MEASURE_T2U = load_script("measure_t2u")
RESULTS_TABLE = load_script("results_table")


@pytest.fixture(scope="module")
def corpus(tiny_corpus, tmp_path_factory) -> Path:
    source = corpus_dir(tiny_corpus)
    target = two_utterance_corpus(source, tmp_path_factory.mktemp("t2u") / "data", keep_units=True)
    (target / "units").symlink_to(source / "units")  # the embedded vocoder
    # shortest source first: fairseq's collater puts the longest first, so a batch of both
    # comes back out of manifest order and the script must restore it
    manifest = target / f"{SPLIT}.tsv"
    header, *rows = manifest.read_text(encoding="utf-8").splitlines()
    frames = header.split("\t").index("src_n_frames")
    rows.sort(key=lambda row: int(row.split("\t")[frames]))
    assert int(rows[0].split("\t")[frames]) < int(rows[1].split("\t")[frames])
    manifest.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def model_and_task(corpus, talkative_checkpoint):
    from echostream_fairseq.checkpoints import load_model_and_task as load_checkpoint

    torch.set_num_threads(1)
    model, task = load_checkpoint(str(talkative_checkpoint), str(corpus))
    return model.eval(), task


def test_units_do_not_depend_on_the_batch_and_references_are_the_manifests(model_and_task,
                                                                           corpus):
    model, task = model_and_task
    together = MEASURE_T2U.reference_text_units(model, task, SPLIT, 2, batch_size=2)
    alone = MEASURE_T2U.reference_text_units(model, task, SPLIT, 2, batch_size=1)
    dataset = task.datasets[SPLIT]
    assert dataset.collater([dataset[0], dataset[1]])["id"].tolist() == [1, 0]
    assert [item["units"] for item in together] == [item["units"] for item in alone]
    assert all(item["units"] for item in together), "the talkative model writes units"
    # the unit mask reaches the decoder: seeing every T2U state changes the units
    unmasked = MEASURE_T2U.reference_text_units(model, task, SPLIT, 2, batch_size=2,
                                                unit_n2=1000)
    assert [item["units"] for item in unmasked] != [item["units"] for item in together]
    rows = read_tsv(corpus / f"{SPLIT}.tsv")
    assert [item["reference_units"] for item in together] == \
        [parse_units(row["tgt_audio"]) for row in rows]


def test_the_script_scores_the_speech_and_its_file_is_a_ceiling_row(corpus, talkative_checkpoint,
                                                                    tmp_path, capsys):
    out = tmp_path / "t2u.json"
    assert MEASURE_T2U.main(["--checkpoint", str(talkative_checkpoint), "--manifest",
                             str(corpus / f"{SPLIT}.tsv"), "--label", "tiny", "--output", str(out),
                             "--save-wavs", str(tmp_path / "wavs")]) == 0
    result = json.loads(out.read_text())
    scores = result["t2u_reference_text"]
    assert scores["num_sentences"] == 2 and 0.0 <= scores["bleu"] <= 100.0
    assert scores["reference_units"] == sum(len(parse_units(r["tgt_audio"]))
                                            for r in read_tsv(corpus / f"{SPLIT}.tsv"))
    assert scores["unit_ratio"] == pytest.approx(scores["units"] / scores["reference_units"])
    assert scores["speech_s"] > 0 and scores["no_units"] == 0
    assert len(list((tmp_path / "wavs").glob("*.wav"))) == 2
    assert "reference text -> T2U -> vocoder" in capsys.readouterr().out
    [row] = load_ceilings(out)
    assert row["name"] == ("test_sampled reference text -> T2U + unit CTC of tiny -> "
                           "embedded vocoder (unit mask k2=0 n2=1)")
    assert (row["sentences"], row["asr_bleu"]) == (2, scores["bleu"])
    # a penalty sweep is rendered as a table of its own: no evaluate.py report needed
    assert RESULTS_TABLE.main(["--ceilings", str(out)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| speech | sentences | ASR-BLEU | WER % | units / reference units")
    assert len(table) == 3
    assert table[2].startswith(f"| {row['name']} | 2 | {scores['bleu']:.2f} | "
                               f"{scores['wer']:.1f} | {scores['unit_ratio']:.2f} |")
    with pytest.raises(SystemExit):
        RESULTS_TABLE.main([])
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:begin -->\nmodel table\n<!-- results:end -->\n")
    with pytest.raises(SystemExit):  # would replace the model table by the ceilings alone
        RESULTS_TABLE.main(["--ceilings", str(out), "--readme", str(readme)])
    assert "model table" in readme.read_text()


def test_a_blank_bonus_silences_the_unit_decoder(corpus, talkative_checkpoint, tmp_path):
    """The penalty reaches the decode: the talkative model's blank scores 0, so a bonus (negative
    penalty) above every logit leaves no unit; the row names the penalty."""
    out = tmp_path / "t2u.json"
    assert MEASURE_T2U.main(["--checkpoint", str(talkative_checkpoint), "--manifest",
                             str(corpus / f"{SPLIT}.tsv"), "--unit-blank-penalty=-1e4",
                             "--label", "tiny", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["decode"]["unit_blank_penalty"] == -1e4
    assert result["t2u_reference_text"]["units"] == 0
    assert result["t2u_reference_text"]["no_units"] == 2
    assert "(unit mask k2=0 n2=1, unit blank penalty -10000)" in load_ceilings(out)[0]["name"]


def test_a_training_manifest_is_refused(model_and_task):
    model, task = model_and_task
    with pytest.raises(ValueError, match="not a training one"):
        MEASURE_T2U.reference_text_units(model, task, "train_sampled.units", 2, batch_size=2)


def test_a_missing_checkpoint_is_one_error_line(corpus, tmp_path, capsys):
    missing = tmp_path / "nope.pt"
    assert MEASURE_T2U.main(["--checkpoint", str(missing), "--manifest",
                             str(corpus / f"{SPLIT}.tsv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0]


def test_a_manifest_without_reference_text_is_named(corpus, talkative_checkpoint,
                                                    tmp_path, capsys):
    manifest = corpus / f"{SPLIT}.tsv"
    header, *rows = manifest.read_text(encoding="utf-8").splitlines()
    drop = header.split("\t").index("tgt_text")
    bad = tmp_path / "no_text.tsv"
    kept = ["\t".join(f for i, f in enumerate(line.split("\t")) if i != drop)
            for line in [header, *rows]]
    bad.write_text("\n".join(kept) + "\n", encoding="utf-8")
    assert MEASURE_T2U.main(["--checkpoint", str(talkative_checkpoint),
                             "--manifest", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "tgt_text" in err and "column missing" in err
