"""Bad input gives a clear error or is handled: never a crash deep in torch."""

import math
import shutil
from pathlib import Path
from typing import Any, Dict, Tuple

import pytest
import torch
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

import echostream_fairseq  # noqa: F401  (registers everything)
from _fairseq_cli import GCMVN_YAML, MULTITASK_YAML, TINY_MODEL, TRAIN_SPLIT, code_size, corpus_dir


def _setup(data: Path, k: int) -> Tuple[Any, Any, Any]:
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        str(data), "--task", "speech_to_speech_ctc", "--config-yaml", GCMVN_YAML,
        "--multitask-config-yaml", MULTITASK_YAML, "--target-is-code",
        "--target-code-size", str(k), "--criterion", "speech_to_unit_2pass_ctc_asr_st",
        "--arch", "echostream_mini", *TINY_MODEL, "--k1", "0", "--n1", "1", "--k2", "0",
        "--n2", "-1", "--multichunk"])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    return task, task.build_model(cfg.model), task.build_criterion(cfg.criterion)


@pytest.fixture(scope="module")
def setup(tiny_corpus):
    torch.manual_seed(0)
    data = corpus_dir(tiny_corpus)
    task, model, criterion = _setup(data, code_size(data))
    task.load_dataset(TRAIN_SPLIT)
    return task, model, criterion


def _batch(task: Any, size: int = 3) -> Dict[str, Any]:
    dataset = task.datasets[TRAIN_SPLIT]
    return dataset.collater([dataset[i] for i in range(size)])


def _loss_is_finite_and_trains(model: Any, criterion: Any, sample: Dict[str, Any]) -> float:
    model.train()
    model.zero_grad()
    loss, sample_size, _ = criterion(model, sample)
    loss.backward()
    assert math.isfinite(float(loss)) and sample_size > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    return float(loss)


def test_batch_with_one_empty_target_is_handled(setup):
    task, model, criterion = setup
    sample = _batch(task)
    eos, pad = task.target_dictionary.eos(), task.target_dictionary.pad()
    # utterance 0: no units (only </s>), no source or target text (CTC targets empty, MT = </s>)
    sample["target"][0] = pad
    sample["target"][0, 0] = eos
    sample["target_lengths"][0] = 1
    sample["ntokens"] = int(sample["target_lengths"].sum())
    for name, mt in sample["multitask"].items():
        text_pad, text_eos = (task.multitask_tasks[name].target_dictionary.pad(),
                              task.multitask_tasks[name].target_dictionary.eos())
        mt["target"][0] = text_pad
        if task.multitask_tasks[name].args.decoder_type == "ctc":
            mt["target_lengths"][0] = 0
        else:
            mt["target"][0, 0] = text_eos
            mt["target_lengths"][0] = 1
            mt["net_input"]["prev_output_tokens"][0] = text_pad
            mt["net_input"]["prev_output_tokens"][0, 0] = text_eos
        mt["ntokens"] = int(mt["target_lengths"].sum())
    for _ in range(3):  # every multichunk draw
        _loss_is_finite_and_trains(model, criterion, sample)


def test_utterance_shorter_than_one_segment_is_handled(setup):
    task, model, criterion = setup
    sample = _batch(task)
    # 12 fbank frames -> 3 encoder frames, shorter than the 8-frame segment (and every multichunk
    # size)
    sample["net_input"]["src_lengths"][0] = 12
    sample["net_input"]["src_tokens"][0, 12:] = 0.0
    for _ in range(3):
        _loss_is_finite_and_trains(model, criterion, sample)
    single = {k: v for k, v in _batch(task, 1).items()}
    single["net_input"]["src_tokens"] = single["net_input"]["src_tokens"][:, :5]
    single["net_input"]["src_lengths"][:] = 5
    _loss_is_finite_and_trains(model, criterion, single)


def test_utterance_without_frames_is_a_clear_error(setup):
    task, model, criterion = setup
    sample = _batch(task, 2)
    sample["net_input"]["src_lengths"][0] = 0
    with pytest.raises(ValueError, match="fbank frame"):
        criterion(model, sample)


def test_manifest_unit_outside_dictionary_names_file_and_line(tiny_corpus, tmp_path):
    data = corpus_dir(tiny_corpus)
    for name in (GCMVN_YAML, MULTITASK_YAML):
        shutil.copy(data / name, tmp_path / name)
    k = code_size(data)
    lines = (data / f"{TRAIN_SPLIT}.tsv").read_text().splitlines()
    column = lines[0].split("\t").index("tgt_audio")
    row = lines[2].split("\t")
    row[column] = f"{row[column]} {k}".strip()  # unit K does not exist (0..K-1)
    lines[2] = "\t".join(row)
    bad = tmp_path / f"{TRAIN_SPLIT}.tsv"
    bad.write_text("\n".join(lines) + "\n")
    task, _, _ = _setup(tmp_path, k)
    with pytest.raises(ValueError,
                       match=rf"{bad}:3: column 'tgt_audio': .*unit\(s\) \[{k}\] outside "
                             rf"the dictionary \[0, {k}\) \(--target-code-size {k}\)"):
        task.load_dataset(TRAIN_SPLIT)


def test_missing_manifest_is_a_clear_error(setup):
    from echostream_fairseq.data.manifests import ManifestReadError

    task, _, _ = setup
    with pytest.raises(ManifestReadError, match=r"train_missing\.tsv: no such manifest"):
        task.load_dataset("train_missing")
