"""load_partial_checkpoint: per-group loading and counts; plain-layout upgrade; bad files;
StreamSpeech checkpoints (its real key names) into a real echostream model, directly and through
fairseq's loader."""

import copy
from typing import List

import pytest
import torch
from torch import nn

from _streamspeech_state import (
    RELEASED_VOCABULARY, STREAMSPEECH_KEYS, build_tiny_model, save_streamspeech, streamspeech_state,
)
from echostream_fairseq.checkpoint_safety import CheckpointLoadError
from echostream_fairseq.checkpoints import (
    DECODER_GROUPS,
    PARAMETER_GROUPS,
    group_of,
    install,
    is_streamspeech_state,
    load_partial_checkpoint,
    read_model_state,
    upgrade_plain_checkpoint,
    vocabulary_sizes,
)


class _FiveHeads(nn.Module):
    """The six StreamSpeech prefixes with a few tensors each; ``vocab`` sizes the CTC heads."""

    def __init__(self, vocab: int = 10, encoder_dim: int = 8) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, encoder_dim), nn.LayerNorm(encoder_dim))
        self.source_unigram_decoder = nn.ModuleDict({"proj": nn.Linear(8, vocab)})
        self.ctc_target_unigram_decoder = nn.ModuleDict({"proj": nn.Linear(8, vocab)})
        self.target_unigram_decoder = nn.ModuleDict({"fc": nn.Linear(8, 8)})
        self.synthesizer_encoder = nn.ModuleDict({"fc": nn.Linear(8, 8)})
        self.decoder = nn.ModuleDict({"proj": nn.Linear(8, 7)})


def _save(module: nn.Module, path, layout: str = "fairseq") -> None:
    weights = module.state_dict()
    if layout == "fairseq":
        torch.save({"cfg": {"model": {"arch": "echostream_test"}}, "model": weights}, path)
    elif layout == "plain":
        torch.save({"epoch": 3, "model": weights, "optimizer": {}, "loss": 1.5}, path)
    else:
        torch.save(weights, path)


def test_every_group_prefix_is_mapped_once():
    prefixes = [p for group in PARAMETER_GROUPS.values() for p in group]
    assert len(prefixes) == len(set(prefixes)) == 6
    assert group_of("decoder.proj.weight") == "unit_decoder"
    assert group_of("target_unigram_decoder.fc.weight") == "mt_decoder"
    assert group_of("criterion.something") is None


@pytest.mark.parametrize("layout", ["fairseq", "plain", "state_dict"])
def test_decoders_only_loads_decoders_and_leaves_encoder(tmp_path, layout):
    torch.manual_seed(0)
    source, target = _FiveHeads(), _FiveHeads()
    path = tmp_path / "ckpt.pt"
    _save(source, path, layout)
    encoder_before = target.encoder[0].weight.clone()
    report = load_partial_checkpoint(target, path, load_encoder=False, load_decoders=True)
    assert report.layout == layout
    # 4 decoder groups: 2 + 2 + 2 + (2 + 2) tensors; the encoder's 4 tensors stay initialised
    assert report.loaded == 10
    assert report.skipped == 0
    assert report.left_initialised == 4
    assert torch.equal(target.encoder[0].weight, encoder_before)
    assert torch.equal(target.decoder.proj.weight, source.decoder.proj.weight)


def test_shape_mismatch_and_missing_are_reported_per_group(tmp_path):
    torch.manual_seed(0)
    source = _FiveHeads(vocab=12)
    del source.target_unigram_decoder["fc"]  # the file lacks the MT decoder entirely
    path = tmp_path / "other_vocab.pt"
    _save(source, path)
    target = _FiveHeads(vocab=10)
    report = load_partial_checkpoint(target, path, load_encoder=True, load_decoders=True)
    asr = report.groups["asr_ctc_decoder"]
    assert len(asr.shape_mismatch) == 2 and len(asr.loaded) == 0
    assert asr.shape_mismatch[0][1:] in (((12, 8), (10, 8)), ((12,), (10,)))
    assert len(report.groups["mt_decoder"].missing) == 2
    assert len(report.groups["encoder"].loaded) == 4
    assert len(report.groups["unit_decoder"].loaded) == 4
    assert report.loaded == 8
    assert report.skipped == 4  # two CTC heads x (weight, bias)
    assert report.left_initialised == 6  # 4 shape-mismatched + 2 missing
    assert any("shape" in line and "[12, 8]" in line for line in report.lines())


