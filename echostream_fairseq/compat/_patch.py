"""What every compat module shares: the patch record, the marker on patched objects, and the
version guard."""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Set, Tuple

__all__ = ["CompatVersionWarning", "MARKER", "Patch", "check_version", "is_marked", "mark",
           "resolve"]

#: attribute set on every replacement object, so ``install()`` can tell it already ran
MARKER = "__echostream_patched__"

_warned: Set[Tuple[str, str]] = set()


class CompatVersionWarning(UserWarning):
    """The installed version of a patched library is not the one the patch was written for."""


@dataclass(frozen=True)
class Patch:
    """One change EchoStream makes to a third-party library.

    Attributes:
        target: dotted name of what is replaced or changed
            (``fairseq.checkpoint_utils.load_checkpoint_to_cpu``).
        library: the distribution name on the package registry (``ve-fairseq``).
        pinned: the version the patch was written and tested against.
        reason: what upstream does wrong, and where (upstream issue or source location).
        installed: whether the patch is in effect in this process.
    """

    target: str
    library: str
    pinned: str
    reason: str
    installed: Callable[[], bool] = field(compare=False, repr=False)


def mark(obj: Any) -> Any:
    """Tag a replacement function or class as EchoStream's (returns it)."""
    setattr(obj, MARKER, True)
    return obj


def is_marked(obj: Any) -> bool:
    return bool(getattr(obj, MARKER, False))


def resolve(target: str) -> Any:
    """The object a dotted name denotes, or ``None`` while its module is not imported (asking
    whether a patch is installed must not import the library it patches)."""
    parts = target.split(".")
    for split in range(len(parts), 0, -1):
        obj = sys.modules.get(".".join(parts[:split]))
        if obj is None:
            continue
        for name in parts[split:]:
            obj = getattr(obj, name, None)
        return obj
    return None


def _release(version: str) -> str:
    # torch reports local builds as 2.11.0+cpu / +cu128: the patches depend on the release only
    return version.split("+", 1)[0]


def check_version(library: str, installed: str, pinned: str) -> bool:
    """Whether ``installed`` is the ``pinned`` release; warns once per library and version if not.

    A different version may have fixed the upstream bug (the patch is then redundant) or moved
    the patched code (the patch may then break it), so the patch is still applied, loudly.
    """
    if _release(installed) == _release(pinned):
        return True
    if (library, installed) not in _warned:
        _warned.add((library, installed))
        warnings.warn(
            f"{library} {installed} is installed but EchoStream's patches of it were written for "
            f"{pinned} (see docs/compat.md): check that each still applies", CompatVersionWarning,
            stacklevel=2)
    return False
