"""Per-unit lookup tables with unit-context back-off (durations and spectra share them).

A :class:`ContextModel` maps each de-duplicated unit to a value vector (D,): its run length in
frames (D = 1, :mod:`.duration`) or its mean log-mel frame (D = n_mels, the centroid vocoder's
spectra). With ``kind="context"`` the value is the mean over the fitting runs that had the same
neighbours (previous unit, unit, next unit), backing off to (unit, next), then to (previous,
unit), then to the unit alone, whenever a context was seen fewer than ``min_count`` times.
Utterance edges are neighbour ``-1``. A streaming caller holds back :attr:`right_context` units.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["CONTEXT_KINDS", "EDGE", "ContextAccumulator", "ContextModel"]

CONTEXT_KINDS = ("unit", "context")
EDGE = -1  # neighbour id at the utterance start/end
# Back-off order: positions of (prev, unit, next) each table is keyed by.
_TABLES = {"triple": (0, 1, 2), "right": (1, 2), "left": (0, 1)}


@dataclass
class ContextModel:
    """Mean value vectors per unit and per seen context.

    Attributes:
        unit_values: (K, D) float32 mean per unit.
        tables: for ``triple``/``right``/``left``: ``(keys (M, n) int64, values (M, D) float32)``
            of the contexts seen >= ``min_count`` times.
        kind: ``"unit"`` (ignore contexts) or ``"context"``.
    """

    unit_values: np.ndarray
    tables: dict[str, tuple[np.ndarray, np.ndarray]]
    kind: str = "context"
    _lookup: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in CONTEXT_KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {CONTEXT_KINDS}")
        if self.unit_values.ndim != 2:
            raise ValueError(f"unit_values must be (K, D), got {self.unit_values.shape}")
        self._lookup = {name: {tuple(k): i for i, k in enumerate(keys.tolist())}
                        for name, (keys, _) in self.tables.items()}

    @property
    def num_units(self) -> int:
        """K."""
        return int(self.unit_values.shape[0])

    @property
    def right_context(self) -> int:
        """Units of look-ahead :meth:`predict` needs."""
        return 1 if self.kind == "context" else 0

    def with_kind(self, kind: str) -> "ContextModel":
        """The same tables used as another kind."""
        return ContextModel(self.unit_values, self.tables, kind=kind)

    def predict(self, units: Sequence[int], left: Optional[int] = None,
                right: Optional[int] = None) -> np.ndarray:
        """Value of each unit in its context.

        Args:
            units: unit ids, shape (U,), already validated against K.
            left: the unit before ``units[0]`` (``None``: utterance start).
            right: the unit after ``units[-1]`` (``None``: utterance end).

        Returns:
            (U, D) float32.
        """
        ids = np.asarray(units, dtype=np.int64)
        out = self.unit_values[ids].copy()
        if self.kind == "unit" or ids.size == 0:
            return out
        padded = [EDGE if left is None else int(left), *ids.tolist(),
                  EDGE if right is None else int(right)]
        for i in range(ids.size):
            context = padded[i:i + 3]
            for name, positions in _TABLES.items():
                row = self._lookup[name].get(tuple(context[p] for p in positions))
                if row is not None:
                    out[i] = self.tables[name][1][row]
                    break
        return out

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The tables as ``<prefix>_*`` arrays for an ``.npz`` file."""
        out = {f"{prefix}_unit_values": self.unit_values, f"{prefix}_kind": np.asarray(self.kind)}
        for name, (keys, values) in self.tables.items():
            out[f"{prefix}_{name}_keys"] = keys
            out[f"{prefix}_{name}_values"] = values
        return out

    @staticmethod
    def array_names(prefix: str) -> list[str]:
        """Keys :meth:`arrays` writes."""
        return [f"{prefix}_unit_values", f"{prefix}_kind",
                *(f"{prefix}_{n}_{part}" for n in _TABLES for part in ("keys", "values"))]

    @classmethod
    def from_arrays(cls, data: Mapping[str, np.ndarray], prefix: str) -> "ContextModel":
        """Inverse of :meth:`arrays` (``KeyError`` for a missing array)."""
        unit_values = np.asarray(data[f"{prefix}_unit_values"], dtype=np.float32)
        width = unit_values.shape[1]
        tables = {name: (np.asarray(data[f"{prefix}_{name}_keys"], np.int64).reshape(-1, len(pos)),
                         np.asarray(data[f"{prefix}_{name}_values"], np.float32).reshape(-1, width))
                  for name, pos in _TABLES.items()}
        return cls(unit_values, tables, kind=str(np.asarray(data[f"{prefix}_kind"]).item()))

    @classmethod
    def per_unit(cls, unit_values: np.ndarray) -> "ContextModel":
        """A ``unit`` model from per-unit values alone, (K,) or (K, D)."""
        values = np.asarray(unit_values, dtype=np.float32)
        values = values[:, None] if values.ndim == 1 else values
        tables = {name: (np.zeros((0, len(pos)), np.int64),
                         np.zeros((0, values.shape[1]), np.float32))
                  for name, pos in _TABLES.items()}
        return cls(values, tables, kind="unit")


