"""fairseq's training logs: one parser of the ``--log-format json`` output for the scripts and the
tests (the one-``--log-file``-copy fix is in :mod:`echostream_fairseq.compat.fairseq`)."""

import json
import logging
import math
from typing import Dict, List

__all__ = ["install", "json_records"]

logger = logging.getLogger(__name__)


def install() -> None:
    """Deprecated alias of :func:`echostream_fairseq.compat.install` (idempotent), which makes
    fairseq write each record to ``--log-file`` once (fairseq 0.12's ``progress_bar()`` added a
    ``FileHandler`` on every call, so epoch N's records were written N times)."""
    from echostream_fairseq import compat

    compat.install()


def json_records(text: str, tag: str, source: str = "log") -> List[Dict[str, float]]:
    """The numeric fields of every JSON record of kind ``tag`` that fairseq wrote in ``text``.

    ``tag`` is ``train_inner``, ``train`` or a validation subset's name; validation keys carry the
    subset as a prefix (``dev_sampled.units_loss``), which is removed so every split shares key
    names. Non-numeric fields are left out. Both of fairseq's outputs are read: the console, where
    a record follows ``| <tag> |``, and the ``--log-file``, which holds the bare JSON (the kind is
    then told by the keys: ``update`` for ``train_inner``, the ``<tag>_loss`` key otherwise). A
    bare line equal to the one before it is a copy written by a repeated handler (log files
    written without :func:`install`) and is skipped.

    Raises:
        ValueError: a tagged console line is not valid JSON (names ``source`` and the line number).
    """
    marker = f"| {tag} | "
    records = []
    previous = None
    for line_number, line in enumerate(text.splitlines(), start=1):
        repeated, previous = line == previous, line
        if not line.rstrip().endswith("}"):
            continue
        if marker in line:
            try:
                raw = json.loads(line.split(marker, 1)[1])
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"{source}:{line_number}: not a fairseq JSON record ({error})"
                ) from error
        else:
            raw = None if repeated else _bare_record(line)
            if raw is None or not _is_kind(raw, tag):
                continue
        record = {}
        for key, value in raw.items():
            number = _number(value)
            if number is not None:
                record[key.removeprefix(f"{tag}_")] = number
        records.append(record)
    return records


def _bare_record(line: str):
    """A ``--log-file`` line's JSON object, or ``None`` (other lines there are plain messages)."""
    if not line.startswith("{"):
        return None
    try:
        raw = json.loads(line)
    except json.JSONDecodeError:
        return None  # e.g. the config dict fairseq logs first, written as a Python repr
    return raw if isinstance(raw, dict) else None


def _is_kind(raw: Dict[str, object], tag: str) -> bool:
    if tag == "train_inner":
        return "update" in raw and "loss" in raw
    return f"{tag}_loss" in raw


def _number(value: object):
    try:
        number = float(value)  # fairseq writes most values as strings
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number
