"""load_partial_checkpoint: per-group loading and counts; plain-layout upgrade; bad files."""

import pytest
import torch
from torch import nn

from echostream_fairseq.checkpoint_safety import CheckpointLoadError
from echostream_fairseq.checkpoints import (
    PARAMETER_GROUPS,
    group_of,
    load_partial_checkpoint,
    read_model_state,
    upgrade_plain_checkpoint,
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
    upgraded = upgrade_plain_checkpoint({"epoch": 4, "model": model.state_dict(), "optimizer": {"s": 1},
                                         "loss": torch.tensor(2.5)})
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
