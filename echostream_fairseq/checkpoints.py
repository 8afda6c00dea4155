"""Restarting training after the encoder swap: parameter groups, partial loading, upgrades.

One table, :data:`PARAMETER_GROUPS`, maps the seed's group names to StreamSpeech's state-dict
prefixes; partial loading, the upgrade hook, freezing and per-group learning rates all read it.

Checkpoint layouts understood by :func:`read_model_state`:

* fairseq's (``{"cfg", "model", "optimizer_history", "extra_state", ...}``): EchoStream's own and
  StreamSpeech's (Conformer encoder, arch ``streamspeech``);
* the plain ``{"epoch", "model", "optimizer", "loss"}`` layout of earlier EchoStream scripts,
  which :func:`upgrade_plain_checkpoint` turns into fairseq's layout;
* a bare state dict (``{parameter name: tensor}``).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from echostream_fairseq.checkpoint_safety import CheckpointLoadError, safe_torch_load

__all__ = [
    "DECODER_GROUPS",
    "ENCODER_GROUPS",
    "GroupReport",
    "PARAMETER_GROUPS",
    "PartialLoadReport",
    "group_of",
    "is_plain_checkpoint",
    "load_partial_checkpoint",
    "read_model_state",
    "upgrade_plain_checkpoint",
]

logger = logging.getLogger(__name__)

# The seed's group names -> StreamSpeech's state-dict prefixes (the only copy of this mapping).
PARAMETER_GROUPS: Dict[str, Tuple[str, ...]] = {
    "encoder": ("encoder.",),
    "asr_ctc_decoder": ("source_unigram_decoder.",),
    "st_ctc_decoder": ("ctc_target_unigram_decoder.",),
    "mt_decoder": ("target_unigram_decoder.",),
    "unit_decoder": ("synthesizer_encoder.", "decoder."),
}
ENCODER_GROUPS: Tuple[str, ...] = ("encoder",)
DECODER_GROUPS: Tuple[str, ...] = ("asr_ctc_decoder", "st_ctc_decoder", "mt_decoder", "unit_decoder")
# The vocoder is a separate file (CodeHiFiGAN generator + JSON), never part of a model state dict.
VOCODER_GROUP = "vocoder"
PLAIN_CHECKPOINT_KEYS = frozenset({"epoch", "model", "optimizer", "loss"})


def group_of(key: str) -> Optional[str]:
    """The parameter group a state-dict key belongs to, or ``None`` if it belongs to none."""
    for group, prefixes in PARAMETER_GROUPS.items():
        if key.startswith(prefixes):
            return group
    return None


def is_plain_checkpoint(state: Mapping[str, Any]) -> bool:
    """Whether ``state`` has the ``{epoch, model, optimizer, loss}`` layout of earlier scripts."""
    return PLAIN_CHECKPOINT_KEYS.issubset(state.keys()) and "cfg" not in state


def upgrade_plain_checkpoint(state: Mapping[str, Any]) -> Dict[str, Any]:
    """Turns a plain ``{epoch, model, optimizer, loss}`` checkpoint into fairseq's layout.

    The model weights and optimizer state are kept; the training configuration, which the plain
    layout never stored, is ``None`` (fairseq then takes it from the command line).
    """
    epoch = int(state["epoch"])
    loss = state["loss"]
    loss_value = float(loss.item() if torch.is_tensor(loss) else loss)
    return {
        "args": None,
        "cfg": None,
        "model": state["model"],
        "criterion": None,
        "optimizer_history": [
            {
                "criterion_name": "SpeechToUnit2passCTCASRSTCriterion",
                "optimizer_name": "Adam",
                "lr_scheduler_state": {"best": loss_value},
                "num_updates": int(state.get("num_updates", 0)),
            }
        ],
        "task_state": {},
        "extra_state": {"epoch": epoch, "val_loss": loss_value, "upgraded_from": "plain"},
        "last_optimizer_state": state["optimizer"],
    }


def read_model_state(path: Union[str, Path]) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """Reads the model weights of a checkpoint in any layout this module knows.

    Returns:
        ``(state_dict, info)``: the weights, and ``info`` with ``layout`` (``fairseq``, ``plain``
        or ``state_dict``) and ``arch`` (the training arch when the checkpoint records one).

    Raises:
        CheckpointLoadError: the file is missing, refused, truncated, or holds no model weights.
    """
    state = safe_torch_load(path)
    if not isinstance(state, Mapping):
        raise CheckpointLoadError(path, f"expected a dict, found {type(state).__name__}")
    if "model" in state and isinstance(state["model"], Mapping):
        layout = "plain" if is_plain_checkpoint(state) else "fairseq"
        weights = dict(state["model"])
    elif state and all(torch.is_tensor(value) for value in state.values()):
        layout, weights = "state_dict", dict(state)
    else:
        raise CheckpointLoadError(path, "no model weights (neither a 'model' entry nor a state dict)")
    return weights, {"layout": layout, "arch": _recorded_arch(state)}


def _recorded_arch(state: Mapping[str, Any]) -> Optional[str]:
    for holder in (state.get("cfg") or {}).get("model"), state.get("args"):
        arch = getattr(holder, "arch", None) or (holder.get("arch") if isinstance(holder, Mapping) else None)
        if arch:
            return str(arch)
    return None


@dataclasses.dataclass
class GroupReport:
    """What happened to one parameter group's tensors."""

    requested: bool
    loaded: List[str] = dataclasses.field(default_factory=list)
    shape_mismatch: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]] = dataclasses.field(default_factory=list)
    missing: List[str] = dataclasses.field(default_factory=list)  # in the model, not in the file
    unexpected: List[str] = dataclasses.field(default_factory=list)  # in the file, not in the model

    @property
    def left_initialised(self) -> int:
        """Model tensors of this group that keep their initial values."""
        if not self.requested:
            return len(self.loaded) + len(self.shape_mismatch) + len(self.missing)
        return len(self.shape_mismatch) + len(self.missing)


