"""Per-unit lookup tables with unit-context back-off (durations and spectra share them).

A :class:`ContextModel` maps each de-duplicated unit to a value vector (D,): its run length in
frames (D = 1, :mod:`.duration`) or its mean log-mel frame (D = n_mels, the centroid vocoder's
spectra). With ``kind="context"`` the value is the mean over the fitting runs that had the same
neighbours (previous unit, unit, next unit), backing off to (unit, next), then to (previous,
unit), then to the unit alone, whenever a context was seen fewer than ``min_count`` times.
Utterance edges are neighbour ``-1``. A streaming caller holds back :attr:`right_context` units.

Wide values (spectra) can be stored compactly (``rank``): a context's value is then its unit's
value plus a residual kept as float16 coefficients on a shared basis of the residuals' R leading
principal directions (R = 24 of 80 log-mel bins keeps the held-out error of the full tables; the
full corpus's spectra take 7 MB instead of 66 MB).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["CONTEXT_KINDS", "EDGE", "ContextAccumulator", "ContextModel"]

CONTEXT_KINDS = ("unit", "context")
EDGE = -1  # neighbour id at the utterance start/end
# Back-off order: positions of (prev, unit, next) each table is keyed by. Every table includes
# the unit itself (position 1), so a compact residual is always relative to the unit's value.
_TABLES = {"triple": (0, 1, 2), "right": (1, 2), "left": (0, 1)}
_UNIT_POSITION = 1


def _group_means(keys: np.ndarray, sums: np.ndarray, weights: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted means per distinct key row.

    Args:
        keys: (N, n) int64 key of each example.
        sums: (N, D) summed values of each example.
        weights: (N,) what each sum is divided by.

    Returns:
        ``(distinct_keys (M, n), means (M, D) float64, examples per key (M,))``, keys sorted.
    """
    distinct, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    group_sums = np.add.reduceat(sums[order], starts, axis=0, dtype=np.float64)
    group_weights = np.bincount(inverse, weights=weights, minlength=len(distinct))
    return distinct, group_sums / group_weights[:, None], counts


def _key_dtype(num_units: int) -> type:
    """Smallest signed integer type for unit ids and ``EDGE`` in a saved table."""
    return np.int16 if num_units <= np.iinfo(np.int16).max else np.int32


