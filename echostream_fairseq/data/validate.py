"""Validation of S2ST manifests and the files they name.

:func:`find_problems` returns every problem of a manifest (it does not stop at the first), each
with the manifest file, its line (the header is line 1) and column:

* a required column missing from the header, a row with the wrong number of fields, a repeated id;
* ``src_audio``: missing file, unreadable or empty audio, a wav not at 16 kHz, a feature array
  not of shape (n, 80), ``src_n_frames`` not its length (fbank frames, or samples for a wav);
* ``tgt_audio``: a unit that is not an integer or lies outside ``[0, K)``, repeated neighbours
  (units must be de-duplicated), no units, ``tgt_n_frames`` not the unit count.

:func:`validate_manifest` raises :class:`ManifestError` listing them all. Command line::

    echostream-validate data/train_sampled.units.tsv --num-units 500
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from echostream_fairseq.data.audio import SAMPLE_RATE, AudioError, wav_num_samples
from echostream_fairseq.data.features import FBANK_DIM, FeatureError, read_feature_shape
from echostream_fairseq.data.manifests import (MANIFEST_COLUMNS, MULTITASK_COLUMNS,
                                               PIPER_PHONEMES, ManifestReadError, read_tsv_lines,
                                               vocoder_type)
from echostream_fairseq.data.text import parse_units
from echostream_fairseq.errors import UserError

logger = logging.getLogger(__name__)

__all__ = ["ManifestError", "Problem", "find_multitask_problems", "find_problems",
           "find_unit_problems", "validate_manifest"]

_AUDIO_SUFFIXES = (".wav", ".flac")


@dataclass(frozen=True)
class Problem:
    """One problem: where (manifest file, 1-based line, column name) and what; line 0 and
    column ``-`` mean the whole file."""

    file: str
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return (f"{where}: {self.message}" if self.column == "-"
                else f"{where}: column {self.column!r}: {self.message}")


class ManifestError(UserError, ValueError):
    """A manifest or the files it names failed validation; ``problems`` lists every problem."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:  # the usual case: one line naming file, line and column
            super().__init__(str(self.problems[0]))
            return
        files = sorted({p.file for p in self.problems})
        shown = "\n  ".join(str(p) for p in self.problems[:50])
        more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(f"{len(self.problems)} problems in {', '.join(files)}:\n  {shown}{more}")


def _resolve(value: str, manifest: Path) -> Path:
    path = Path(value)
    return path if path.is_absolute() else manifest.parent / path


def _zip_entry_shape(value: str, manifest: Path) -> tuple[int, ...]:
    """Shape of a ``file.zip:offset:length`` npy entry (StreamSpeech's packed features)."""
    zip_name, offset_s, length_s = value.rsplit(":", 2)
    zip_path = _resolve(zip_name, manifest)
    if not zip_path.is_file():
        raise FeatureError(zip_path, "file does not exist")
    offset, length = int(offset_s), int(length_s)
    if offset + length > zip_path.stat().st_size:
        raise FeatureError(zip_path, f"entry {offset}:{length} runs past the end of the file")
    with open(zip_path, "rb") as handle:
        handle.seek(offset)
        blob = handle.read(length)
    try:
        return tuple(np.load(io.BytesIO(blob)).shape)
    except (ValueError, OSError, EOFError) as err:
        raise FeatureError(zip_path, f"entry {offset}:{length} is not a .npy ({err})") from err


def _source_length(value: str, manifest: Path) -> tuple[int, str]:
    """``(length, unit)`` of a src_audio entry: fbank frames or wav samples.

    Raises:
        AudioError, FeatureError: the entry cannot be used.
    """
    if ".zip:" in value:
        shape = _zip_entry_shape(value, manifest)
        kind = "zip entry"
    elif value.lower().endswith(_AUDIO_SUFFIXES):
        samples, _ = wav_num_samples(_resolve(value, manifest), SAMPLE_RATE)
        return samples, "samples"
    else:
        shape = read_feature_shape(_resolve(value, manifest))
        kind = "features"
    if len(shape) != 2 or shape[1] != FBANK_DIM or shape[0] == 0:
        raise FeatureError(_resolve(value.split(":")[0], manifest),
                           f"{kind} of shape {shape}, expected (n, {FBANK_DIM}) with n > 0")
    return shape[0], "frames"