def test_plain_layout_upgrades_to_fairseq_layout():
    model = _FiveHeads()
    upgraded = upgrade_plain_checkpoint({"epoch": 4, "model": model.state_dict(),
                                         "optimizer": {"s": 1}, "loss": torch.tensor(2.5)})
    assert upgraded["extra_state"]["epoch"] == 4
    assert upgraded["optimizer_history"][-1]["lr_scheduler_state"]["best"] == pytest.approx(2.5)
    assert upgraded["last_optimizer_state"] == {"s": 1}
    assert set(upgraded["model"]) == set(model.state_dict())


def test_unknown_group_and_bad_files_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown parameter groups"):
        load_partial_checkpoint(_FiveHeads(), tmp_path / "x.pt", groups=["encoder", "decoders"])
    with pytest.raises(ValueError, match="vocoder is a separate file"):
        load_partial_checkpoint(_FiveHeads(), tmp_path / "x.pt", groups=["vocoder"])
    with pytest.raises(CheckpointLoadError, match="no such file"):
        read_model_state(tmp_path / "absent.pt")
    not_weights = tmp_path / "list.pt"
    torch.save([1, 2, 3], not_weights)
    with pytest.raises(CheckpointLoadError, match="expected a dict"):
        read_model_state(not_weights)


# ------------------------------------------------------------------ a real echostream model
@pytest.fixture(scope="module")
def tiny_model(tiny_corpus, tmp_path_factory):
    return build_tiny_model(tiny_corpus, tmp_path_factory.mktemp("unused"))


def _group_keys(model: nn.Module, group: str) -> List[str]:
    return [key for key in model.state_dict() if group_of(key) == group]


def test_streamspeech_decoder_names_are_exactly_echostreams(tiny_model):
    _, model = tiny_model
    own_decoders = {k for k in model.state_dict() if group_of(k) != "encoder"}
    theirs = {k for k in STREAMSPEECH_KEYS if not k.startswith("encoder.")}
    assert own_decoders == theirs
    assert (is_streamspeech_state(STREAMSPEECH_KEYS)
            and not is_streamspeech_state(model.state_dict()))


def test_streamspeech_checkpoint_loads_decoders_and_reports_its_conformer_encoder(tiny_model,
                                                                                  tmp_path):
    _, model = tiny_model
    model = copy.deepcopy(model)
    state = streamspeech_state(model)
    path = tmp_path / "streamspeech.pt"
    save_streamspeech(state, path)
    encoder_before = {k: v.clone() for k, v in model.state_dict().items()
                      if k.startswith("encoder.")}
    report = load_partial_checkpoint(model, path, load_encoder=True, load_decoders=True)
    assert (report.layout, report.arch) == ("streamspeech", "streamspeech")
    for group in DECODER_GROUPS:
        result = report.groups[group]
        assert len(result.loaded) == len(_group_keys(model, group)) > 0, group
        assert not (result.shape_mismatch or result.missing or result.unexpected), group
    encoder = report.groups["encoder"]
    assert encoder.loaded == [] and "Conformer" in encoder.note
    assert len(encoder.missing) == len(encoder_before)
    assert len(encoder.unexpected) == sum(k.startswith("encoder.") for k in STREAMSPEECH_KEYS)
    assert report.left_initialised == len(encoder_before)
    conformer = sum(k.startswith("encoder.") for k in STREAMSPEECH_KEYS)
    assert report.unused == conformer and f"not used from the file {conformer}" in report.lines()[0]
    # decoders only: the Conformer is not requested, and the summary still says it went unused
    decoders_only = load_partial_checkpoint(copy.deepcopy(tiny_model[1]), path,
                                            load_encoder=False, load_decoders=True)
    assert decoders_only.skipped == 0 and decoders_only.unused == conformer
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in encoder_before.items())
    assert torch.equal(after["target_unigram_decoder.layers.0.fc1.weight"],
                       state["target_unigram_decoder.layers.0.fc1.weight"])


