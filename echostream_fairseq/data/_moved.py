"""Deprecated aliases for names that moved out of ``data/`` (removed in 0.2)."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Iterable


def moved_names(module: str, new_home: str, names: Iterable[str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` resolving ``names`` from ``new_home`` on first use.

    Lazy because each new home imports the old module, so importing it at load time would be
    circular.
    """
    moved = frozenset(names)

    def __getattr__(name: str) -> Any:
        if name in moved:
            return getattr(importlib.import_module(new_home), name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
