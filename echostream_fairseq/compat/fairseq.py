"""fairseq (ve-fairseq 0.12.3): checkpoint loading and writing, resume state, training logs.

Each wrapper keeps fairseq's behaviour and adds one thing; the checkpoint logic itself (error
messages, plain-layout upgrade, RNG capture) lives in :mod:`echostream_fairseq.checkpoint_safety`
and :mod:`echostream_fairseq.checkpoints`.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
import shutil
import zipfile
from typing import Any, Callable, Dict, Mapping

from echostream_fairseq.checkpoint_safety import (CheckpointLoadError, check_checkpoint_file,
                                                  explain_load_error, explain_non_checkpoint)
from echostream_fairseq.checkpoints import (RNG_STATE_KEY, capture_rng_state, is_plain_checkpoint,
                                            restore_rng_state, upgrade_plain_checkpoint)
from echostream_fairseq.compat._patch import Patch, check_version, is_marked, mark, resolve

__all__ = ["LIBRARY", "PATCHES", "PINNED", "install"]

logger = logging.getLogger(__name__)

LIBRARY, PINNED = "ve-fairseq", "0.12.3"
_UNSAFE_LOAD_VARIABLE = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


# ------------------------------------------------------------------------------------ loading
def _guard_loader(loader: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(loader)
    def load_checkpoint_to_cpu(path: str, *args: Any, **kwargs: Any) -> Any:
        # fairseq calls torch.load without weights_only; this variable would make that unsafe.
        if os.environ.get(_UNSAFE_LOAD_VARIABLE, "0") not in ("", "0"):
            raise CheckpointLoadError(
                path, f"{_UNSAFE_LOAD_VARIABLE} is set; unset it to load checkpoints weights-only"
            )
        check_checkpoint_file(path)
        try:
            return loader(path, *args, **kwargs)
        except CheckpointLoadError:
            raise
        except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, OSError) as error:
            raise explain_load_error(str(path), error) from error
        except (RuntimeError, KeyError, TypeError, AttributeError, IndexError) as error:
            # fairseq reads the state as a checkpoint dict: a bare tensor or another dict fails
            # deep inside it; say what the file holds, or keep the error if it is a checkpoint
            explained = explain_non_checkpoint(path)
            if explained is None:
                raise
            raise explained from error

    return mark(load_checkpoint_to_cpu)


def _checking_paths_first(load_ensemble: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(load_ensemble)
    def load_model_ensemble_and_task(filenames: Any, *args: Any, **kwargs: Any) -> Any:
        # fairseq tests existence itself and raises a bare IOError ("Model file not found")
        # before the guarded loader runs; unsharded local files get the loader's own check
        from fairseq.file_io import PathManager

        from echostream_fairseq.shipped import resolve_checkpoint_path

        filenames = [resolve_checkpoint_path(str(f)) for f in filenames]  # a shipped model's name
        if kwargs.get("num_shards", 1) == 1:
            for filename in filenames:
                if not PathManager.path_requires_pathmanager(str(filename)):
                    check_checkpoint_file(filename)
        return load_ensemble(filenames, *args, **kwargs)

    return mark(load_model_ensemble_and_task)


def _checking_start_paths(load_checkpoint: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(load_checkpoint)
    def checked_load_checkpoint(cfg: Any, trainer: Any, **passthrough: Any) -> Any:
        from fairseq.file_io import PathManager

        from echostream_fairseq.shipped import resolve_checkpoint_path

        if cfg.finetune_from_model is not None:  # a shipped model's name seeds a run too
            cfg.finetune_from_model = resolve_checkpoint_path(cfg.finetune_from_model)
        last = os.path.join(cfg.save_dir, f"checkpoint_last{trainer.checkpoint_suffix}.pt")
        if cfg.restore_file != "checkpoint_last.pt":
            # fairseq trains from scratch, saying only "No existing checkpoint found", when an
            # explicit --restore-file is missing
            start = cfg.restore_file.replace(".pt", f"{trainer.checkpoint_suffix}.pt")
        elif cfg.finetune_from_model is not None and not os.path.exists(last):
            start = cfg.finetune_from_model  # fairseq: a bare ValueError with a traceback
        else:
            start = None
        if start is not None and not PathManager.path_requires_pathmanager(start):
            check_checkpoint_file(start)
        return load_checkpoint(cfg, trainer, **passthrough)

    return mark(checked_load_checkpoint)


def _upgrading_plain(upgrade: Callable[[Dict[str, Any]], Dict[str, Any]]
                     ) -> Callable[[Dict[str, Any]], Dict[str, Any]]:
    @functools.wraps(upgrade)
    def _upgrade_state_dict(state: Dict[str, Any]) -> Dict[str, Any]:
        if is_plain_checkpoint(state):
            logger.info("upgrading a plain {epoch, model, optimizer, loss} checkpoint to "
                        "fairseq's layout")
            state = upgrade_plain_checkpoint(state)
        return upgrade(state)

    return mark(_upgrade_state_dict)


# ------------------------------------------------------------------------------------ writing
def _atomic_copy(src_path: str, dst_path: str) -> bool:
    # fairseq copies checkpoint_N.pt to checkpoint_last.pt with shutil.copyfile, which truncates
    # the destination first: a kill mid-copy would destroy the checkpoint a resume needs.
    tmp = f"{dst_path}.tmp"
    shutil.copyfile(src_path, tmp)
    os.replace(tmp, dst_path)
    return True


def _make_atomic_path_manager(base: type) -> type:
    class AtomicCopyPathManager(base):  # type: ignore[misc, valid-type]
        """fairseq's PathManager whose ``copy`` replaces local files atomically."""

        @staticmethod
        def copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
            if base.path_requires_pathmanager(dst_path):  # remote (iopath) storage: fairseq's way
                return base.copy(src_path, dst_path, overwrite)
            return _atomic_copy(src_path, dst_path)

    return mark(AtomicCopyPathManager)