def test_other_vocabularies_are_reported_per_group_not_a_crash(tiny_model, tmp_path):
    _, model = tiny_model
    model = copy.deepcopy(model)
    resize = {k: rows for k, rows in RELEASED_VOCABULARY.items()
              if k.startswith(("source_unigram", "decoder."))}
    state = streamspeech_state(model, resize)
    path = tmp_path / "streamspeech_other_vocab.pt"
    save_streamspeech(state, path)
    report = load_partial_checkpoint(model, path)
    assert len(report.groups["asr_ctc_decoder"].shape_mismatch) == 2
    assert len(report.groups["unit_decoder"].shape_mismatch) == 2
    assert report.groups["st_ctc_decoder"].loadable and report.groups["mt_decoder"].loadable
    assert any("[6000, 32] in the checkpoint" in line for line in report.lines())
    assert vocabulary_sizes(state)["units"] == 1005
    assert (vocabulary_sizes(model.state_dict())["units"]
            == model.decoder.embed_tokens.weight.shape[0])


def test_fairseq_loads_a_streamspeech_checkpoint_through_the_upgrade_hook(tiny_model):
    cfg, model = tiny_model
    model = copy.deepcopy(model)
    resize = {k: rows for k, rows in RELEASED_VOCABULARY.items() if k.startswith("source_unigram")}
    state = streamspeech_state(model, resize)
    asr_before = model.source_unigram_decoder.proj.weight.clone()
    encoder_before = model.encoder.linear.weight.clone()
    # what --finetune-from-model does
    model.load_state_dict(dict(state), strict=True, model_cfg=cfg.model)
    assert torch.equal(model.encoder.linear.weight, encoder_before)  # Conformer: re-initialised
    assert torch.equal(model.source_unigram_decoder.proj.weight, asr_before)  # other vocab: kept
    assert torch.equal(model.decoder.layers[0].fc1.weight, state["decoder.layers.0.fc1.weight"])


def test_fairseq_loader_upgrades_a_plain_checkpoint(tmp_path):
    from fairseq import checkpoint_utils

    install()  # idempotent; the package import does it too
    path = tmp_path / "plain.pt"
    torch.save({"epoch": 3, "model": _FiveHeads().state_dict(), "optimizer": {}, "loss": 1.5}, path)
    state = checkpoint_utils.load_checkpoint_to_cpu(str(path))
    assert state["extra_state"]["train_iterator"]["epoch"] == 3
    assert state["optimizer_history"][-1]["num_updates"] == 0
    assert set(state["model"]) == set(_FiveHeads().state_dict())


def test_bad_paths_get_one_line_errors_naming_the_path(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n")
    cases = {tmp_path / "absent.pt": "no such file", text: "not a torch checkpoint",
             tmp_path: "is a directory"}
    for path, reason in cases.items():
        with pytest.raises(CheckpointLoadError) as caught:
            load_partial_checkpoint(_FiveHeads(), path)
        message = str(caught.value)
        assert reason in message and str(path) in message and "\n" not in message


def test_stale_temporaries_of_a_killed_save_are_removed_and_nothing_else(tmp_path):
    from echostream_fairseq.checkpoints import remove_stale_temporaries

    kept = [tmp_path / name for name in ("checkpoint_last.pt", "notes.tmp", "checkpoint1.pt")]
    stale = [tmp_path / name for name in ("checkpoint_last.pt.tmp", ".checkpoint_best.pt.tmp-4242")]
    for path in kept + stale:
        path.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == sorted(stale)
    assert all(path.exists() for path in kept) and not any(path.exists() for path in stale)
    assert remove_stale_temporaries(tmp_path / "absent") == []
