"""What a report records of how it was made (every ``report.json`` and result summary).

Lives below the commands so that corpus building can record it too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

__all__ = ["provenance"]

_REPO = Path(__file__).resolve().parents[1]


def _git(*args: str) -> Optional[str]:
    try:
        done = subprocess.run(["git", "-C", str(_REPO), *args], capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def provenance(argv: Optional[Sequence[str]] = None,
               configs: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """What a report records of how it was made: the git commit of the code, whether the tree
    had uncommitted changes (tracked files), the command line and the configs used."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {
        "git_commit": commit,
        "git_dirty": None if status is None else bool(status),
        "argv": [os.path.basename(sys.argv[0]), *(sys.argv[1:] if argv is None else argv)],
        "configs": configs or {},
    }
