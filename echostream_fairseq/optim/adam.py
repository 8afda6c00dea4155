"""``--optimizer echostream_adam``: fairseq's Adam with one parameter group per seed group.

``--encoder-lr``/``--decoder-lr`` scale the lr scheduler's curve per group (the scale survives
every ``set_lr``), and ``--freeze-decoders-updates N`` trains only the encoder for the first N
updates (decoder parameters get no gradient and no optimizer state), then everything.

Why freezing lives in the optimizer: fairseq's trainer builds its optimizer from the parameters
with ``requires_grad`` set, and rebuilds it on resume. Frozen parameters therefore keep
``requires_grad=True`` between updates (the optimizer always holds every parameter, so a run
resumed mid-freeze restores the same groups) and are switched off only from ``zero_grad()`` to
``step()`` of each update, which is when autograd records the graph.
"""

# (no "from __future__ import annotations" in this module: fairseq reads dataclass field types)
import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
from fairseq.logging import metrics
from fairseq.optim import register_optimizer
from fairseq.optim.adam import FairseqAdam, FairseqAdamConfig

from echostream_fairseq.checkpoints import DECODER_GROUPS, ENCODER_GROUPS, PARAMETER_GROUPS
from echostream_fairseq.optim.groups import OTHER_GROUP

__all__ = ["EchoStreamAdam", "EchoStreamAdamConfig"]

logger = logging.getLogger(__name__)

_STATE_KEY = "echostream"  # our entry in the optimizer state dict


@dataclass
class EchoStreamAdamConfig(FairseqAdamConfig):
    encoder_lr: Optional[float] = field(
        default=None,
        metadata={"help": "peak learning rate of the speech encoder; the --lr-scheduler curve is "
                          "scaled by encoder-lr / lr for it (default: --lr)"},
    )
    decoder_lr: Optional[float] = field(
        default=None,
        metadata={"help": "peak learning rate of the ASR/ST CTC heads, MT decoder and T2U + unit "
                          "decoder; the --lr-scheduler curve is scaled by decoder-lr / lr for them "
                          "(default: --lr)"},
    )
    freeze_decoders_updates: int = field(
        default=0,
        metadata={"help": "train only the encoder for the first N updates of this optimizer "
                          "(decoders get no gradient and no optimizer state), then all groups"},
    )


def _first(lr: Any) -> float:
    return float(lr[0] if isinstance(lr, Collection) else lr)


