"""Restarting training after the encoder swap: parameter groups, partial loading, upgrades.

One table, :data:`PARAMETER_GROUPS`, maps the seed's group names to StreamSpeech's state-dict
prefixes; partial loading, the upgrade hook, freezing and per-group learning rates all read it.

Checkpoint layouts understood by :func:`read_model_state`:

* fairseq's (``{"cfg", "model", "optimizer_history", "extra_state", ...}``): EchoStream's own and
  StreamSpeech's (Conformer encoder, arch ``streamspeech``);
* the plain ``{"epoch", "model", "optimizer", "loss"}`` layout of earlier EchoStream scripts,
  which :func:`upgrade_plain_checkpoint` turns into fairseq's layout;
* a bare state dict (``{parameter name: tensor}``).

:mod:`echostream_fairseq.compat` (run on package import) hooks this module into fairseq's
checkpointing: plain checkpoints are upgraded when fairseq loads them, every checkpoint fairseq
writes (``checkpoint_last.pt`` and ``checkpoint_best.pt`` included) replaces the previous one
atomically, and the training iterator's state carries the Python/NumPy/torch RNG states (
:func:`capture_rng_state`) so a resumed run draws the same data augmentation as an uninterrupted
one. :func:`load_model_and_task` is the one loader of a trained model for decoding.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from echostream_fairseq.checkpoint_safety import CheckpointLoadError, safe_torch_load
from echostream_fairseq.errors import InputError

__all__ = [
    "DECODER_GROUPS",
    "ENCODER_GROUPS",
    "GroupReport",
    "PARAMETER_GROUPS",
    "PartialLoadReport",
    "adapt_streamspeech_state_dict",
    "atomic_torch_save",
    "capture_rng_state",
    "group_of",
    "install",
    "is_plain_checkpoint",
    "is_streamspeech_state",
    "load_model_and_task",
    "load_partial_checkpoint",
    "load_pretrained_groups",
    "plan_partial_load",
    "read_model_state",
    "restore_rng_state",
    "upgrade_plain_checkpoint",
    "vocabulary_sizes",
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
DECODER_GROUPS: Tuple[str, ...] = (
    "asr_ctc_decoder", "st_ctc_decoder", "mt_decoder", "unit_decoder"
)
# The vocoder is a separate file (CodeHiFiGAN generator + JSON), never part of a model state dict.
VOCODER_GROUP = "vocoder"
PLAIN_CHECKPOINT_KEYS = frozenset({"epoch", "model", "optimizer", "loss"})
# StreamSpeech's Conformer encoder (researches/chunk_unity/models/s2t_conformer.py) names its
# layers ``conformer_layers``; EchoStream's Emformer never does, so this prefix tells them apart.
CONFORMER_LAYER_PREFIX = "encoder.conformer_layers."
# Tensors whose first dimension is a vocabulary size (text CTC heads, MT and unit embeddings).
VOCABULARY_KEYS: Dict[str, str] = {
    "asr_spm": "source_unigram_decoder.proj.weight",
    "st_spm": "ctc_target_unigram_decoder.proj.weight",
    "mt_spm": "target_unigram_decoder.embed_tokens.weight",
    "units": "decoder.embed_tokens.weight",
}
RNG_STATE_KEY = "echostream_rng"


def group_of(key: str) -> Optional[str]:
    """The parameter group a state-dict key belongs to, or ``None`` if it belongs to none."""
    for group, prefixes in PARAMETER_GROUPS.items():
        if key.startswith(prefixes):
            return group
    return None


def is_plain_checkpoint(state: Mapping[str, Any]) -> bool:
    """Whether ``state`` has the ``{epoch, model, optimizer, loss}`` layout of earlier scripts."""
    return PLAIN_CHECKPOINT_KEYS.issubset(state.keys()) and "cfg" not in state


def is_streamspeech_state(keys: Iterable[str]) -> bool:
    """Whether a model state dict has StreamSpeech's Conformer encoder (keys or a mapping)."""
    return any(key.startswith(CONFORMER_LAYER_PREFIX) for key in keys)