def _check_count(value: str) -> Optional[int]:
    return int(value) if value.isdigit() and int(value) > 0 else None


def _row_problems(row: dict[str, str], where: tuple[str, int], manifest: Path,
                  num_units: Optional[int], repeats_allowed: bool = False) -> list[Problem]:
    file, line = where
    problems: list[Problem] = []

    def add(column: str, message: str) -> None:
        problems.append(Problem(file, line, column, message))

    src_n = _check_count(row["src_n_frames"])
    if src_n is None:
        add("src_n_frames", f"{row['src_n_frames']!r} is not a positive integer")
    try:
        length, unit = _source_length(row["src_audio"], manifest)
        if src_n is not None and length != src_n:
            add("src_n_frames", f"{src_n} but {row['src_audio']} has {length} {unit}")
    except (AudioError, FeatureError) as err:
        add("src_audio", str(err))
    except ValueError as err:  # a malformed zip:offset:length entry
        add("src_audio", f"malformed entry {row['src_audio']!r} ({err})")

    tgt_n = _check_count(row["tgt_n_frames"])
    if tgt_n is None:
        add("tgt_n_frames", f"{row['tgt_n_frames']!r} is not a positive integer")
    try:
        units = parse_units(row["tgt_audio"])
    except ValueError as err:
        add("tgt_audio", str(err))
        return problems
    if not units:
        add("tgt_audio", "no units")
    if tgt_n is not None and units and len(units) != tgt_n:
        add("tgt_n_frames", f"{tgt_n} but tgt_audio holds {len(units)} units")
    if num_units is not None and _units_outside(units, num_units):
        add("tgt_audio", _units_outside(units, num_units))
    repeats = sum(1 for a, b in zip(units, units[1:]) if a == b)
    if repeats and not repeats_allowed:
        add("tgt_audio", f"{repeats} repeated neighbouring unit(s): units must be de-duplicated")
    return problems


def _units_outside(units: Sequence[int], num_units: int) -> str:
    """The problem text for units >= K, or "" when every unit is inside the dictionary."""
    outside = sorted({u for u in units if u >= num_units})
    if not outside:
        return ""
    return (f"unit(s) {outside[:10]} outside the dictionary [0, {num_units}) "
            f"(--target-code-size {num_units})")


def _read_rows(manifest: Path, required: Sequence[str]
               ) -> tuple[list[Problem], list[tuple[int, dict[str, str]]]]:
    """Header and field-count problems, and the rows that can be checked further."""
    file = str(manifest)
    if not manifest.is_file() and not manifest.is_dir():
        return [Problem(file, 0, "-", "manifest does not exist")], []
    try:
        lines = read_tsv_lines(manifest)
    except ManifestReadError as error:  # a folder, or not UTF-8
        return [Problem(file, error.line, "-", error.reason)], []
    header = lines[0].split("\t")
    problems = [Problem(file, 1, name, "column missing from the header")
                for name in required if name not in header]
    if problems:
        return problems, []
    rows = []
    seen: dict[str, int] = {}
    for lineno, text in enumerate(lines[1:], start=2):
        if not text:
            continue
        fields = text.split("\t")
        if len(fields) != len(header):
            column = header[len(fields)] if len(fields) < len(header) else "-"
            problems.append(Problem(file, lineno, column,
                                    f"{len(fields)} fields, header has {len(header)}"))
            continue
        row = dict(zip(header, fields))
        if row["id"] in seen:
            problems.append(Problem(file, lineno, "id",
                                    f"id {row['id']!r} repeats line {seen[row['id']]}"))
        seen.setdefault(row["id"], lineno)
        rows.append((lineno, row))
    if not rows:
        problems.append(Problem(file, 1, "-", "manifest has no rows"))
    return problems, rows