@register_optimizer("echostream_adam", dataclass=EchoStreamAdamConfig)
class EchoStreamAdam(FairseqAdam):
    """fairseq's Adam with per-group learning-rate scales and a decoder freeze.

    Param groups (in :data:`PARAMETER_GROUPS` order, empty ones left out) carry ``name`` and
    ``lr_scale``; both are saved in the optimizer state, as is the update count that drives the
    freeze. ``get_lr`` returns the scheduler's (unscaled) rate so schedulers that read it back
    (``reduce_lr_on_plateau``) do not compound the scale.
    """

    def __init__(self, cfg: EchoStreamAdamConfig, params: Sequence[Any]) -> None:
        params = [p for p in params]
        self._scales = self._group_scales(cfg)
        groups = self._group_params(cfg, params)
        super().__init__(cfg, groups)
        self._num_updates = 0
        self._frozen: List[torch.Tensor] = []
        summary = ", ".join(f"{g['name']} x{g['lr_scale']:g} ({len(g['params'])} tensors)"
                            for g in self.param_groups)
        logger.info("echostream_adam groups: %s; decoders frozen for the first %d updates",
                    summary, cfg.freeze_decoders_updates)

    # ------------------------------------------------------------------------------ groups
    @staticmethod
    def _group_scales(cfg: EchoStreamAdamConfig) -> Dict[str, float]:
        base = _first(cfg.lr)
        scales = {name: 1.0 for name in (*PARAMETER_GROUPS, OTHER_GROUP)}
        for option, names in (("encoder_lr", ENCODER_GROUPS), ("decoder_lr", DECODER_GROUPS)):
            value = getattr(cfg, option)  # dataclass field, always present
            if value is None:
                continue
            if value <= 0 or base <= 0:
                raise ValueError(f"--{option.replace('_', '-')} and --lr must be positive, "
                                 f"got {value} and {base}")
            scales.update({name: value / base for name in names})
        return scales

    def _group_params(self, cfg: EchoStreamAdamConfig, params: List[Any]) -> List[Dict[str, Any]]:
        """One torch param group per seed group, by the ``param_group`` tag of each parameter."""
        by_group: Dict[str, List[Any]] = {name: [] for name in (*PARAMETER_GROUPS, OTHER_GROUP)}
        for param in params:
            by_group.setdefault(getattr(param, "param_group", OTHER_GROUP), []).append(param)
        needs_tags = (
            cfg.encoder_lr is not None
            or cfg.decoder_lr is not None
            or cfg.freeze_decoders_updates > 0
        )
        if needs_tags and len(by_group[OTHER_GROUP]) == len(params):
            raise ValueError(
                "echostream_adam: no parameter carries a seed-group tag, so "
                "--encoder-lr/--decoder-lr/--freeze-decoders-updates cannot apply "
                "(the model must call echostream_fairseq.optim.tag_parameter_groups; "
                "with --fp16 add --fp16-no-flatten-grads or use --memory-efficient-fp16)"
            )
        base = _first(cfg.lr)
        return [{"params": ps, "name": name, "lr_scale": self._scales[name],
                 "lr": base * self._scales[name]}
                for name, ps in by_group.items() if ps]

    def lrs_by_group(self) -> Dict[str, float]:
        """The learning rate each group runs at now."""
        return {group["name"]: float(group["lr"]) for group in self.param_groups}

    def get_lr(self) -> float:
        group = self.param_groups[0]
        return float(group["lr"]) / float(group["lr_scale"])

    def set_lr(self, lr: float) -> None:
        for group in self.param_groups:
            group["lr"] = lr * group["lr_scale"]

    # ------------------------------------------------------------------------------ freezing
    @property
    def decoders_frozen(self) -> bool:
        """Whether the next update trains the encoder only."""
        return self._num_updates < self.cfg.freeze_decoders_updates

    def _set_frozen(self, frozen: bool) -> None:
        for param in self._frozen:
            param.requires_grad_(True)
        self._frozen = []
        if not frozen:
            return
        for group in self.param_groups:
            if group["name"] in DECODER_GROUPS:
                for param in group["params"]:
                    if param.requires_grad:
                        param.requires_grad_(False)
                        self._frozen.append(param)

    def zero_grad(self) -> None:
        """Clears gradients; during the freeze, also stops autograd from tracking the decoders.

        fairseq's trainer calls this at the start of every update, before the forward pass.
        """
        super().zero_grad()
        self._set_frozen(self.decoders_frozen)

    def step(self, closure: Any = None, scale: float = 1.0, groups: Any = None) -> None:
        """One Adam update; frozen parameters have no gradient, so Adam skips them entirely."""
        if self.decoders_frozen and not self._frozen:
            # fairseq's FP16Optimizer keeps its own fp32 copies and never calls our zero_grad
            raise RuntimeError("--freeze-decoders-updates needs fp32 training or "
                               "--memory-efficient-fp16: "
                               "the decoders were not frozen before this update")
        super().step(closure, scale=scale, groups=groups)
        self._num_updates += 1
        was_frozen = bool(self._frozen)
        self._set_frozen(False)  # between updates every parameter is trainable (see module doc)
        self._log_groups(was_frozen)

    def _log_groups(self, was_frozen: bool) -> None:
        if self.cfg.freeze_decoders_updates > 0:
            metrics.log_scalar("decoders_frozen", float(was_frozen), weight=0, priority=310)
        if self.cfg.encoder_lr is not None or self.cfg.decoder_lr is not None:
            lrs = self.lrs_by_group()
            for label, names in (("encoder", ENCODER_GROUPS), ("decoder", DECODER_GROUPS)):
                present = [lrs[name] for name in names if name in lrs]
                if present:
                    metrics.log_scalar(f"lr_{label}", present[0], weight=0, priority=310, round=8)

    # ------------------------------------------------------------------------------ state
    def state_dict(self) -> Dict[str, Any]:
        state = dict(super().state_dict())
        state[_STATE_KEY] = {"num_updates": self._num_updates}
        return state

    def load_state_dict(
        self, state_dict: Mapping[str, Any], optimizer_overrides: Optional[Dict[str, Any]] = None
    ) -> None:
        """Restores Adam's state and the update count; lr scales come from the current options."""
        state = dict(state_dict)
        ours = state.pop(_STATE_KEY, None)
        saved = [group.get("name") for group in state["param_groups"]]
        built = [group["name"] for group in self.param_groups]
        if saved != built:
            raise ValueError(f"the checkpoint's optimizer has parameter groups {saved}, "
                             "echostream_adam "
                             f"built {built}: resume the same model, or pass --reset-optimizer")
        super().load_state_dict(state, optimizer_overrides)
        for group in self.param_groups:
            if group["lr_scale"] != self._scales[group["name"]]:
                logger.info("group %s: lr scale %g from the checkpoint replaced by %g "
                            "from the options",
                            group["name"], group["lr_scale"], self._scales[group["name"]])
            group["lr_scale"] = self._scales[group["name"]]
        if ours is None:
            logger.warning("optimizer state has no echostream update count: freeze counted from 0")
        self._num_updates = int(ours["num_updates"]) if ours else 0
