"""Training recipes for fairseq's own loop: ``configs/*.yaml`` -> the ``fairseq-train``
command line.

* :func:`fairseq_args_from_config` turns a ``configs/*.yaml`` recipe (fairseq's hydra layout) into
  the ``fairseq-train`` command line that ``scripts/train.py`` runs through fairseq's ``main``;
  :class:`RecipeRun` adds the run's data, save dir and restart options.
* Per-group learning rates and freezing (``--optimizer echostream_adam``,
  :func:`tag_parameter_groups`) live in :mod:`echostream_fairseq.optim`; they are re-exported
  here, where they used to be.
"""

# (no "from __future__ import annotations" in this module: fairseq reads dataclass field types)
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml
from torch import nn

from echostream_fairseq.errors import ConfigError, InputError
# re-exported: scripts and tests import the optimizer and the tagger from here
from echostream_fairseq.optim import (EchoStreamAdam, EchoStreamAdamConfig, OTHER_GROUP,
                                      tag_parameter_groups)

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

# fairseq's hydra sections whose ``_name`` is the registry choice, and the flag that selects it.
_CHOICE_FLAGS: Dict[str, str] = {
    "task": "--task", "criterion": "--criterion", "model": "--arch",
    "optimizer": "--optimizer", "lr_scheduler": "--lr-scheduler",
}
_SECTIONS: Tuple[str, ...] = (
    "common", "task", "criterion", "model", "dataset", "optimization", "optimizer", "lr_scheduler",
    "checkpoint", "distributed_training",
)


def load_recipe(path: Path) -> Dict[str, Dict[str, Any]]:
    """Reads a ``configs/*.yaml`` recipe (fairseq's hydra sections) into plain dicts.

    Raises:
        ConfigError: the file is missing, not UTF-8, not YAML, or has a section that is not a
            mapping.
    """
    if not path.is_file():
        raise ConfigError(f"config {path}: no such file")
    try:
        recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(f"config {path}: not UTF-8 text (byte {error.object[error.start]:#04x} "
                          f"at offset {error.start})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config {path}: not valid YAML ({error})") from error
    if not isinstance(recipe, dict):
        raise ConfigError(f"config {path}: expected sections such as 'task:' and 'model:'")
    for section, values in recipe.items():
        if not isinstance(values, dict):
            raise ConfigError(f"config {path}: section {section!r} must be a mapping")
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
                raise InputError(
                    f"config field {section}.{key} is required (???) and was not given"
                )
            if key == "_name":
                args += [_CHOICE_FLAGS[section], str(value)] if section in _CHOICE_FLAGS else []
            else:
                args += _flag_values(key, value)
    if data in (None, "???"):
        raise InputError("config field task.data is required: pass the manifests' folder")
    return [str(data), *args]


@dataclass
class RecipeRun:
    """What ``echostream-train`` and ``echostream-advise`` share: recipe + data + run
    dir."""

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
                raise InputError(f"manifest {manifest}: expected a .tsv file")
            if not manifest.is_file():
                raise InputError(f"manifest {manifest}: no such file "
                                 "(build the corpus with scripts/prepare_mini.py)")
        data_dir = self.train_manifest.resolve().parent
        if self.dev_manifest.resolve().parent != data_dir:
            raise InputError(f"manifests {self.train_manifest} and {self.dev_manifest} "
                             "must share one folder: "
                             "fairseq reads the YAMLs and every split from the data folder")
        return (
            data_dir,
            self.train_manifest.name[: -len(".tsv")],
            self.dev_manifest.name[: -len(".tsv")],
        )

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
        workers = (
            self.num_workers if self.num_workers is not None
            else int(dataset.get("num_workers", 0))
        )
        common: Dict[str, Any] = {"user_dir": str(Path(__file__).resolve().parent)}
        if self.device is not None:
            if self.device not in ("cpu", "cuda"):
                raise InputError(f"device {self.device!r}: expected 'cpu' or 'cuda'")
            common["cpu"] = self.device == "cpu"
        overrides: Dict[str, Dict[str, Any]] = {
            "common": common,
            "task": {"data": str(data_dir), **_code_size(data_dir)},
            "dataset": {"train_subset": train_subset, "valid_subset": valid_subset,
                        "num_workers": workers,
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
                                      "freeze_decoders_updates":
                                          self.freeze_decoders_updates or None}
        elif self.encoder_lr or self.decoder_lr or self.freeze_decoders_updates:
            raise InputError(f"config {self.config}: "
                             "--encoder-lr/--decoder-lr/--freeze-decoders-updates "
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
    args = options.parse_args_and_arch(parser, list(argv))
    with warnings.catch_warnings():
        # fairseq 0.12 composes its config through Hydra 1.1-era APIs: six deprecation notices
        # per call that no user of ours can act on
        warnings.simplefilter("ignore", UserWarning)
        return convert_namespace_to_omegaconf(args)


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
