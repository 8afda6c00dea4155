"""Safe loading of fairseq checkpoints under torch's weights-only unpickling.

torch >= 2.6 unpickles ``torch.load`` files weights-only by default, and fairseq 0.12's
``load_checkpoint_to_cpu`` then fails on the ``argparse.Namespace`` (and, in older checkpoints,
omegaconf objects) that fairseq stores next to the weights. Instead of turning the check off
(``weights_only=False`` would execute whatever a pickle asks for), we allow-list exactly the
types a standard fairseq checkpoint holds and keep refusing everything else.

The allow-list and fairseq's guarded loader are installed by :mod:`echostream_fairseq.compat`
when the plugin is imported (:func:`install` is kept as an alias); a refused, truncated or
unreadable file then raises :class:`CheckpointLoadError` naming the path.
"""

from __future__ import annotations

import argparse
import collections
import logging
import pickle
import typing
import zipfile
from pathlib import Path
from typing import Any, List, Optional, Union

import torch

from echostream_fairseq.errors import UserError

__all__ = ["CheckpointLoadError", "SAFE_CHECKPOINT_GLOBALS", "check_checkpoint_file",
           "explain_load_error", "explain_non_checkpoint", "install", "safe_torch_load"]

logger = logging.getLogger(__name__)


class CheckpointLoadError(UserError, RuntimeError):
    """A checkpoint file could not be loaded: refused, truncated, missing or not a checkpoint."""

    def __init__(self, path: Union[str, Path], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot load checkpoint {self.path}: {reason}")


def _omegaconf_globals() -> List[Any]:
    # Checkpoints written by fairseq before it stored plain dicts pickled DictConfig objects.
    from omegaconf import DictConfig, ListConfig
    from omegaconf.base import ContainerMetadata, Metadata
    from omegaconf.nodes import AnyNode

    return [DictConfig, ListConfig, ContainerMetadata, Metadata, AnyNode]


# Everything a fairseq 0.12 checkpoint (StreamSpeech's included) pickles besides tensors.
SAFE_CHECKPOINT_GLOBALS: List[Any] = [
    argparse.Namespace,
    typing.Any,
    dict,
    list,
    int,  # a pickled ListConfig records int as its key type
    collections.defaultdict,
    collections.OrderedDict,
    *_omegaconf_globals(),
]

_REFUSED_MARKERS = ("Unsupported global", "Weights only load failed", "weights_only")


_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since torch 1.6
_PICKLE_MAGIC = b"\x80"  # torch's legacy format starts with a pickle protocol marker


def _not_torch_format(path: str) -> bool:
    """True for an existing file that is neither torch's zip format nor a pickle (e.g. text)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(_ZIP_MAGIC))
    except OSError:
        return False
    return bool(head) and not head.startswith((_ZIP_MAGIC, _PICKLE_MAGIC))


def explain_load_error(path: str, error: BaseException) -> CheckpointLoadError:
    """The :class:`CheckpointLoadError` saying in one line why loading ``path`` failed."""
    message = str(error)
    # a text or other non-torch file fails in the unpickler too; say what it is, not "refused"
    if not isinstance(error, (FileNotFoundError, IsADirectoryError)) and _not_torch_format(path):
        return CheckpointLoadError(
            path, "not a torch checkpoint (neither torch's zip format nor a pickle)"
        )
    if isinstance(error, pickle.UnpicklingError) or any(m in message for m in _REFUSED_MARKERS):
        first_line = next((line for line in message.splitlines() if "GLOBAL" in line), "")
        detail = f" ({first_line.strip()})" if first_line else ""
        return CheckpointLoadError(
            path, f"refused: the pickle asks for code outside the checkpoint allow-list{detail}"
        )
    if isinstance(error, FileNotFoundError):
        return CheckpointLoadError(path, "no such file")
    if isinstance(error, IsADirectoryError):
        return CheckpointLoadError(path, "is a directory, not a checkpoint file")
    if "inline_container" in message:  # torch's reader on a zip it did not write
        return CheckpointLoadError(path, "a zip archive, but not torch's checkpoint format")
    if isinstance(error, (EOFError, zipfile.BadZipFile)) or "zip archive" in message:
        return CheckpointLoadError(path, f"truncated or not a torch checkpoint ({message.strip()})")
    return CheckpointLoadError(path, f"{type(error).__name__}: {message.strip()}")


def check_checkpoint_file(path: Union[str, Path]) -> None:
    """Refuse what is plainly not a checkpoint before anything reads it: a missing path, a
    folder, an empty file, a file in neither of torch's formats (text, say)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointLoadError(path, "no such file")
    if path.is_dir():
        raise CheckpointLoadError(path, "is a directory, not a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointLoadError(path, "empty file (0 bytes)")
    if _not_torch_format(str(path)):
        raise CheckpointLoadError(
            path, "not a torch checkpoint (neither torch's zip format nor a pickle)")


def explain_non_checkpoint(path: Union[str, Path]) -> Optional[CheckpointLoadError]:
    """After fairseq's loader failed on ``path``: the error saying what the file holds when it
    is not a fairseq checkpoint (a bare tensor, a dict without ``model``, a foreign zip); None
    when it is one, so the original error (a bug, not bad input) is raised as it was."""
    try:
        state = safe_torch_load(path)
    except CheckpointLoadError as error:
        return error
    if not isinstance(state, dict):
        return CheckpointLoadError(
            path, f"holds a {type(state).__name__}, not a fairseq checkpoint (a dict with 'model')")
    if "model" not in state:
        keys = ", ".join(sorted(map(str, state))[:8]) or "none"
        return CheckpointLoadError(
            path, f"a torch file but not a fairseq checkpoint: no 'model' entry (keys: {keys})")
    return None


def safe_torch_load(path: Union[str, Path], map_location: Any = "cpu") -> Any:
    """Load ``path`` with weights-only unpickling and the fairseq allow-list.

    Raises:
        CheckpointLoadError: the file is missing, truncated, not a checkpoint, or its pickle
            references a global outside :data:`SAFE_CHECKPOINT_GLOBALS` (never executed).
    """
    check_checkpoint_file(path)
    try:
        with open(path, "rb") as handle:
            return torch.load(handle, map_location=map_location, weights_only=True)
    except CheckpointLoadError:
        raise
    except Exception as error:  # torch raises many unrelated types for broken files
        raise explain_load_error(str(path), error) from error


def install() -> None:
    """Deprecated alias of :func:`echostream_fairseq.compat.install` (idempotent), which also
    allow-lists these types and guards fairseq's loader."""
    from echostream_fairseq import compat

    compat.install()
