"""fairseq's training logs: one parser of the ``--log-format json`` output for the scripts and the
tests, and of ``--log-format simple`` (what ``make demo`` writes) through :func:`log_records`
(the one-``--log-file``-copy fix is in :mod:`echostream_fairseq.compat.fairseq`)."""

import json
import logging
import math
import re
from typing import Dict, List

__all__ = ["install", "json_records", "log_records", "simple_records"]

# --log-format simple: "epoch 001:     10 / 24 loss=67.783, unit_ctc_loss=14.928, ..." per
# interval, "epoch 001 | valid on 'dev' subset | loss 37.935 | ..." per validation, and
# "epoch 001 | loss 53.241 | ..." per epoch
_SIMPLE_INTERVAL = re.compile(r"epoch \d+:\s+\d+ / \d+ (\w+=.*)$")
_SIMPLE_SUMMARY = re.compile(r"epoch \d+ \| (?:valid on '(?P<subset>[^']+)' subset \| )?"
                             r"(?P<fields>\w+ [^|]+(?: \| \w+ [^|]+)*)$")

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


def simple_records(text: str, tag: str) -> List[Dict[str, float]]:
    """The numeric fields of every ``--log-format simple`` record of kind ``tag``
    (``train_inner``, ``train`` or a validation subset's name), console or ``--log-file``."""
    records = []
    for line in text.splitlines():
        if tag == "train_inner":
            match = _SIMPLE_INTERVAL.search(line)
            pairs = [field.split("=", 1) for field in match.group(1).split(", ")] if match else []
        else:
            match = _SIMPLE_SUMMARY.search(line)
            if not match or (match.group("subset") or "train") != tag:
                continue
            pairs = [field.split(" ", 1) for field in match.group("fields").split(" | ")]
        record = {key: number for key, value in pairs
                  if (number := _number(value.strip())) is not None}
        if record:
            records.append(record)
    return records


def log_records(text: str, tag: str, source: str = "log") -> List[Dict[str, float]]:
    """:func:`json_records`, or for a log written with ``--log-format simple``
    :func:`simple_records`: the same keys either way."""
    return json_records(text, tag, source) or simple_records(text, tag)