def upgrade_plain_checkpoint(state: Mapping[str, Any]) -> Dict[str, Any]:
    """Turns a plain ``{epoch, model, optimizer, loss}`` checkpoint into fairseq's layout.

    The model weights and optimizer state are kept; the training configuration, which the plain
    layout never stored, is ``None`` (fairseq then takes it from the command line). The optimizer
    is recorded under a name no fairseq optimizer has, so resuming from it asks for
    ``--reset-optimizer`` instead of loading a torch Adam state into fairseq's Adam.
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
                "optimizer_name": "PlainCheckpointOptimizer",
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
        ``(state_dict, info)``: the weights, and ``info`` with ``layout`` (``fairseq``,
        ``streamspeech``, ``plain`` or ``state_dict``), ``arch`` (the training arch when the
        checkpoint records one) and ``num_updates`` (``None`` when not recorded).

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
        raise CheckpointLoadError(
            path, "no model weights (neither a 'model' entry nor a state dict)"
        )
    if layout == "fairseq" and is_streamspeech_state(weights):
        layout = "streamspeech"
    history = state.get("optimizer_history") or [{}]
    num_updates = history[-1].get("num_updates") if isinstance(history[-1], Mapping) else None
    return weights, {"layout": layout, "arch": _recorded_arch(state), "num_updates": num_updates}


def _recorded_arch(state: Mapping[str, Any]) -> Optional[str]:
    for holder in (state.get("cfg") or {}).get("model"), state.get("args"):
        arch = getattr(holder, "arch", None) or (
            holder.get("arch") if isinstance(holder, Mapping) else None
        )
        if arch:
            return str(arch)
    return None


def vocabulary_sizes(state: Mapping[str, torch.Tensor]) -> Dict[str, int]:
    """Vocabulary sizes a state dict was built for (``asr_spm``, ``st_spm``, ``mt_spm``, ``units``).

    Text sizes include fairseq's 4 specials; ``units`` includes them and the CTC ``<blank>``
    (K + 5). Heads absent from the state dict are left out.
    """
    return {name: int(state[key].shape[0]) for name, key in VOCABULARY_KEYS.items() if key in state}


@dataclasses.dataclass
class GroupReport:
    """What happened to one parameter group's tensors."""

    requested: bool
    loaded: List[str] = dataclasses.field(default_factory=list)
    shape_mismatch: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]] = dataclasses.field(
        default_factory=list
    )
    missing: List[str] = dataclasses.field(default_factory=list)  # in the model, not in the file
    unexpected: List[str] = dataclasses.field(default_factory=list)  # in the file, not in the model
    note: str = ""  # why a requested group was not loaded as a whole (e.g. a Conformer encoder)

    @property
    def left_initialised(self) -> int:
        """Model tensors of this group that keep their initial values."""
        if not self.requested:
            return len(self.loaded) + len(self.shape_mismatch) + len(self.missing)
        return len(self.shape_mismatch) + len(self.missing)

    @property
    def loadable(self) -> bool:
        """Every model tensor of the group has a same-shaped counterpart in the file."""
        return bool(self.loaded) and not self.shape_mismatch and not self.missing and not self.note


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
        return sum(
            len(g.shape_mismatch) + len(g.unexpected) for g in self.groups.values() if g.requested
        )

    @property
    def left_initialised(self) -> int:
        return sum(g.left_initialised for g in self.groups.values())

    @property
    def unused(self) -> int:
        """Tensors of the file that went nowhere: skipped ones and those of groups not
        requested (a StreamSpeech Conformer's, for a decoders-only load)."""
        return sum(len(g.unexpected) + len(g.shape_mismatch) + (0 if g.requested else len(g.loaded))
                   for g in self.groups.values())

    def lines(self) -> List[str]:
        """Human-readable report, one line per group and one per skipped tensor kind."""
        out = [f"{self.path} ({self.layout} layout, arch {self.arch or 'unknown'}): "
               f"loaded {self.loaded}, skipped {self.skipped}, "
               f"left initialised {self.left_initialised}, "
               f"not used from the file {self.unused}"]
        for name, group in self.groups.items():
            if not group.requested:
                out.append(f"  {name}: not requested, "
                           f"{group.left_initialised} tensors left initialised"
                           + (f" ({group.note})" if group.note else ""))
                continue
            out.append(
                f"  {name}: loaded {len(group.loaded)}, "
                f"skipped for shape {len(group.shape_mismatch)}, "
                f"missing in checkpoint {len(group.missing)}, unexpected {len(group.unexpected)}"
                + (f" ({group.note})" if group.note else "")
            )
            for key, found, expected in group.shape_mismatch[:3]:
                out.append(f"    shape: {key} is {list(found)} in the checkpoint, "
                           f"{list(expected)} in the model")
            if group.missing[:1]:
                out.append(f"    missing, e.g. {group.missing[0]}")
            if group.unexpected[:1]:
                out.append(f"    unexpected, e.g. {group.unexpected[0]}")
        return out


