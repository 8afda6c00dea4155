"""Shared pytest fixtures: the tiny German->English corpus.

``tiny_corpus`` runs the real builder (``scripts/prepare_mini.py --max-pairs 20``) once per test
session and returns its data dir, laid out as StreamSpeech's (see
``echostream_fairseq/data/build.py``): ``train_sampled.units.tsv`` (18 pairs),
``dev_sampled.units.tsv`` and ``test_sampled.tsv`` (1 each), ``config_gcmvn.yaml``,
``config_mtl_asr_st_ctcst.yaml``, ``units/unit_model.npz`` (K in ``report.json`` under
``units.num_units``; pass it as ``--target-code-size``).

Set ``ECHOSTREAM_TINY_CORPUS=/some/dir`` to build into (and on later sessions resume from) a
fixed folder instead of a fresh temporary one.

Tiers: a test that uses the corpus (any fixture below) is marked ``corpus`` here; a test that
runs a subprocess is marked in its module. ``pytest -m "not corpus"`` is the fast tier
(``make test-fast``), the whole suite the full one (``make test``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PREPARE_MINI = REPO_ROOT / "scripts" / "prepare_mini.py"
TINY_PAIRS = 20
TINY_SEED = 1
# log-mel units, pinned: they exercise the k-means, the unit model and the embedded vocoder; the
# builder's default (piper phonemes) is the tiny corpus rebuilt from stage 5 in
# test_piper_phonemes.py (a later --unit-type in ``extra`` wins)
TINY_UNITS = ("--unit-type", "logmel")
# A cold build takes ~40 s on 2 idle cores; the margin is for shared, busy machines.
_BUILD_TIMEOUT_S = 900


def _run_prepare_mini(data_dir: Path, *extra: str,
                      units: tuple[str, ...] = TINY_UNITS) -> subprocess.CompletedProcess:
    """Run the corpus builder CLI on ``data_dir``; raise with its log tail if it fails.
    ``units=()`` leaves the unit type to the CLI's own default."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep)
    cmd = [sys.executable, str(PREPARE_MINI), "--data-dir", str(data_dir),
           "--max-pairs", str(TINY_PAIRS), "--seed", str(TINY_SEED), *units, *extra]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=_BUILD_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                           f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


# fixtures that build or read the tiny corpus, or run fairseq in a subprocess (test modules'
# own, by name): their tests belong to the full tier
CORPUS_FIXTURES = frozenset({"prepare_mini", "tiny_corpus", "tiny_num_units", "tiny_checkpoint",
                             "talkative_checkpoint", "fairseq_checkpoint"})


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    for item in items:
        if CORPUS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.corpus)


@pytest.fixture(scope="session")
def prepare_mini() -> Callable[..., subprocess.CompletedProcess]:
    """``prepare_mini(data_dir, *extra_flags, units=...)``: run the builder with the tiny-corpus
    flags."""
    return _run_prepare_mini


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data dir of a 20-pair corpus built once per session by ``scripts/prepare_mini.py``."""
    fixed = os.environ.get("ECHOSTREAM_TINY_CORPUS")
    data_dir = Path(fixed) if fixed else tmp_path_factory.mktemp("tiny_corpus") / "data"
    _run_prepare_mini(data_dir)
    report = json.loads((data_dir / "report.json").read_text(encoding="utf-8"))
    assert report["splits"]["all"]["pairs"] == TINY_PAIRS, report["splits"]
    return data_dir


@pytest.fixture(scope="session")
def tiny_num_units(tiny_corpus: Path) -> int:
    """Unit vocabulary K of the tiny corpus (``--target-code-size``)."""
    report = json.loads((tiny_corpus / "report.json").read_text(encoding="utf-8"))
    return int(report["units"]["num_units"])


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ``echostream_mini`` trained 2 updates by the real fairseq-train on the tiny corpus,
    then randomised so that it writes text and units; trained once per session."""
    from _fairseq_cli import corpus_dir, randomise_checkpoint, train_tiny_checkpoint

    trained = train_tiny_checkpoint(corpus_dir(tiny_corpus), tmp_path_factory.mktemp("ckpt"))
    return randomise_checkpoint(trained)


@pytest.fixture(scope="session")
def talkative_checkpoint(tiny_checkpoint: Path) -> Path:
    """``tiny_checkpoint`` made to write text and speech on any input (never a CTC blank or an
    early ``</s>``), for tests that need output. Kept although builds are now deterministic:
    whether a randomised model writes anything on a sentence still hangs on float kernels
    (another CPU, another torch build), so a test that needs output must not depend on it."""
    from _fairseq_cli import make_talkative

    return make_talkative(tiny_checkpoint)


@pytest.fixture(scope="session")
def talkative_engine(tiny_corpus: Path, talkative_checkpoint: Path):
    """A :class:`StreamingS2ST` on the talkative checkpoint, speech on, sentences of at most
    1.2 s (so that short inputs have several): the server's and the page's tests share it."""
    import torch

    from _fairseq_cli import corpus_dir
    from echostream_fairseq.streaming import PipelineConfig, StreamingS2ST

    torch.set_num_threads(1)
    return StreamingS2ST.from_checkpoint(str(talkative_checkpoint), str(corpus_dir(tiny_corpus)),
                                         PipelineConfig(max_sentence_ms=1200))
