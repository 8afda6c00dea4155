"""compat: every third-party patch is listed, installed by the package import (SimulEval's only
by ``install_simuleval``), applied once however often ``install`` runs, and version-guarded."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import echostream_fairseq  # noqa: F401  (installs the torch, fairseq and logging patches)
from echostream_fairseq import compat
from echostream_fairseq.compat._patch import is_marked, resolve

PINS = {"torch": "2.11.0", "ve-fairseq": "0.12.3", "simuleval": "1.1.4"}
PATCHED = {
    "logging.root",
    "torch.serialization.get_safe_globals",
    "fairseq.checkpoint_utils.load_checkpoint_to_cpu",
    "fairseq.checkpoint_utils.load_model_ensemble_and_task",
    "fairseq.checkpoint_utils.load_checkpoint",
    "fairseq.checkpoint_utils._upgrade_state_dict",
    "fairseq.checkpoint_utils.PathManager",
    "fairseq.data.iterators.EpochBatchIterator.state_dict",
    "fairseq.data.iterators.EpochBatchIterator.load_state_dict",
    "fairseq.logging.progress_bar.progress_bar",
    "simuleval.evaluator.instance.SpeechOutputInstance.summarize",
    "simuleval.evaluator.scorers.latency_scorer.LatencyScorer.from_args",
}

# A fresh interpreter: whether a patch is in place right after `import echostream_fairseq`, and
# after install_simuleval(); other tests of this session may have installed SimulEval's already.
_FRESH_PROCESS = """
import json
import echostream_fairseq
from echostream_fairseq import compat
state = lambda: {p.target: p.installed() for p in compat.PATCHES}
after_import = state()
compat.install_simuleval()
print(json.dumps([after_import, state()]))
"""


def test_patches_list_each_patched_symbol_with_its_library_pin_and_reason():
    targets = [p.target for p in compat.PATCHES]
    assert len(targets) == len(set(targets)) and set(targets) == PATCHED
    for patch in compat.PATCHES:
        assert PINS[patch.library] == patch.pinned, patch
        assert len(patch.reason) > 40, patch


def test_package_import_installs_every_patch_but_simulevals_which_install_simuleval_adds():
    out = subprocess.run([sys.executable, "-c", _FRESH_PROCESS], capture_output=True, text=True,
                         check=True, timeout=300)
    after_import, after_simuleval = json.loads(out.stdout.splitlines()[-1])
    simuleval = {p.target for p in compat.PATCHES if p.library == "simuleval"}
    assert simuleval
    assert {t for t, on in after_import.items() if not on} == simuleval
    assert all(after_simuleval.values()), after_simuleval


def test_patched_objects_are_echostreams_wrappers_of_the_originals():
    compat.install_simuleval()
    for patch in compat.PATCHES:
        assert patch.installed(), patch.target
    wrapped = [t for t in PATCHED if t.startswith(("fairseq.", "simuleval.")) and
               not t.endswith("PathManager")]
    for target in wrapped:
        original = resolve(target).__wrapped__  # functools.wraps keeps upstream's function
        assert not is_marked(original), target
    assert not is_marked(resolve("fairseq.checkpoint_utils.PathManager").__mro__[1])


def test_install_twice_is_a_no_op():
    compat.install()
    compat.install_simuleval()
    before = {t: resolve(t) for t in PATCHED}
    safe_globals = len(resolve("torch.serialization.get_safe_globals")())
    compat.install()
    compat.install_simuleval()
    assert {t: resolve(t) for t in PATCHED} == before
    assert len(resolve("torch.serialization.get_safe_globals")()) == safe_globals


def test_old_install_functions_still_install_through_compat():
    from echostream_fairseq import checkpoint_safety, checkpoints, training_logs

    before = {t: resolve(t) for t in PATCHED}
    for old in (checkpoint_safety.install, checkpoints.install, training_logs.install):
        old()
    assert {t: resolve(t) for t in PATCHED} == before


def test_version_guard_warns_once_for_a_different_version_and_never_for_the_pin():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert compat.check_version("guard-test-lib", "2.11.0+cu130", "2.11.0")
        assert not compat.check_version("guard-test-lib", "0.13.0", "0.12.3")
        assert not compat.check_version("guard-test-lib", "0.13.0", "0.12.3")
    assert len(caught) == 1
    assert issubclass(caught[0].category, compat.CompatVersionWarning)
    assert "guard-test-lib 0.13.0" in str(caught[0].message) and "0.12.3" in str(caught[0].message)


def test_installed_versions_are_the_pinned_ones():
    with warnings.catch_warnings():
        warnings.simplefilter("error", compat.CompatVersionWarning)
        compat.install()
        compat.install_simuleval()


@pytest.mark.parametrize("target", sorted(PATCHED))
def test_every_patch_is_explained_in_docs_compat(target):
    doc = Path(__file__).resolve().parents[1] / "docs" / "compat.md"
    assert f"`{target}`" in doc.read_text(encoding="utf-8")
