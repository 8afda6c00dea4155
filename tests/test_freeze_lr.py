"""Freeze then unfreeze, and two learning rates, inside fairseq's own training loop.

While the decoders are frozen they get no gradient, no Adam state and stay bitwise unchanged;
after the freeze they train. The encoder and decoder groups run at --encoder-lr and --decoder-lr
times the scheduler's curve, read from the optimizer's param groups at every update.
"""

from typing import Any, Dict, List

import pytest
import torch
from torch import nn

from _fairseq_cli import REPO, TINY_MODEL, corpus_dir, load_script
from echostream_fairseq.checkpoints import DECODER_GROUPS
from echostream_fairseq.training import EchoStreamAdam, EchoStreamAdamConfig, tag_parameter_groups

FREEZE = 3
UPDATES = 6
BASE_LR, ENCODER_LR, DECODER_LR = 0.002, 0.004, 0.001  # the recipe's lr, and the two group rates


@pytest.fixture(scope="module")
def recorded_updates(tiny_corpus, tmp_path_factory) -> List[Dict[str, Any]]:
    """Runs scripts/train.py in this process and records the optimizer at every update."""
    data = corpus_dir(tiny_corpus)
    records: List[Dict[str, Any]] = []
    original_step = EchoStreamAdam.step

    def recording_step(self: EchoStreamAdam, *args: Any, **kwargs: Any) -> None:
        decoders = [p for g in self.param_groups if g["name"] in DECODER_GROUPS
                    for p in g["params"]]
        encoder = [p for g in self.param_groups if g["name"] == "encoder" for p in g["params"]]
        before = [p.detach().clone() for p in decoders + encoder]
        record = {
            "frozen": self.decoders_frozen,
            "lrs": self.lrs_by_group(),
            "base_lr": self.get_lr(),
            "decoder_grads": sum(p.grad is not None for p in decoders),
            "encoder_grads": sum(p.grad is not None for p in encoder),
            "decoders": len(decoders),
        }
        original_step(self, *args, **kwargs)
        changed = [not torch.equal(b, p) for b, p in zip(before, decoders + encoder)]
        record["decoders_changed"] = sum(changed[: len(decoders)])
        record["encoder_changed"] = sum(changed[len(decoders):])
        record["decoder_states"] = sum(p in self.optimizer.state for p in decoders)
        record["all_trainable_after"] = all(p.requires_grad for p in decoders + encoder)
        records.append(record)

    torch.set_num_threads(1)
    EchoStreamAdam.step = recording_step
    try:
        code = load_script("train").main([
            "--config", str(REPO / "configs" / "train" / "echostream_mini.yaml"),
            "--train-manifest", str(data / "train_sampled.units.tsv"),
            "--dev-manifest", str(data / "dev_sampled.units.tsv"),
            "--save-dir", str(tmp_path_factory.mktemp("freeze")), "--num-workers", "0",
            "--batch-size", "2",
            "--freeze-decoders-updates", str(FREEZE), "--encoder-lr", str(ENCODER_LR),
            "--decoder-lr", str(DECODER_LR), *TINY_MODEL, "--lr", str(BASE_LR),
            "--warmup-updates", "4",
            "--max-update", str(UPDATES), "--no-save", "--disable-validation", "--dropout", "0.1",
        ])
    finally:
        EchoStreamAdam.step = original_step
    assert code == 0
    assert len(records) == UPDATES
    return records


def test_frozen_decoders_get_no_gradient_no_state_and_stay_bitwise_unchanged(recorded_updates):
    for update, record in enumerate(recorded_updates[:FREEZE]):
        assert record["frozen"], update
        assert record["decoder_grads"] == 0, update
        assert record["decoder_states"] == 0, update
        assert record["decoders_changed"] == 0, update
        assert record["encoder_grads"] > 0 and record["encoder_changed"] > 0, update
        assert record["all_trainable_after"], "requires_grad must be restored between updates"


def test_decoders_train_after_the_freeze(recorded_updates):
    for update, record in enumerate(recorded_updates[FREEZE:], start=FREEZE):
        assert not record["frozen"], update
        assert record["decoder_grads"] == record["decoders"], update
        assert record["decoder_states"] == record["decoders"], update
        assert record["decoders_changed"] > 0.9 * record["decoders"], update


def test_encoder_and_decoders_run_at_their_own_learning_rates_through_the_schedule(
        recorded_updates):
    base_lrs = [record["base_lr"] for record in recorded_updates]
    assert len(set(base_lrs)) == UPDATES, \
        "inverse_sqrt warm-up then decay: the rate changes every update"
    assert max(base_lrs) == pytest.approx(BASE_LR)
    for record in recorded_updates:
        lrs = record["lrs"]
        assert lrs["encoder"] == pytest.approx(record["base_lr"] * ENCODER_LR / BASE_LR, rel=1e-9)
        for group in DECODER_GROUPS:
            assert lrs[group] == pytest.approx(record["base_lr"] * DECODER_LR / BASE_LR, rel=1e-9)
    peak = max(recorded_updates, key=lambda record: record["base_lr"])["lrs"]
    assert (peak["encoder"] == pytest.approx(ENCODER_LR)
            and peak["mt_decoder"] == pytest.approx(DECODER_LR))


class _Tagged(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(3, 3)
        self.target_unigram_decoder = nn.Linear(3, 3)
        self.decoder = nn.Linear(3, 2)


def _optimizer(model: nn.Module, **options: Any) -> EchoStreamAdam:
    cfg = EchoStreamAdamConfig(lr=[BASE_LR], tpu=False, adam_betas="(0.9, 0.98)", **options)
    return EchoStreamAdam(cfg, list(model.parameters()))


def test_optimizer_state_round_trip_keeps_update_count_and_groups():
    model = _Tagged()
    assert tag_parameter_groups(model) == {"encoder": 2, "mt_decoder": 2, "unit_decoder": 2}
    optimizer = _optimizer(model, freeze_decoders_updates=2, encoder_lr=0.004)
    for _ in range(2):
        optimizer.zero_grad()
        model.decoder(
            model.target_unigram_decoder(model.encoder(torch.ones(1, 3)))).sum().backward()
        optimizer.step()
    assert not optimizer.decoders_frozen
    state = optimizer.state_dict()
    assert state["echostream"] == {"num_updates": 2}
    assert [g["name"] for g in state["param_groups"]] == ["encoder", "mt_decoder", "unit_decoder"]
    restored = _optimizer(model, freeze_decoders_updates=2, encoder_lr=0.004)
    assert restored.decoders_frozen
    restored.load_state_dict(state)
    assert not restored.decoders_frozen
    restored.set_lr(0.001)  # what fairseq's lr scheduler does: the scale survives
    assert restored.lrs_by_group() == {"encoder": 0.002, "mt_decoder": 0.001, "unit_decoder": 0.001}
    assert restored.get_lr() == pytest.approx(0.001)


def test_untagged_model_and_mismatched_state_get_clear_errors():
    with pytest.raises(ValueError, match="tag_parameter_groups"):
        _optimizer(nn.Linear(2, 2), decoder_lr=0.001)
    tagged = _Tagged()
    tag_parameter_groups(tagged)
    other = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="--reset-optimizer"):
        _optimizer(tagged).load_state_dict(_optimizer(other).state_dict())
