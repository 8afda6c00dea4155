"""Training restarts inside fairseq's own loop: per-group learning rates, freezing, recipe flags.

* :func:`tag_parameter_groups` marks every model parameter with its seed group
  (``p.param_group``, the attribute fairseq's composite and FP16 optimizers already use);
  ``EchoStreamModel.build_model`` calls it.
* ``--optimizer echostream_adam`` is fairseq's Adam with one parameter group per seed group:
  ``--encoder-lr``/``--decoder-lr`` scale the lr scheduler's curve per group (the scale survives
  every ``set_lr``), and ``--freeze-decoders-updates N`` trains only the encoder for the first N
  updates (decoder parameters get no gradient and no optimizer state), then everything.
* :func:`fairseq_args_from_config` turns a ``configs/*.yaml`` recipe (fairseq's hydra layout) into
  the ``fairseq-train`` command line that ``scripts/train.py`` runs through fairseq's ``main``.

Why freezing lives in the optimizer: fairseq's trainer builds its optimizer from the parameters
with ``requires_grad`` set, and rebuilds it on resume. Frozen parameters therefore keep
``requires_grad=True`` between updates (the optimizer always holds every parameter, so a run
resumed mid-freeze restores the same groups) and are switched off only from ``zero_grad()`` to
``step()`` of each update, which is when autograd records the graph.
"""


import json
import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import yaml
from fairseq.logging import metrics
from fairseq.optim import register_optimizer
from fairseq.optim.adam import FairseqAdam, FairseqAdamConfig
from torch import nn

from echostream_fairseq.checkpoints import DECODER_GROUPS, ENCODER_GROUPS, PARAMETER_GROUPS, group_of

__all__ = [
    "EchoStreamAdam",
    "EchoStreamAdamConfig",
    "OTHER_GROUP",
    "RecipeRun",
    "build_task_and_model",
    "fairseq_args_from_config",
    "load_recipe",
    "parse_fairseq_args",
    "tag_parameter_groups",
]

logger = logging.getLogger(__name__)

OTHER_GROUP = "other"  # parameters outside the six StreamSpeech prefixes (none in echostream)
_STATE_KEY = "echostream"  # our entry in the optimizer state dict
# fairseq's hydra sections whose ``_name`` is the registry choice, and the flag that selects it.
_CHOICE_FLAGS: Dict[str, str] = {
    "task": "--task", "criterion": "--criterion", "model": "--arch",
    "optimizer": "--optimizer", "lr_scheduler": "--lr-scheduler",
}
_SECTIONS: Tuple[str, ...] = (
    "common", "task", "criterion", "model", "dataset", "optimization", "optimizer", "lr_scheduler",
    "checkpoint", "distributed_training",
)