def _requested_groups(
    load_encoder: bool, load_decoders: bool, groups: Optional[Iterable[str]]
) -> List[str]:
    if groups is not None:
        chosen = list(groups)
        unknown = [g for g in chosen if g not in PARAMETER_GROUPS]
        if VOCODER_GROUP in unknown:
            raise InputError(
                "the vocoder is a separate file: pass it to the vocoder loader, not here"
            )
        if unknown:
            raise InputError(
                f"unknown parameter groups {unknown}; known: {sorted(PARAMETER_GROUPS)}"
            )
        return chosen
    return [*(ENCODER_GROUPS if load_encoder else ()), *(DECODER_GROUPS if load_decoders else ())]


def compare_state(
    model_state: Mapping[str, torch.Tensor],
    file_state: Mapping[str, torch.Tensor],
    requested: Sequence[str],
) -> Dict[str, GroupReport]:
    """Sorts every key of both state dicts into its group's report (nothing is loaded here).

    A StreamSpeech Conformer encoder is never matched tensor by tensor: some of its keys
    (``encoder.subsample.*``, ``encoder.linear.*``) share names and shapes with the Emformer's
    front end but feed different layers, so the whole group is reported as not loadable.
    """
    reports = {name: GroupReport(requested=name in requested) for name in PARAMETER_GROUPS}
    conformer = is_streamspeech_state(file_state)
    for key, tensor in model_state.items():
        group = group_of(key)
        if group is None:
            continue
        report = reports[group]
        if key not in file_state or (conformer and group == "encoder"):
            report.missing.append(key)
        elif tuple(file_state[key].shape) != tuple(tensor.shape):
            report.shape_mismatch.append((key, tuple(file_state[key].shape), tuple(tensor.shape)))
        else:
            report.loaded.append(key)
    for key in file_state:
        group = group_of(key)
        if group is not None and (key not in model_state or (conformer and group == "encoder")):
            reports[group].unexpected.append(key)
    if conformer:
        reports["encoder"].note = (
            "StreamSpeech Conformer encoder: not loadable into the Emformer, re-initialised"
        )
    return reports


def plan_partial_load(
    model_state: Mapping[str, torch.Tensor],
    path: Union[str, Path],
    load_encoder: bool = False,
    load_decoders: bool = True,
    groups: Optional[Iterable[str]] = None,
) -> Tuple[PartialLoadReport, Dict[str, torch.Tensor]]:
    """What :func:`load_partial_checkpoint` would load, without touching a model.

    Returns:
        The report and the tensors (checkpoint values, keyed like ``model_state``) to copy.
    """
    requested = _requested_groups(load_encoder, load_decoders, groups)
    file_state, info = read_model_state(path)
    reports = compare_state(model_state, file_state, requested)
    to_load = {key: file_state[key] for name in requested for key in reports[name].loaded}
    return PartialLoadReport(str(path), info["layout"], info["arch"], reports), to_load


# fairseq-train's model options and what each loads: (load_encoder, load_decoders)
PRETRAINED_OPTIONS: Dict[str, Tuple[bool, bool]] = {
    "load_pretrained_encoder_from": (True, False),
    "load_pretrained_decoders_from": (False, True),
}


