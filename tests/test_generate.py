"""Offline decoding with the real ``fairseq-generate`` (text and units) and its scoring script.

Decoding runs on a two-utterance copy of the tiny corpus' test and dev rows whose manifest has no
target units (as a test split may lack them), with a randomised 2-update checkpoint so that the
text and units are not trivially empty.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import torch
import yaml

from _fairseq_cli import GCMVN_YAML, MULTITASK_YAML, REPO, USER_DIR, corpus_dir, tail
from echostream_fairseq.data.audio import read_wav
from echostream_fairseq.data.text import detokenize
from echostream_fairseq.generation import read_generate_output
from echostream_fairseq.streaming import PipelineConfig, StreamingS2STPipeline
from test_streaming_pipeline import (
    WHOLE_UTTERANCE_SEGMENT,
    corpus_wavs,
    stream,
)

FAIRSEQ_GENERATE = str(Path(sys.executable).with_name("fairseq-generate"))
SPLIT = "test_sampled"
MAX_TEXT_LEN = 40  # subwords: a randomised model rarely ends on its own
# One Emformer segment over the whole utterance, as the pipeline's offline reference uses
WHOLE_UTTERANCE = ("--model-overrides", f"{{'segment_length': {WHOLE_UTTERANCE_SEGMENT}}}")


def _rows(path: Path) -> List[List[str]]:
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line]


def two_utterance_corpus(source: Path, target: Path, keep_units: bool = False) -> Path:
    """``target/test_sampled.tsv``: the tiny corpus' test + dev rows (without unit columns unless
    ``keep_units``), with multitask copies of the same rows (the multitask YAML points at them)."""
    target.mkdir(parents=True)
    header, *test = _rows(source / f"{SPLIT}.tsv")
    _, *dev = _rows(source / "dev_sampled.units.tsv")
    dropped = () if keep_units else ("tgt_audio", "tgt_n_frames")
    keep = [i for i, name in enumerate(header) if name not in dropped]
    (target / f"{SPLIT}.tsv").write_text(
        "".join("\t".join(row[i] for i in keep) + "\n" for row in [header] + test + dev),
        encoding="utf-8")
    (target / GCMVN_YAML).write_text((source / GCMVN_YAML).read_text())
    multitask = yaml.safe_load((source / MULTITASK_YAML).read_text())
    for entry in multitask.values():
        folder = target / Path(entry["data"]).name
        folder.mkdir(exist_ok=True)
        rows = _rows(Path(entry["data"]) / f"{SPLIT}.tsv") + _rows(
            Path(entry["data"]) / "dev_sampled.units.tsv")[1:]
        (folder / f"{SPLIT}.tsv").write_text("".join("\t".join(r) + "\n" for r in rows),
                                             encoding="utf-8")
        entry["data"] = str(folder)
    (target / MULTITASK_YAML).write_text(yaml.safe_dump(multitask))
    return target


def run_generate(data: Path, checkpoint: Path, num_units: int, *extra: str) -> str:
    """stdout of ``fairseq-generate`` on ``SPLIT`` (one thread; both utterances in one batch)."""
    args = [
        FAIRSEQ_GENERATE, str(data), "--user-dir", str(USER_DIR), "--task", "speech_to_speech_ctc",
        "--config-yaml", GCMVN_YAML, "--multitask-config-yaml", MULTITASK_YAML,
        "--target-is-code", "--target-code-size", str(num_units), "--gen-subset", SPLIT,
        "--path", str(checkpoint), "--cpu", "--num-workers", "0", "--max-tokens", "100000",
        "--required-batch-size-multiple", "1", *extra,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    return result.stdout


def score(output: str, tmp_path: Path, *extra: str) -> Dict[str, object]:
    """``scripts/score_generate.py`` on ``output`` (run in-process: fairseq is already loaded)."""
    from echostream_fairseq.cli import score_generate as module

    path, result = tmp_path / "generate.txt", tmp_path / "score.json"
    path.write_text(output, encoding="utf-8")
    assert module.main([str(path), "--output", str(result), *extra]) == 0
    return json.loads(result.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint) -> Path:
    torch.set_num_threads(1)
    return tiny_checkpoint


@pytest.fixture(scope="module")
def corpus(tiny_corpus, tmp_path_factory) -> Path:
    return two_utterance_corpus(corpus_dir(tiny_corpus), tmp_path_factory.mktemp("gen") / "data")


@pytest.fixture(scope="module")
def greedy_text(corpus, checkpoint, tiny_num_units) -> str:
    return run_generate(corpus, checkpoint, tiny_num_units, "--gen-output", "text", "--beam", "1",
                        "--max-len-a", "0", "--max-len-b", str(MAX_TEXT_LEN), "--min-len", "0",
                        "--scoring", "sacrebleu", *WHOLE_UTTERANCE)


@pytest.fixture(scope="module")
def greedy_units(corpus, checkpoint, tiny_num_units) -> str:
    # the first pass searches as the greedy text run does (its *-mt options)
    return run_generate(corpus, checkpoint, tiny_num_units, "--beam-mt", "1", "--beam", "1",
                        "--max-len-a-mt", "0", "--max-len-b-mt", str(MAX_TEXT_LEN),
                        "--min-len", "0", *WHOLE_UTTERANCE)


@pytest.fixture(scope="module")
def model_and_task(corpus, checkpoint):
    """The checkpoint loaded in-process as fairseq-generate loads it (same overrides)."""
    # imported here, after echostream_fairseq (whose import keeps fairseq's root-logger change out)
    from fairseq import checkpoint_utils

    overrides = {"data": str(corpus), "segment_length": WHOLE_UTTERANCE_SEGMENT}
    models, _cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)],
                                                                       arg_overrides=overrides)
    return models[0].eval(), task


# ---------------------------------------------------------------------------------- text
def test_greedy_text_equals_the_streaming_pipelines_whole_utterance_text(
        greedy_text, checkpoint, tiny_corpus):
    config = PipelineConfig(segment_length=WHOLE_UTTERANCE_SEGMENT, speech=False,
                            max_len_a=0, max_len_b=MAX_TEXT_LEN)
    pipe = StreamingS2STPipeline.from_checkpoint(str(checkpoint), str(corpus_dir(tiny_corpus)),
                                                 config=config)
    pieces = read_generate_output(greedy_text.splitlines(), "H")
    words = read_generate_output(greedy_text.splitlines(), "D")
    wavs = corpus_wavs(corpus_dir(tiny_corpus))  # test then dev: the manifest's row order
    assert sorted(pieces) == list(range(len(wavs)))
    for sentence_id, wav in enumerate(wavs):
        samples, rate = read_wav(wav)
        stream(pipe, samples, rate, pipe.geometry.segment_samples)
        assert pipe.target_tokens, "the randomised model should write something"
        assert pieces[sentence_id] == pipe.mt_dict.string(pipe.target_tokens)
        assert words[sentence_id] == detokenize(pipe.target_tokens, pipe.mt_dict)


def test_text_references_and_sacrebleu_scores(greedy_text, corpus, tmp_path):
    references = read_generate_output(greedy_text.splitlines(), "T")
    assert references[0] == "i want to shout my happiness from the rooftops"  # MT targets' form
    assert f"Generate {SPLIT} with beam=1: BLEU = " in greedy_text  # --scoring sacrebleu
    result = score(greedy_text, tmp_path, "--manifest", str(corpus / f"{SPLIT}.tsv"))
    assert result["mode"] == "text" and result["sentences"] == 2
    assert 0.0 <= result["bleu"] <= 100.0 and "tok:13a" in result["bleu_signature"]


def test_beam_search_writes_an_nbest_list_per_sentence(corpus, checkpoint, tiny_num_units):
    output = run_generate(corpus, checkpoint, tiny_num_units, "--gen-output", "text",
                          "--beam", "3", "--nbest", "2", "--max-len-b", str(MAX_TEXT_LEN))
    hypotheses = [line for line in output.splitlines() if line.startswith("H-")]
    assert sorted(line.split("\t")[0] for line in hypotheses) == ["H-0", "H-0", "H-1", "H-1"]
    for sentence_id in ("0", "1"):
        scores = [float(line.split("\t")[1]) for line in hypotheses
                  if line.startswith(f"H-{sentence_id}\t")]
        assert scores == sorted(scores, reverse=True)


def test_the_batch_multiple_that_would_drop_sentences_is_refused(model_and_task):
    model, task = model_and_task
    saved = task.args.required_batch_size_multiple
    task.args.required_batch_size_multiple = 8
    try:
        with pytest.raises(ValueError, match="required-batch-size-multiple 1"):
            task.build_generator([model], task.args)
    finally:
        task.args.required_batch_size_multiple = saved


# --------------------------------------------------------------------------------- units
def test_units_are_the_models_ctc_output_on_the_greedy_text(greedy_units, greedy_text,
                                                            model_and_task, tiny_num_units):
    """fairseq-generate units == the training forward on ``</s>`` + the greedy text over the same
    padded batch, CTC-decoded; each row equals that utterance alone within float noise (the
    padding leaks nothing; exact argmax equality across paddings would flip on near-ties); ids
    within 0..K-1; the manifest without units gives empty T- lines."""
    model, task = model_and_task
    units = read_generate_output(greedy_units.splitlines(), "D")
    assert set(read_generate_output(greedy_units.splitlines(), "T").values()) == {""}
    texts = read_generate_output(greedy_text.splitlines(), "H")
    task.load_dataset(SPLIT)
    dataset = task.dataset(SPLIT)
    mt_dict, unit_dict = task.target_dictionary_mt, task.tgt_dict
    assert sorted(units) == list(range(len(dataset))) == [0, 1]

    def prev_mt(indices):
        rows = [[mt_dict.eos()] + [mt_dict.index(p) for p in texts[i].split()] for i in indices]
        out = torch.full((len(rows), max(map(len, rows))), mt_dict.pad(), dtype=torch.long)
        for out_row, row in zip(out, rows):
            out_row[: len(row)] = torch.tensor(row)
        return out

    batch = dataset.collater([dataset[i] for i in range(len(dataset))])  # generate's one batch
    order = batch["id"].tolist()
    with torch.no_grad():
        logits, extra = model(batch["net_input"]["src_tokens"], batch["net_input"]["src_lengths"],
                              None, prev_mt(order))
    padding = extra["decoder_padding_mask"]  # None when no row is padded
    for row, index in enumerate(order):
        valid = logits[row] if padding is None else logits[row][~padding[row]]
        single = dataset.collater([dataset[index]])["net_input"]
        with torch.no_grad():
            alone, _ = model(single["src_tokens"], single["src_lengths"], None, prev_mt([index]))
        assert alone.shape[1] == valid.shape[0]
        # float noise only (seen up to 1.4e-4 on logits near 10); a padding leak would be O(1)
        torch.testing.assert_close(alone[0], valid, rtol=1e-4, atol=1e-3)
        valid = valid.clone()
        valid[:, [unit_dict.pad(), unit_dict.unk()]] = -float("inf")  # StreamSpeech's rule
        labels = valid.argmax(-1).tolist()
        expected = [int(unit_dict[b]) for a, b in zip([None] + labels, labels)
                    if b != a and b != unit_dict.blank_index and b >= unit_dict.nspecial]
        got = [int(u) for u in units[index].split()]
        assert got == expected
        assert all(0 <= u < tiny_num_units for u in got)
    assert any(units.values()), "the randomised model should give some units"


def test_unit_hypotheses_are_vocoded_and_asr_bleu_scored(greedy_units, corpus, tiny_corpus,
                                                         tmp_path):
    result = score(greedy_units, tmp_path, "--manifest", str(corpus / f"{SPLIT}.tsv"), "--units",
                   "--data-dir", str(corpus_dir(tiny_corpus)), "--wav-dir", str(tmp_path / "wavs"))
    assert result["mode"] == "units" and result["sentences"] == 2
    assert 0.0 <= result["asr_bleu"] <= 100.0
    wavs = sorted((tmp_path / "wavs").glob("*.wav"))
    assert len(wavs) == 2 - result["empty_unit_sequences"]
    for wav in wavs:
        samples, _ = read_wav(wav, expected_sr=None)
        assert samples.size > 0


def test_an_all_blank_sentence_gives_an_empty_unit_line(model_and_task):
    """A barely trained model writes only blanks: the hypothesis must print as an empty line and
    pass fairseq's default (C) BLEU scorer, which crashes on an empty token tensor."""
    from fairseq.scoring.bleu import BleuConfig, Scorer

    model, task = model_and_task
    generator = task.build_generator([model], task.args)
    unit_dict = task.tgt_dict
    logits = torch.zeros(1, 6, len(unit_dict))
    logits[:, :, unit_dict.blank_index] = 1.0
    [[hypo]] = generator._ctc_hypotheses(logits, None, [torch.tensor([unit_dict.eos()])])
    assert unit_dict.string(hypo["tokens"]) == ""
    scorer = Scorer(BleuConfig(pad=unit_dict.pad(), eos=unit_dict.eos(), unk=unit_dict.unk()))
    scorer.add(torch.IntTensor([unit_dict.nspecial, unit_dict.eos()]), hypo["tokens"].int())


def test_unit_blank_penalty_reaches_fairseq_generates_unit_search(model_and_task):
    """``--unit-blank-penalty``: a blank that wins by 1.0 loses to a penalty of 2 (and keeps
    winning at 0.25); the steps then write the best unit, merged into one."""
    from argparse import Namespace

    model, task = model_and_task
    unit_dict = task.tgt_dict
    logits = torch.zeros(1, 6, len(unit_dict))
    logits[:, :, unit_dict.blank_index] = 1.0
    logits[:, :, unit_dict.nspecial + 7] = 0.5
    eos = [torch.tensor([unit_dict.eos()])]
    for penalty, expected in ((0.25, ""), (2.0, "7")):
        args = Namespace(**{**vars(task.args), "unit_blank_penalty": penalty})
        [[hypo]] = task.build_generator([model], args)._ctc_hypotheses(logits, None, eos)
        assert unit_dict.string(hypo["tokens"]) == expected, penalty
