"""Shipped models: a trained model as one folder, usable by name wherever a checkpoint is.

A shipped model (``models/<name>/`` in the repository, written by ``echostream-export-model``)::

    model.pt     the weights (float16 where the export measured no difference) and fairseq's cfg;
                 no optimizer state
    data/        what the task reads when the model loads: config_gcmvn.yaml and
                 config_mtl_asr_st_ctcst.yaml (paths relative to data/), gcmvn.npz, the
                 sentencepiece models and dictionaries (src_unigram<N>/, tgt_unigram<N>/)
    model.json   name, sha256 of every file, the recipe, the recorded outputs the test checks
    README.md    the model card (rendered from model.json)

``--checkpoint echostream-mini-de-en`` (or a path to such a folder) then works in every command:
:func:`echostream_fairseq.checkpoints.load_model_and_task` resolves it here. fairseq reads the
YAMLs' paths as they are written (relative to the working directory), so the YAMLs are rewritten
with absolute paths into a cache folder once per model version (``$XDG_CACHE_HOME/echostream``);
the data files themselves stay in the model folder. The model's own dictionaries always win over
a ``--data-dir``: they are the ones its weights were trained with.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

import yaml

from echostream_fairseq.errors import InputError

__all__ = ["CARD_JSON", "MODEL_FILE", "ShippedModel", "checkpoint_file", "file_sha256",
           "find_shipped_model", "models_dir", "resolve_checkpoint_path", "shipped_model_names"]

logger = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
CARD_JSON = "model.json"
DATA = "data"
GCMVN_YAML = "config_gcmvn.yaml"
MULTITASK_YAML = "config_mtl_asr_st_ctcst.yaml"
# the repository's models/ (the package is installed editable, `make setup`)
_REPO_MODELS = Path(__file__).resolve().parent.parent / "models"


def models_dir() -> Path:
    """Where names are looked up: ``$ECHOSTREAM_MODELS_DIR``, else the repository's models/."""
    return Path(os.environ.get("ECHOSTREAM_MODELS_DIR") or _REPO_MODELS)


def shipped_model_names() -> List[str]:
    """Names of the models in :func:`models_dir`."""
    folder = models_dir()
    return sorted(p.parent.name for p in folder.glob(f"*/{CARD_JSON}")) if folder.is_dir() else []


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ShippedModel:
    """A shipped model folder and its card (``model.json``)."""

    folder: Path
    card: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.card.get("name", self.folder.name))

    @property
    def checkpoint(self) -> Path:
        return self.folder / MODEL_FILE

    def verify(self) -> None:
        """Every file the card lists exists with its recorded sha256.

        Raises:
            InputError: a file is missing or differs (truncated copy, a Git LFS pointer, an edit).
        """
        for relative, expected in sorted(self.card.get("files", {}).items()):
            path = self.folder / relative
            if not path.is_file():
                raise InputError(f"{path}: missing from the shipped model {self.name} "
                                 f"(listed in {self.folder / CARD_JSON})")
            actual = file_sha256(path)
            if actual != expected:
                raise InputError(f"{path}: sha256 {actual[:12]}... differs from the "
                                 f"{expected[:12]}... that {CARD_JSON} records: the file is "
                                 "damaged or was changed (restore it from the repository)")

    def data_dir(self) -> Path:
        """A folder fairseq can load the task from: the model's YAMLs with absolute paths.

        Written once per model version into the cache (atomically: a half-written folder is
        never used), pointing at the data files inside the model folder.
        """
        key = hashlib.sha256(json.dumps(
            {"folder": str(self.folder.resolve()), "files": self.card.get("files", {})},
            sort_keys=True).encode()).hexdigest()[:16]
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        target = cache / "echostream" / "models" / f"{self.name}-{key}"
        if (target / MULTITASK_YAML).is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.name}-", dir=target.parent))
        try:
            data = (self.folder / DATA).resolve()
            for name in (GCMVN_YAML, MULTITASK_YAML):
                content = yaml.safe_load((data / name).read_text(encoding="utf-8"))
                (staging / name).write_text(
                    yaml.safe_dump(absolute_paths(content, data), sort_keys=False),
                    encoding="utf-8")
            try:
                staging.rename(target)
            except OSError:  # another process made it first: theirs is the same
                if not (target / MULTITASK_YAML).is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target


# the YAML keys whose values are paths (fairseq's data and multitask configs)
PATH_KEYS = ("stats_npz_path", "dict", "data", "config", "checkpoint")


def absolute_paths(content: Any, base: Path) -> Any:
    """``content`` with every relative path value (keys of ``PATH_KEYS``) made absolute under
    ``base``."""
    if isinstance(content, dict):
        return {key: str(base / value) if key in PATH_KEYS and isinstance(value, str)
                and value and not Path(value).is_absolute() else absolute_paths(value, base)
                for key, value in content.items()}
    if isinstance(content, list):
        return [absolute_paths(value, base) for value in content]
    return content


def relative_paths(content: Any, base: Path) -> Any:
    """The inverse of :func:`absolute_paths` for paths inside ``base`` (as the export writes)."""
    if isinstance(content, dict):
        out: Dict[str, Any] = {}
        for key, value in content.items():
            if key in PATH_KEYS and isinstance(value, str) and Path(value).is_absolute():
                try:
                    value = str(Path(value).resolve().relative_to(base.resolve()))
                except ValueError as err:
                    raise InputError(f"{key}: {value} is outside {base}, so it cannot travel with "
                                     "the model") from err
                out[key] = value
            else:
                out[key] = relative_paths(value, base)
        return out
    if isinstance(content, list):
        return [relative_paths(value, base) for value in content]
    return content


def _read_card(folder: Path) -> Dict[str, Any]:
    path = folder / CARD_JSON
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not a readable model card ({err})") from err
    if not isinstance(card, dict) or not isinstance(card.get("files"), dict):
        raise InputError(f"{path}: a model card needs a 'files' mapping (name -> sha256)")
    return card


def find_shipped_model(spec: Union[str, Path, None]) -> Optional[ShippedModel]:
    """The shipped model ``spec`` names (a folder holding ``model.json``, or a name in
    :func:`models_dir`); None when it names none (e.g. a plain checkpoint file).

    Raises:
        InputError: the folder's card is unreadable.
    """
    if spec is None:
        return None
    path = Path(spec)
    if path.is_file():
        return None
    for folder in (path, models_dir() / str(spec)):
        if (folder / CARD_JSON).is_file():
            return ShippedModel(folder.resolve(), _read_card(folder))
    return None


def checkpoint_file(spec: Union[str, Path]) -> Path:
    """The file ``spec`` loads: a shipped model's ``model.pt``, else ``spec`` itself (absolute)."""
    shipped = find_shipped_model(spec)
    return shipped.checkpoint if shipped is not None else Path(spec).resolve()


def resolve_checkpoint_path(spec: str) -> str:
    """``spec`` as a file fairseq's own loaders read: a shipped model's name or folder becomes
    its (checked) ``model.pt``; anything else is returned as it is. What lets
    ``fairseq-generate --path`` and ``fairseq-train --finetune-from-model`` take a name."""
    shipped = find_shipped_model(spec)
    if shipped is None:
        return spec
    shipped.verify()
    return str(shipped.checkpoint)


def describe_missing(spec: Union[str, Path]) -> str:
    """The error text for a --checkpoint that is neither a file nor a shipped model."""
    names = shipped_model_names()
    known = (f"shipped models: {', '.join(names)}" if names
             else f"no shipped models in {models_dir()}")
    return f"{spec}: no such file or shipped model ({known})"
