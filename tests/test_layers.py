"""The dependency rule: lower layers never import upper ones.

Every module of the lower packages (and the lower top-level modules) is parsed with ``ast``; an
import of ``echostream_fairseq.{streaming,evaluation,agents,server,cli}`` anywhere in it
(absolute or relative, at module level or inside a function) fails the test, naming file:line.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "echostream_fairseq"
LOWER_PACKAGES = ("models", "data", "corpus", "decoding", "optim", "compat", "vocoder", "scoring",
                  "tasks", "criterions")
LOWER_MODULES = ("checkpoints.py", "checkpoint_safety.py", "errors.py", "provenance.py",
                 "training.py", "training_logs.py", "generation.py", "shipped.py")
UPPER = ("streaming", "evaluation", "agents", "server", "cli")
_IMPORTERS = ("import_module", "__import__")


def _lower_files() -> List[Path]:
    files = [PACKAGE_DIR / name for name in LOWER_MODULES]
    for package in LOWER_PACKAGES:
        files += sorted((PACKAGE_DIR / package).rglob("*.py"))
    return files


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module an ``ImportFrom`` reads from (``from ..x import y`` included)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imported_modules(source: str, module: str,
                     is_package: bool = False) -> Iterator[Tuple[int, str]]:
    """``(line, module)`` of every import in ``source``, anywhere in the tree; for
    ``from a import b`` both ``a`` and ``a.b`` (``b`` may be a submodule)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args and _importer(node.func):
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, first.value


def _importer(func: ast.expr) -> bool:
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return name in _IMPORTERS


def upper_layer(module: str) -> Optional[str]:
    """The upper package ``module`` belongs to, or ``None``."""
    for name in UPPER:
        prefix = f"echostream_fairseq.{name}"
        if module == prefix or module.startswith(prefix + "."):
            return name
    return None


def violations(path: Path) -> List[str]:
    module = _module_name(path)
    found = []
    for line, imported in imported_modules(path.read_text(encoding="utf-8"), module,
                                           path.name == "__init__.py"):
        if upper_layer(imported):
            found.append(f"{path.relative_to(PACKAGE_DIR.parent)}:{line}: imports {imported}")
    return sorted(set(found))


def test_every_lower_layer_file_exists():
    files = _lower_files()
    assert all(path.is_file() for path in files)
    assert len(files) > len(LOWER_MODULES) + len(LOWER_PACKAGES)


@pytest.mark.parametrize("path", _lower_files(), ids=lambda p: str(p.relative_to(PACKAGE_DIR)))
def test_lower_layers_never_import_streaming_evaluation_agents_server_or_cli(path):
    assert violations(path) == []


@pytest.mark.parametrize("source", [
    "import echostream_fairseq.streaming.units",
    "from echostream_fairseq.cli.common import run_main",
    "from echostream_fairseq import evaluation",
    "def f():\n    from ..streaming import pipeline\n",
    "from ..agents.base import EchoStreamAgentBase",
    "import importlib\nimportlib.import_module('echostream_fairseq.server')",
])
def test_the_rule_catches_every_import_form(source):
    imported = [name for _, name in imported_modules(source, "echostream_fairseq.models.state")]
    assert any(upper_layer(name) for name in imported), imported


@pytest.mark.parametrize("source", [
    "from echostream_fairseq.decoding.ctc import CtcCollapser",
    "from . import streaming_helpers",  # a sibling whose name starts like an upper package
    "from .state import EncoderState",
])
def test_the_rule_allows_lower_and_sibling_imports(source):
    imported = [name for _, name in imported_modules(source, "echostream_fairseq.models.state")]
    assert not any(upper_layer(name) for name in imported), imported