def load_pretrained_groups(model: nn.Module, args: Any) -> None:
    """``--load-pretrained-encoder-from`` / ``--load-pretrained-decoders-from`` for a new model.

    The fairseq-train twins of ``scripts/train.py --init-from --load-encoder/--load-decoders``;
    the task calls this when it builds a model to train, not when it rebuilds one to load a
    checkpoint into.

    Raises:
        CheckpointLoadError: the file cannot be read as a checkpoint.
        ValueError: no tensor of the file fits the model (the logged report says why per group).
    """
    for option, (load_encoder, load_decoders) in PRETRAINED_OPTIONS.items():
        path = getattr(args, option, None)
        if not path:
            continue
        report = load_partial_checkpoint(
            model, path, load_encoder=load_encoder, load_decoders=load_decoders
        )
        if report.loaded == 0:
            raise InputError(f"--{option.replace('_', '-')} {path}: no tensor fits this model "
                             "(see the per-group report above)")


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
        load_encoder: load the ``encoder`` group (never from a StreamSpeech Conformer encoder).
        load_decoders: load the four decoder groups (ASR CTC, ST CTC, MT, unit decoder).
        groups: explicit group names; overrides ``load_encoder``/``load_decoders``.

    Returns:
        A :class:`PartialLoadReport` (also logged): tensors loaded, skipped with the reason (shape
        mismatch, unexpected) and left at initialisation, per group.

    Raises:
        CheckpointLoadError: the file cannot be read as a checkpoint.
        ValueError: an unknown group name.
    """
    model_state = model.state_dict()
    report, to_load = plan_partial_load(model_state, path, load_encoder, load_decoders, groups)
    with torch.no_grad():
        for key, value in to_load.items():
            model_state[key].copy_(value.to(model_state[key].dtype))
    for line in report.lines():
        logger.info(line)
    return report


def adapt_streamspeech_state_dict(
    model: nn.Module, state_dict: Dict[str, torch.Tensor], name: str = ""
) -> Optional[PartialLoadReport]:
    """The model's ``upgrade_state_dict_named`` hook: fits a StreamSpeech checkpoint, in place.

    fairseq loads ``--finetune-from-model``/``--restore-file`` weights strictly. For a StreamSpeech
    checkpoint (Conformer encoder) this replaces the encoder with the model's own initial tensors,
    keeps the model's tensors wherever a decoder tensor is missing or shaped differently (another
    vocabulary), drops keys the model lacks, and logs the per-group report. Any other checkpoint
    is left untouched, so resuming an EchoStream run still fails loudly on a changed architecture.

    Args:
        model: the model being loaded (its current tensors fill the gaps).
        state_dict: the checkpoint's weights, modified in place.
        name: fairseq's module prefix ("" for the whole model).
    Returns:
        The report, or ``None`` when ``state_dict`` is not a StreamSpeech one.
    """
    prefix = f"{name}." if name else ""
    file_state = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not is_streamspeech_state(file_state):
        return None
    model_state = model.state_dict()
    reports = compare_state(model_state, file_state, DECODER_GROUPS)
    for report in reports.values():
        for key in report.unexpected:
            del state_dict[prefix + key]
        for key in [*report.missing, *(k for k, _, _ in report.shape_mismatch)]:
            state_dict[prefix + key] = model_state[key].detach().clone()
    report = PartialLoadReport("StreamSpeech checkpoint", "streamspeech", "streamspeech", reports)
    for line in report.lines():
        logger.info(line)
    return report


# ------------------------------------------------------------------------------------- resume
def capture_rng_state() -> Dict[str, Any]:
    """Python, NumPy and torch (CPU) RNG states, as types torch's weights-only loader accepts."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32),
                         numpy_state["pos"], numpy_state["has_gauss"],
                         numpy_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])


def atomic_torch_save(obj: Any, path: Union[str, Path]) -> None:
    """``torch.save`` that never leaves a partial file at ``path``: write beside it, then rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_stale_temporaries(save_dir: Union[str, Path]) -> List[Path]:
    """Delete what a killed save left in ``save_dir``: fairseq's ``*.pt.tmp`` (its own
    write-then-rename and our atomic copy) and :func:`atomic_torch_save`'s ``.*.pt.tmp-PID``.
    Only a run that is about to write there calls this; returns the files removed."""
    folder = Path(save_dir)
    if not folder.is_dir():
        return []
    stale = sorted({*folder.glob("*.pt.tmp"), *folder.glob(".*.pt.tmp-*")})
    for path in stale:
        logger.warning("removing %s, left by an interrupted save", path)
        path.unlink()
    return stale


def load_model_and_task(checkpoint: Union[str, Path], data_dir: Optional[Union[str, Path]] = None
                        ) -> Tuple[Any, Any]:
    """``(model, task)`` of an EchoStream checkpoint, through fairseq's own loader.

    Args:
        checkpoint: a fairseq checkpoint of an ``echostream`` model, or a shipped model (its
            name, e.g. ``echostream-mini-de-en``, or its folder; :mod:`echostream_fairseq.shipped`).
        data_dir: overrides the data folder saved in the checkpoint (dictionaries, YAMLs); a
            shipped model always uses its own, which its weights were trained with.
    """
    import echostream_fairseq  # noqa: F401  (registers the model and task with fairseq)
    from fairseq import checkpoint_utils

    from echostream_fairseq.checkpoint_safety import CheckpointLoadError, check_checkpoint_file
    from echostream_fairseq.shipped import describe_missing, find_shipped_model

    shipped = find_shipped_model(checkpoint)
    if shipped is not None:
        shipped.verify()
        logger.info("shipped model %s (%s)", shipped.name, shipped.folder)
        checkpoint, data_dir = shipped.checkpoint, shipped.data_dir()
    elif not Path(checkpoint).exists():
        raise CheckpointLoadError(checkpoint, describe_missing(checkpoint).split(": ", 1)[1])
    check_checkpoint_file(checkpoint)  # fairseq's own check raises a bare OSError
    overrides = {"data": str(data_dir)} if data_dir else {}
    models, _cfg, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(checkpoint)], arg_overrides=overrides)
    return models[0], task


def install() -> None:
    """Deprecated alias of :func:`echostream_fairseq.compat.install` (idempotent), where the
    fairseq checkpointing hooks now live."""
    from echostream_fairseq import compat

    compat.install()