# ------------------------------------------------------------------------------------- resume
def _with_rng_state(state_dict_fn: Callable[..., Dict[str, Any]]) -> Callable[..., Dict[str, Any]]:
    @functools.wraps(state_dict_fn)
    def state_dict(self: Any) -> Dict[str, Any]:
        return {**state_dict_fn(self), RNG_STATE_KEY: capture_rng_state()}

    return mark(state_dict)


def _restoring_rng_state(load_fn: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(load_fn)
    def load_state_dict(self: Any, state_dict: Mapping[str, Any]) -> None:
        load_fn(self, state_dict)
        if RNG_STATE_KEY in state_dict:
            restore_rng_state(state_dict[RNG_STATE_KEY])
            logger.info("restored the RNG states saved with the training iterator")

    return mark(load_state_dict)


# --------------------------------------------------------------------------------------- logs
def _drop_repeated_file_handlers(handler_owner: logging.Logger) -> None:
    seen = set()
    for handler in list(handler_owner.handlers):
        if not isinstance(handler, logging.FileHandler):
            continue
        if handler.baseFilename in seen:
            handler_owner.removeHandler(handler)
            handler.close()
        seen.add(handler.baseFilename)


def _single_log_file(progress_bar: Callable[..., Any], module: Any) -> Callable[..., Any]:
    @functools.wraps(progress_bar)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bar = progress_bar(*args, **kwargs)
        _drop_repeated_file_handlers(module.logger)
        return bar

    return mark(wrapper)


def _patched(target: str) -> Callable[[], bool]:
    return lambda: is_marked(resolve(target))


_LOADER = "fairseq.checkpoint_utils.load_checkpoint_to_cpu"
_ENSEMBLE = "fairseq.checkpoint_utils.load_model_ensemble_and_task"
_START = "fairseq.checkpoint_utils.load_checkpoint"
_UPGRADE = "fairseq.checkpoint_utils._upgrade_state_dict"
_PATH_MANAGER = "fairseq.checkpoint_utils.PathManager"
_ITERATOR_SAVE = "fairseq.data.iterators.EpochBatchIterator.state_dict"
_ITERATOR_LOAD = "fairseq.data.iterators.EpochBatchIterator.load_state_dict"
_PROGRESS_BAR = "fairseq.logging.progress_bar.progress_bar"

PATCHES = [
    Patch(_LOADER, LIBRARY, PINNED,
          "a refused, truncated or non-torch file surfaces as a bare pickle/zip error; raise "
          "CheckpointLoadError naming the path, and refuse TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD, which "
          "would turn fairseq's torch.load (no weights_only argument) into unsafe unpickling",
          _patched(_LOADER)),
    Patch(_ENSEMBLE, LIBRARY, PINNED,
          "fairseq-generate's loader tests each --path itself and raises a bare IOError (\"Model "
          "file not found\", a traceback) before load_checkpoint_to_cpu runs; the same "
          "CheckpointLoadError check runs first",
          _patched(_ENSEMBLE)),
    Patch(_START, LIBRARY, PINNED,
          "fairseq-train silently starts from scratch when an explicit --restore-file is "
          "missing, and raises a bare ValueError for a missing --finetune-from-model; both get "
          "the loader's one-line CheckpointLoadError check first",
          _patched(_START)),
    Patch(_UPGRADE, LIBRARY, PINNED,
          "fairseq only knows its own layout; plain {epoch, model, optimizer, loss} checkpoints of "
          "earlier EchoStream scripts are upgraded first (checkpoints.upgrade_plain_checkpoint)",
          _patched(_UPGRADE)),
    Patch(_PATH_MANAGER, LIBRARY, PINNED,
          "save_checkpoint copies checkpoint_N.pt to checkpoint_last/best.pt with "
          "shutil.copyfile, which truncates first: a kill mid-copy destroys the file a resume "
          "needs; local copies go to .tmp and are renamed",
          _patched(_PATH_MANAGER)),
    Patch(_ITERATOR_SAVE, LIBRARY, PINNED,
          "the iterator state fairseq saves holds the data position but no RNG state, so a "
          "resumed run draws other augmentation than an uninterrupted one",
          _patched(_ITERATOR_SAVE)),
    Patch(_ITERATOR_LOAD, LIBRARY, PINNED,
          "restores the RNG states saved by the patched state_dict, exactly when fairseq "
          "restores the data position (not for --reset-dataloader/--finetune-from-model)",
          _patched(_ITERATOR_LOAD)),
    Patch(_PROGRESS_BAR, LIBRARY, PINNED,
          "fairseq/logging/progress_bar.py: progress_bar() adds a FileHandler for --log-file on "
          "every call (each epoch, each validation), so epoch N's records are written N times",
          _patched(_PROGRESS_BAR)),
]


def install() -> None:
    """Apply every fairseq patch of :data:`PATCHES` (idempotent: each is applied once)."""
    import fairseq
    from fairseq import checkpoint_utils
    from fairseq.data import iterators
    from fairseq.logging import progress_bar

    check_version(LIBRARY, fairseq.__version__, PINNED)
    if not is_marked(checkpoint_utils.load_checkpoint_to_cpu):
        checkpoint_utils.load_checkpoint_to_cpu = _guard_loader(
            checkpoint_utils.load_checkpoint_to_cpu)
    if not is_marked(checkpoint_utils.load_model_ensemble_and_task):
        checkpoint_utils.load_model_ensemble_and_task = _checking_paths_first(
            checkpoint_utils.load_model_ensemble_and_task)
    if not is_marked(checkpoint_utils.load_checkpoint):
        checkpoint_utils.load_checkpoint = _checking_start_paths(checkpoint_utils.load_checkpoint)
    if not is_marked(checkpoint_utils._upgrade_state_dict):
        checkpoint_utils._upgrade_state_dict = _upgrading_plain(
            checkpoint_utils._upgrade_state_dict)
    if not is_marked(checkpoint_utils.PathManager):
        checkpoint_utils.PathManager = _make_atomic_path_manager(checkpoint_utils.PathManager)
    batches = iterators.EpochBatchIterator
    if not is_marked(batches.state_dict):
        batches.state_dict = _with_rng_state(batches.state_dict)
    if not is_marked(batches.load_state_dict):
        batches.load_state_dict = _restoring_rng_state(batches.load_state_dict)
    if not is_marked(progress_bar.progress_bar):
        progress_bar.progress_bar = _single_log_file(progress_bar.progress_bar, progress_bar)
    logger.debug("fairseq patched: guarded loading, plain upgrade, atomic copies, RNG state on "
                 "resume, one --log-file handler")
