"""Reading fairseq's ``--log-format json`` training output (one parser for scripts and tests)."""

import json
import math
from typing import Dict, List

__all__ = ["json_records"]


def json_records(text: str, tag: str, source: str = "log") -> List[Dict[str, float]]:
    """The numeric fields of every JSON record fairseq printed after ``| <tag> |`` in ``text``.

    ``tag`` is ``train_inner``, ``train`` or a validation subset's name; validation keys carry the
    subset as a prefix (``dev_sampled.units_loss``), which is removed so every split shares key
    names. Non-numeric fields are left out.

    Raises:
        ValueError: a tagged line is not valid JSON (names ``source`` and the line number).
    """
    marker = f"| {tag} | "
    records = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if marker not in line or not line.rstrip().endswith("}"):
            continue
        try:
            raw = json.loads(line.split(marker, 1)[1])
        except json.JSONDecodeError as error:
            raise ValueError(f"{source}:{line_number}: not a fairseq JSON record ({error})") from error
        record = {}
        for key, value in raw.items():
            number = _number(value)
            if number is not None:
                record[key.removeprefix(f"{tag}_")] = number
        records.append(record)
    return records


def _number(value: object):
    try:
        number = float(value)  # fairseq writes most values as strings
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number