@dataclasses.dataclass
class PartialLoadReport:
    """Per-group outcome of :func:`load_partial_checkpoint`."""

    path: str
    layout: str
    arch: Optional[str]
    groups: Dict[str, GroupReport]

    @property
    def loaded(self) -> int:
        return sum(len(g.loaded) for g in self.groups.values() if g.requested)

    @property
    def skipped(self) -> int:
        return sum(len(g.shape_mismatch) + len(g.unexpected) for g in self.groups.values() if g.requested)

    @property
    def left_initialised(self) -> int:
        return sum(g.left_initialised for g in self.groups.values())

    def lines(self) -> List[str]:
        """Human-readable report, one line per group and one per skipped tensor kind."""
        out = [f"{self.path} ({self.layout} layout, arch {self.arch or 'unknown'}): "
               f"loaded {self.loaded}, skipped {self.skipped}, left initialised {self.left_initialised}"]
        for name, group in self.groups.items():
            if not group.requested:
                out.append(f"  {name}: not requested, {group.left_initialised} tensors left initialised")
                continue
            out.append(
                f"  {name}: loaded {len(group.loaded)}, skipped for shape {len(group.shape_mismatch)}, "
                f"missing in checkpoint {len(group.missing)}, unexpected {len(group.unexpected)}"
            )
            for key, found, expected in group.shape_mismatch[:3]:
                out.append(f"    shape: {key} is {list(found)} in the checkpoint, {list(expected)} in the model")
            if group.missing[:1]:
                out.append(f"    missing, e.g. {group.missing[0]}")
            if group.unexpected[:1]:
                out.append(f"    unexpected, e.g. {group.unexpected[0]}")
        return out


def _requested_groups(load_encoder: bool, load_decoders: bool, groups: Optional[Iterable[str]]) -> List[str]:
    if groups is not None:
        chosen = list(groups)
        unknown = [g for g in chosen if g not in PARAMETER_GROUPS]
        if VOCODER_GROUP in unknown:
            raise ValueError("the vocoder is a separate file: pass it to the vocoder loader, not here")
        if unknown:
            raise ValueError(f"unknown parameter groups {unknown}; known: {sorted(PARAMETER_GROUPS)}")
        return chosen
    return [*(ENCODER_GROUPS if load_encoder else ()), *(DECODER_GROUPS if load_decoders else ())]


def compare_state(
    model_state: Mapping[str, torch.Tensor], file_state: Mapping[str, torch.Tensor], requested: Sequence[str]
) -> Dict[str, GroupReport]:
    """Sorts every key of both state dicts into its group's report (nothing is loaded here)."""
    reports = {name: GroupReport(requested=name in requested) for name in PARAMETER_GROUPS}
    for key, tensor in model_state.items():
        group = group_of(key)
        if group is None:
            continue
        report = reports[group]
        if key not in file_state:
            report.missing.append(key)
        elif tuple(file_state[key].shape) != tuple(tensor.shape):
            report.shape_mismatch.append((key, tuple(file_state[key].shape), tuple(tensor.shape)))
        else:
            report.loaded.append(key)
    for key in file_state:
        group = group_of(key)
        if group is not None and key not in model_state:
            reports[group].unexpected.append(key)
    return reports


def load_partial_checkpoint(
    model: nn.Module,
    path: Union[str, Path],
    load_encoder: bool = False,
    load_decoders: bool = True,
    groups: Optional[Iterable[str]] = None,
) -> PartialLoadReport:
    """Loads the chosen parameter groups of a checkpoint into ``model``, shape-checked.

    Args:
        model: an ``echostream`` model (any module whose keys use :data:`PARAMETER_GROUPS`).
        path: a checkpoint in fairseq, plain or bare-state-dict layout (StreamSpeech's included).
        load_encoder: load the ``encoder`` group.
        load_decoders: load the four decoder groups (ASR CTC, ST CTC, MT, unit decoder).
        groups: explicit group names; overrides ``load_encoder``/``load_decoders``.

    Returns:
        A :class:`PartialLoadReport` (also logged): tensors loaded, skipped with the reason (shape
        mismatch, unexpected) and left at initialisation, per group.

    Raises:
        CheckpointLoadError: the file cannot be read as a checkpoint.
        ValueError: an unknown group name.
    """
    requested = _requested_groups(load_encoder, load_decoders, groups)
    file_state, info = read_model_state(path)
    model_state = model.state_dict()
    reports = compare_state(model_state, file_state, requested)
    to_load = {key: file_state[key] for name in requested for key in reports[name].loaded}
    with torch.no_grad():
        for key, value in to_load.items():
            model_state[key].copy_(value.to(model_state[key].dtype))
    report = PartialLoadReport(str(path), info["layout"], info["arch"], reports)
    for line in report.lines():
        logger.info(line)
    return report