def tag_parameter_groups(model: nn.Module) -> Dict[str, int]:
    """Sets ``p.param_group`` to the seed group of every parameter (``other`` if none).

    Returns:
        Parameter count per group (tied parameters counted once).
    """
    counts: Dict[str, int] = {}
    for name, param in model.named_parameters():
        group = group_of(name) or OTHER_GROUP
        param.param_group = group
        counts[group] = counts.get(group, 0) + 1
    return counts


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
                raise ValueError(f"--{option.replace('_', '-')} and --lr must be positive, got {value} and {base}")
            scales.update({name: value / base for name in names})
        return scales

    def _group_params(self, cfg: EchoStreamAdamConfig, params: List[Any]) -> List[Dict[str, Any]]:
        """One torch param group per seed group, by the ``param_group`` tag of each parameter."""
        by_group: Dict[str, List[Any]] = {name: [] for name in (*PARAMETER_GROUPS, OTHER_GROUP)}
        for param in params:
            by_group.setdefault(getattr(param, "param_group", OTHER_GROUP), []).append(param)
        needs_tags = cfg.encoder_lr is not None or cfg.decoder_lr is not None or cfg.freeze_decoders_updates > 0
        if needs_tags and len(by_group[OTHER_GROUP]) == len(params):
            raise ValueError(
                "echostream_adam: no parameter carries a seed-group tag, so --encoder-lr/--decoder-lr/"
                "--freeze-decoders-updates cannot apply (the model must call "
                "echostream_fairseq.training.tag_parameter_groups; with --fp16 add --fp16-no-flatten-grads "
                "or use --memory-efficient-fp16)"
            )
        base = _first(cfg.lr)
        return [{"params": ps, "name": name, "lr_scale": self._scales[name], "lr": base * self._scales[name]}
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
            raise RuntimeError("--freeze-decoders-updates needs fp32 training or --memory-efficient-fp16: "
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
            raise ValueError(f"the checkpoint's optimizer has parameter groups {saved}, echostream_adam "
                             f"built {built}: resume the same model, or pass --reset-optimizer")
        super().load_state_dict(state, optimizer_overrides)
        for group in self.param_groups:
            if group["lr_scale"] != self._scales[group["name"]]:
                logger.info("group %s: lr scale %g from the checkpoint replaced by %g from the options",
                            group["name"], group["lr_scale"], self._scales[group["name"]])
            group["lr_scale"] = self._scales[group["name"]]
        if ours is None:
            logger.warning("optimizer state has no echostream update count: freeze counted from 0")
        self._num_updates = int(ours["num_updates"]) if ours else 0


# ---------------------------------------------------------------------------------- recipes
# (no "from __future__ import annotations" in this module: fairseq reads dataclass field types)
def load_recipe(path: Path) -> Dict[str, Dict[str, Any]]:
    """Reads a ``configs/*.yaml`` recipe (fairseq's hydra sections) into plain dicts.

    Raises:
        ValueError: the file is missing, not YAML, or has a section that is not a mapping.
    """
    if not path.is_file():
        raise ValueError(f"config {path}: no such file")
    try:
        recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"config {path}: not valid YAML ({error})") from error
    if not isinstance(recipe, dict):
        raise ValueError(f"config {path}: expected sections such as 'task:' and 'model:'")
    for section, values in recipe.items():
        if not isinstance(values, dict):
            raise ValueError(f"config {path}: section {section!r} must be a mapping")
    return recipe


def _flag_values(key: str, value: Any) -> List[str]:
    """``--key value`` for one recipe field (booleans as bare flags, lists comma-joined)."""
    flag = "--" + key.replace("_", "-")
    if value is None or value is False or value == "":
        return []
    if value is True:
        return [flag]
    if isinstance(value, (list, tuple)):
        return [flag, ",".join(str(v) for v in value)]
    return [flag, str(value)]


def fairseq_args_from_config(
    recipe: Mapping[str, Mapping[str, Any]], overrides: Mapping[str, Mapping[str, Any]]
) -> List[str]:
    """The ``fairseq-train`` argument list for a recipe, with ``overrides`` applied per section.

    ``task.data`` becomes the positional data argument, each section's ``_name`` its registry
    flag (``--task``, ``--arch``, ...), and the hydra-only ``task.task`` key is dropped.

    Raises:
        ValueError: a field is still ``???`` (hydra's "must be given") after the overrides.
    """
    merged: Dict[str, Dict[str, Any]] = {name: dict(recipe.get(name) or {}) for name in _SECTIONS}
    for section, values in overrides.items():
        merged.setdefault(section, {}).update(values)
    data = merged["task"].pop("data", None)
    merged["task"].pop("task", None)
    args: List[str] = []
    for section, values in merged.items():
        for key, value in values.items():
            if value == "???":
                raise ValueError(f"config field {section}.{key} is required (???) and was not given")
            if key == "_name":
                args += [_CHOICE_FLAGS[section], str(value)] if section in _CHOICE_FLAGS else []
            else:
                args += _flag_values(key, value)
    if data in (None, "???"):
        raise ValueError("config field task.data is required: pass the manifests' folder")
    return [str(data), *args]


@dataclass
class RecipeRun:
    """What ``scripts/train.py`` and ``scripts/restart_advisor.py`` share: recipe + data + run dir."""

    config: Path
    train_manifest: Path
    dev_manifest: Path
    save_dir: Optional[Path] = None
    num_workers: Optional[int] = None
    batch_size: Optional[int] = None
    encoder_lr: Optional[float] = None
    decoder_lr: Optional[float] = None
    freeze_decoders_updates: int = 0
    time_budget_minutes: Optional[float] = None
    device: Optional[str] = None  # "cpu" or "cuda"; None keeps the recipe's common.cpu

    def data_layout(self) -> Tuple[Path, str, str]:
        """``(data_dir, train_subset, valid_subset)``: fairseq reads ``{data_dir}/{subset}.tsv``.

        Raises:
            ValueError: a manifest is missing, not a ``.tsv``, or the two sit in different folders.
        """
        for manifest in (self.train_manifest, self.dev_manifest):
            if manifest.suffix != ".tsv":
                raise ValueError(f"manifest {manifest}: expected a .tsv file")
            if not manifest.is_file():
                raise ValueError(f"manifest {manifest}: no such file (build the corpus with scripts/prepare_mini.py)")
        data_dir = self.train_manifest.resolve().parent
        if self.dev_manifest.resolve().parent != data_dir:
            raise ValueError(f"manifests {self.train_manifest} and {self.dev_manifest} must share one folder: "
                             "fairseq reads the YAMLs and every split from the data folder")
        return data_dir, self.train_manifest.name[: -len(".tsv")], self.dev_manifest.name[: -len(".tsv")]

    def resolved_save_dir(self, recipe: Mapping[str, Mapping[str, Any]]) -> Path:
        """``--save-dir``, else the recipe's ``checkpoint.save_dir``."""
        if self.save_dir is not None:
            return self.save_dir
        return Path(str((recipe.get("checkpoint") or {}).get("save_dir", "checkpoints")))

    def fairseq_argv(self) -> List[str]:
        """The ``fairseq-train`` arguments for this run (recipe, then the run's overrides).

        The recipe's ``adam`` becomes ``echostream_adam`` (the same update when no group option
        is set), so every run can be resumed with or without the restart options. With
        ``--num-workers 0`` the prefetch thread is off, which makes a resumed run draw exactly the
        augmentation an uninterrupted one draws.
        """
        recipe = load_recipe(self.config)
        data_dir, train_subset, valid_subset = self.data_layout()
        dataset = dict(recipe.get("dataset") or {})
        workers = self.num_workers if self.num_workers is not None else int(dataset.get("num_workers", 0))
        common: Dict[str, Any] = {"user_dir": str(Path(__file__).resolve().parent)}
        if self.device is not None:
            if self.device not in ("cpu", "cuda"):
                raise ValueError(f"device {self.device!r}: expected 'cpu' or 'cuda'")
            common["cpu"] = self.device == "cpu"
        overrides: Dict[str, Dict[str, Any]] = {
            "common": common,
            "task": {"data": str(data_dir), **_code_size(data_dir)},
            "dataset": {"train_subset": train_subset, "valid_subset": valid_subset, "num_workers": workers,
                        **({"data_buffer_size": 0} if workers == 0 else {}),
                        **({"batch_size": self.batch_size} if self.batch_size else {})},
            "checkpoint": {"save_dir": str(self.resolved_save_dir(recipe))},
            "optimization": ({"stop_time_hours": self.time_budget_minutes / 60.0}
                             if self.time_budget_minutes else {}),
        }
        optimizer = dict(recipe.get("optimizer") or {"_name": "adam"})
        if optimizer.get("_name") in ("adam", "echostream_adam"):
            overrides["optimizer"] = {"_name": "echostream_adam", "encoder_lr": self.encoder_lr,
                                      "decoder_lr": self.decoder_lr,
                                      "freeze_decoders_updates": self.freeze_decoders_updates or None}
        elif self.encoder_lr or self.decoder_lr or self.freeze_decoders_updates:
            raise ValueError(f"config {self.config}: --encoder-lr/--decoder-lr/--freeze-decoders-updates "
                             f"need optimizer adam, the config has {optimizer.get('_name')!r}")
        return fairseq_args_from_config(recipe, overrides)


def _code_size(data_dir: Path) -> Dict[str, int]:
    """``target_code_size`` from the corpus report (K of the unit k-means), when there is one."""
    report = data_dir / "report.json"
    if not report.is_file():
        return {}
    units = json.loads(report.read_text(encoding="utf-8")).get("units") or {}
    return {"target_code_size": int(units["num_units"])} if "num_units" in units else {}


def parse_fairseq_args(argv: Sequence[str]) -> Any:
    """fairseq-train's own parsing of ``argv`` (imports ``--user-dir``), as an omegaconf config."""
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    parser = options.get_training_parser()
    return convert_namespace_to_omegaconf(options.parse_args_and_arch(parser, list(argv)))


def build_task_and_model(argv: Sequence[str]) -> Tuple[Any, Any, nn.Module]:
    """``(cfg, task, model)`` built exactly as fairseq-train's ``main`` builds them (same seeding).

    The model's initial values therefore equal those of the run that ``argv`` starts.
    """
    import numpy as np
    from fairseq import tasks, utils

    cfg = parse_fairseq_args(argv)
    utils.import_user_module(cfg.common)
    np.random.seed(cfg.common.seed)
    utils.set_torch_seed(cfg.common.seed)
    task = tasks.setup_task(cfg.task)
    return cfg, task, task.build_model(cfg.model)