def find_problems(manifest: Path, num_units: Optional[int] = None,
                  required_columns: Sequence[str] = MANIFEST_COLUMNS) -> list[Problem]:
    """Every problem of ``manifest`` and the files it names, by line (empty list: valid).

    Args:
        manifest: the TSV.
        num_units: unit vocabulary size K (``--target-code-size``); None skips the range check.
        required_columns: header columns that must be present.
    """
    manifest = Path(manifest)
    problems, rows = _read_rows(manifest, required_columns)
    # k-means and HuBERT units are de-duplicated, so a repeat means frame-level units; phonemes
    # repeat for real
    repeats_allowed = vocoder_type(manifest.parent) == PIPER_PHONEMES
    for lineno, row in rows:
        problems.extend(_row_problems(row, (str(manifest), lineno), manifest, num_units,
                                      repeats_allowed))
    return sorted(problems, key=lambda p: p.line)  # stable: a row's problems keep their order


def find_unit_problems(manifest: Path, num_units: int) -> list[Problem]:
    """Only the ``tgt_audio`` units of ``manifest``: unparsable or outside ``[0, num_units)``.

    Cheap (no audio or feature file is opened), for checking a split when training starts.
    """
    manifest = Path(manifest)
    problems, rows = _read_rows(manifest, ("id", "tgt_audio"))
    for lineno, row in rows:
        try:
            outside = _units_outside(parse_units(row["tgt_audio"]), num_units)
        except ValueError as err:
            outside = str(err)
        if outside:
            problems.append(
                Problem(str(manifest), lineno, "tgt_audio", f"id {row['id']!r}: {outside}")
            )
    return problems


def find_multitask_problems(tsv: Path, dict_path: Optional[Path] = None,
                            ids: Optional[Sequence[str]] = None) -> list[Problem]:
    """Problems of a multitask ``{split}.tsv`` (``id  tgt_text``).

    Checks the header, empty texts, pieces missing from the fairseq dictionary ``dict_path``, and
    that the ids equal ``ids`` (the main manifest's, in order) when given.
    """
    tsv = Path(tsv)
    problems, rows = _read_rows(tsv, MULTITASK_COLUMNS)
    vocab = None
    if dict_path is not None:
        with open(dict_path, encoding="utf-8") as handle:
            # fairseq's specials are implicit in a dictionary file; <unk> marks unseen characters
            vocab = {line.rsplit(" ", 1)[0] for line in handle if line.strip()} | {"<unk>"}
    for lineno, row in rows:
        pieces = row["tgt_text"].split()
        if not pieces:
            problems.append(Problem(str(tsv), lineno, "tgt_text", "empty text"))
        unknown = sorted({p for p in pieces if vocab is not None and p not in vocab})
        if unknown:
            problems.append(Problem(str(tsv), lineno, "tgt_text",
                                    f"piece(s) {unknown[:5]} not in {dict_path}"))
    if ids is not None and [row["id"] for _, row in rows] != list(ids):
        problems.append(Problem(str(tsv), 1, "id", "ids differ from the main manifest's"))
    return problems


def validate_manifest(manifest: Path, num_units: Optional[int] = None,
                      required_columns: Sequence[str] = MANIFEST_COLUMNS) -> int:
    """Validate ``manifest``; returns its row count.

    Raises:
        ManifestError: listing every problem :func:`find_problems` found.
    """
    problems = find_problems(manifest, num_units, required_columns)
    if problems:
        raise ManifestError(problems)
    _, rows = _read_rows(Path(manifest), required_columns)
    return len(rows)