@dataclass
class ContextModel:
    """Mean value vectors per unit and per seen context.

    Attributes:
        unit_values: (K, D) float32 mean per unit.
        tables: for ``triple``/``right``/``left``: ``(keys (M, n) int64, values)`` of the contexts
            seen >= ``min_count`` times; values are (M, D) float32, or with a ``basis`` (M, R)
            coefficients of the residual from the unit's own value.
        kind: ``"unit"`` (ignore contexts) or ``"context"``.
        basis: ``None`` (tables hold values), or (R, D) float32 residual directions.
    """

    unit_values: np.ndarray
    tables: dict[str, tuple[np.ndarray, np.ndarray]]
    kind: str = "context"
    basis: Optional[np.ndarray] = None
    _lookup: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in CONTEXT_KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {CONTEXT_KINDS}")
        if self.unit_values.ndim != 2:
            raise ValueError(f"unit_values must be (K, D), got {self.unit_values.shape}")
        width = self.unit_values.shape[1] if self.basis is None else self.basis.shape[0]
        if self.basis is not None and self.basis.shape[1] != self.unit_values.shape[1]:
            raise ValueError(f"basis {self.basis.shape} does not fit values "
                             f"{self.unit_values.shape}")
        for name, (_, values) in self.tables.items():
            if values.shape[1:] != (width,):
                raise ValueError(f"table {name!r} values {values.shape} need width {width}")
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
        return dataclasses.replace(self, kind=kind)

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
                    stored = self.tables[name][1][row]
                    out[i] = stored if self.basis is None else \
                        out[i] + stored.astype(np.float32) @ self.basis
                    break
        return out

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The tables as ``<prefix>_*`` arrays for an ``.npz`` file."""
        out = {f"{prefix}_unit_values": self.unit_values, f"{prefix}_kind": np.asarray(self.kind)}
        if self.basis is not None:
            out[f"{prefix}_basis"] = self.basis
        for name, (keys, values) in self.tables.items():
            out[f"{prefix}_{name}_keys"] = keys.astype(_key_dtype(self.num_units))
            out[f"{prefix}_{name}_values"] = values
        return out

    @staticmethod
    def array_names(prefix: str) -> list[str]:
        """Keys :meth:`arrays` always writes (``<prefix>_basis`` only for compact tables)."""
        return [f"{prefix}_unit_values", f"{prefix}_kind",
                *(f"{prefix}_{n}_{part}" for n in _TABLES for part in ("keys", "values"))]

    @classmethod
    def from_arrays(cls, data: Mapping[str, np.ndarray], prefix: str) -> "ContextModel":
        """Inverse of :meth:`arrays` (``KeyError`` for a missing array)."""
        unit_values = np.asarray(data[f"{prefix}_unit_values"], dtype=np.float32)
        basis = (np.asarray(data[f"{prefix}_basis"], dtype=np.float32)
                 if f"{prefix}_basis" in data else None)
        width = unit_values.shape[1] if basis is None else basis.shape[0]
        tables = {}
        for name, positions in _TABLES.items():
            values = np.asarray(data[f"{prefix}_{name}_values"])
            tables[name] = (np.asarray(data[f"{prefix}_{name}_keys"], np.int64).reshape(
                -1, len(positions)), values.reshape(-1, width))
        return cls(unit_values, tables, kind=str(np.asarray(data[f"{prefix}_kind"]).item()),
                   basis=basis)

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
    """Collects value sums per unit run; :meth:`finish` makes a model (vectorised group means).

    Args:
        num_units: K.
        width: D, the value size.
    """

    def __init__(self, num_units: int, width: int) -> None:
        self.num_units, self.width = num_units, width
        self._units: list[np.ndarray] = []
        self._sums: list[np.ndarray] = []
        self._weights: list[np.ndarray] = []

    def add(self, units: Sequence[int], value_sums: np.ndarray, weights: np.ndarray) -> None:
        """Add one utterance.

        Args:
            units: de-duplicated units, shape (U,).
            value_sums: (U, D) summed values of each run (e.g. the run's log-mel frames summed).
            weights: (U,) what each sum is divided by for a mean (e.g. the run length).
        """
        if len(units) == 0:
            return
        self._units.append(np.asarray(units, dtype=np.int64))
        # float32 per run halves the memory of a full corpus; the means are summed in float64.
        self._sums.append(np.asarray(value_sums, dtype=np.float32).reshape(len(units), -1))
        self._weights.append(np.asarray(weights, dtype=np.float64))

    def _contexts(self) -> np.ndarray:
        """(N, 3) (previous, unit, next) of every run added, ``EDGE`` at utterance edges."""
        units = np.concatenate(self._units)
        lengths = np.asarray([u.shape[0] for u in self._units])
        first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        previous, following = np.roll(units, 1), np.roll(units, -1)
        previous[first] = EDGE
        following[first + lengths - 1] = EDGE
        return np.stack([previous, units, following], axis=1)

    def finish(self, fallback: Optional[np.ndarray] = None, min_count: int = 2,
               kind: str = "context", rank: Optional[int] = None) -> ContextModel:
        """Means; units never seen take ``fallback`` ((K,) or (K, D); default zeros).

        Args:
            fallback: values of units never seen.
            min_count: fewest examples for a context mean to be kept.
            kind: the model's kind.
            rank: keep context residuals on this many principal directions, as float16
                (``None`` or >= D: full float32 values).
        """
        if fallback is None:
            values = np.zeros((self.num_units, self.width), dtype=np.float64)
        else:
            values = np.asarray(fallback, dtype=np.float64).reshape(self.num_units, -1).copy()
        empty = {name: (np.zeros((0, len(pos)), np.int64), np.zeros((0, self.width), np.float32))
                 for name, pos in _TABLES.items()}
        if not self._units:
            logger.info("context model: nothing to fit; fallback values only")
            return ContextModel(values.astype(np.float32), empty, kind=kind)
        contexts = self._contexts()
        sums, weights = np.concatenate(self._sums), np.concatenate(self._weights)
        seen, unit_means, _ = _group_means(contexts[:, [_UNIT_POSITION]], sums, weights)
        values[seen[:, 0]] = unit_means
        tables = {}
        for name, positions in _TABLES.items():
            keys, means, counts = _group_means(contexts[:, list(positions)], sums, weights)
            kept = counts >= min_count
            tables[name] = (keys[kept], means[kept].astype(np.float32))
        unit_values = values.astype(np.float32)
        basis = None
        if rank is not None and rank < self.width:
            tables, basis = _compact(tables, unit_values, rank)
        logger.info("context model: %d/%d units seen; contexts kept (min count %d): %s%s",
                    seen.shape[0], self.num_units, min_count,
                    {name: len(t[0]) for name, t in tables.items()},
                    "" if basis is None else f"; residual rank {basis.shape[0]}")
        return ContextModel(unit_values, tables, kind=kind, basis=basis)


def _compact(tables: dict[str, tuple[np.ndarray, np.ndarray]], unit_values: np.ndarray,
             rank: int) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Residuals from the unit's value, on their ``rank`` leading principal directions."""
    residuals = {name: values - unit_values[keys[:, positions.index(_UNIT_POSITION)]]
                 for (name, (keys, values)), positions in zip(tables.items(), _TABLES.values())}
    stacked = np.concatenate(list(residuals.values())).astype(np.float64)
    # Directions of the uncentred second moment: the residuals are deviations already.
    eigenvalues, eigenvectors = np.linalg.eigh(stacked.T @ stacked)
    rank = max(1, min(rank, stacked.shape[0]))  # at least one direction keeps shapes valid
    basis = eigenvectors[:, np.argsort(eigenvalues)[::-1][:rank]].T.astype(np.float32)
    return ({name: (tables[name][0], (residual @ basis.T).astype(np.float16))
             for name, residual in residuals.items()}, basis)