class ContextAccumulator:
    """Sums of value vectors per unit and per context; :meth:`finish` makes a model.

    Args:
        num_units: K.
        width: D, the value size.
    """

    def __init__(self, num_units: int, width: int) -> None:
        self.num_units, self.width = num_units, width
        self._unit_sum = np.zeros((num_units, width), dtype=np.float64)
        self._unit_weight = np.zeros(num_units, dtype=np.float64)
        self._sums: dict[str, dict] = {name: {} for name in _TABLES}

    def add(self, units: Sequence[int], value_sums: np.ndarray, weights: np.ndarray) -> None:
        """Add one utterance.

        Args:
            units: de-duplicated units, shape (U,).
            value_sums: (U, D) summed values of each run (e.g. the run's log-mel frames summed).
            weights: (U,) what each sum is divided by for a mean (e.g. the run length).
        """
        np.add.at(self._unit_sum, np.asarray(units, dtype=np.int64), value_sums)
        np.add.at(self._unit_weight, np.asarray(units, dtype=np.int64), weights)
        padded = [EDGE, *map(int, units), EDGE]
        for i in range(len(units)):
            context = padded[i:i + 3]
            for name, positions in _TABLES.items():
                key = tuple(context[p] for p in positions)
                entry = self._sums[name].get(key)
                if entry is None:
                    self._sums[name][key] = [value_sums[i].astype(np.float64), weights[i], 1]
                else:
                    entry[0] += value_sums[i]
                    entry[1] += weights[i]
                    entry[2] += 1

    def finish(self, fallback: Optional[np.ndarray] = None, min_count: int = 2,
               kind: str = "context") -> ContextModel:
        """Means; units never seen take ``fallback`` ((K,) or (K, D); default zeros)."""
        if fallback is None:
            values = np.zeros((self.num_units, self.width), dtype=np.float64)
        else:
            values = np.asarray(fallback, dtype=np.float64).reshape(self.num_units, -1).copy()
        seen = self._unit_weight > 0
        values[seen] = self._unit_sum[seen] / self._unit_weight[seen, None]
        tables = {}
        for name, positions in _TABLES.items():
            kept = sorted(k for k, e in self._sums[name].items() if e[2] >= min_count)
            entries = [self._sums[name][k] for k in kept]
            tables[name] = (np.asarray(kept, np.int64).reshape(-1, len(positions)),
                            np.asarray([e[0] / e[1] for e in entries],
                                       np.float32).reshape(-1, self.width))
        logger.info("context model: %d/%d units seen; contexts kept (min count %d): %s",
                    int(seen.sum()), self.num_units, min_count,
                    {name: len(t[0]) for name, t in tables.items()})
        return ContextModel(values.astype(np.float32), tables, kind=kind)
