"""Helpers for tests that drive the real ``fairseq-train`` on a StreamSpeech-layout corpus."""

import importlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import torch

from echostream_fairseq.training_logs import json_records

REPO = Path(__file__).resolve().parents[1]
USER_DIR = REPO / "echostream_fairseq"
FAIRSEQ_TRAIN = str(Path(sys.executable).with_name("fairseq-train"))
GCMVN_YAML = "config_gcmvn.yaml"
MULTITASK_YAML = "config_mtl_asr_st_ctcst.yaml"
TRAIN_SPLIT = "train_sampled.units"
DEV_SPLIT = "dev_sampled.units"

# A model small enough for a few CPU updates in seconds; every option is a real CLI flag.
TINY_MODEL: Tuple[str, ...] = (
    "--encoder-layers", "2", "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
    "--encoder-attention-heads", "2", "--conv-channels", "32",
    "--translation-decoder-layers", "1", "--synthesizer-encoder-layers", "1",
    "--decoder-layers", "1", "--decoder-embed-dim", "32", "--decoder-ffn-embed-dim", "64",
    "--decoder-attention-heads", "2",
)


def corpus_dir(fixture: Any) -> Path:
    """The data folder of the ``tiny_corpus`` fixture (a path, or an object holding one)."""
    if isinstance(fixture, (str, os.PathLike)):
        return Path(fixture)
    for attr in ("data_dir", "root", "path"):
        if hasattr(fixture, attr):
            return Path(getattr(fixture, attr))
    return Path(fixture)


def code_size(data_dir: Path) -> int:
    """K for ``--target-code-size``: the corpus report's, else 1 + the largest unit used."""
    report = data_dir / "report.json"
    if report.is_file():
        units = json.loads(report.read_text()).get("units", {})
        if "num_units" in units:
            return int(units["num_units"])
    largest = 0
    for manifest in data_dir.glob("*.tsv"):
        lines = manifest.read_text().splitlines()
        column = lines[0].split("\t").index("tgt_audio")
        for line in lines[1:]:
            units = line.split("\t")[column].split()
            largest = max([largest] + [int(u) for u in units])
    return largest + 1


def data_args(data_dir: Path, save_dir: Path) -> List[str]:
    """Data, task and criterion flags as StreamSpeech's recipe passes them."""
    return [
        str(data_dir), "--user-dir", str(USER_DIR),
        "--config-yaml", GCMVN_YAML, "--multitask-config-yaml", MULTITASK_YAML,
        "--task", "speech_to_speech_ctc", "--target-is-code",
        "--target-code-size", str(code_size(data_dir)),
        "--criterion", "speech_to_unit_2pass_ctc_asr_st",
        "--train-subset", TRAIN_SPLIT, "--valid-subset", DEV_SPLIT, "--save-dir", str(save_dir),
    ]


# scripts/<name>.py wrappers whose command module has another name
_SCRIPT_MODULES = {"restart_advisor": "advise", "results_table": "results"}


def load_script(name: str) -> Any:
    """The command behind ``scripts/<name>.py`` (``echostream_fairseq.cli.<module>``), so a test
    can call its ``main(argv)`` in-process (a subprocess spends most of its time importing
    torch)."""
    return importlib.import_module(f"echostream_fairseq.cli.{_SCRIPT_MODULES.get(name, name)}")


def run_fairseq_train(args: Sequence[str], timeout: int = 240) -> subprocess.CompletedProcess:
    """Runs ``fairseq-train`` with one thread (the machine is shared); output captured as text."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run(
        [FAIRSEQ_TRAIN, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO
    )


def json_logs(output: str, tag: str) -> List[Dict[str, float]]:
    """The ``--log-format json`` records fairseq printed under ``| <tag> |`` (values as floats,
    the validation subset prefix removed from the keys)."""
    return json_records(output, tag)


def tail(output: str, lines: int = 40) -> str:
    return "\n".join(output.splitlines()[-lines:])


def train_tiny_checkpoint(data: Path, save: Path) -> Path:
    """A tiny echostream_mini trained for 2 updates with the real fairseq-train (~15 s)."""
    args = data_args(data, save) + [
        "--arch", "echostream_mini", *TINY_MODEL, "--uni-encoder", "--ctc-upsample-rate", "10",
        "--k1", "0", "--k2", "0", "--n1", "1", "--n2", "-1", "--label-smoothing", "0.1",
        "--optimizer", "adam", "--lr", "0.002", "--max-tokens", "100000",
        "--required-batch-size-multiple", "1", "--max-update", "2", "--no-epoch-checkpoints",
        "--disable-validation", "--no-progress-bar", "--dropout", "0.0", "--seed", "1", "--cpu",
        "--num-workers", "0",
    ]
    result = run_fairseq_train(args)
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    return save / "checkpoint_last.pt"


def randomise_checkpoint(checkpoint: Path, scale: float = 0.5) -> Path:
    """Add seeded noise to every weight, so that a 2-update model writes non-trivial text and
    units instead of ``</s>`` and blanks; returns the new checkpoint's path."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    generator = torch.Generator().manual_seed(0)
    for name, tensor in state["model"].items():
        if tensor.is_floating_point():
            state["model"][name] = tensor + torch.randn(tensor.shape, generator=generator) * scale
    out = checkpoint.with_name("checkpoint_randomised.pt")
    torch.save(state, out)
    return out


def make_talkative(checkpoint: Path) -> Path:
    """A copy of a (randomised) checkpoint that writes on any input: no head ever picks a
    special symbol (``<s>`` = CTC blank, ``<pad>``, ``</s>``, ``<unk>``) or the unit blank, so the
    ASR and ST CTC prefixes grow (the policy writes only when both do), the MT decoder writes
    real subwords up to its length cap and the unit CTC writes units.

    A randomised model's output depends on the corpus it was trained on. Builds were noisy
    (piper sampled noise) until 2026-12, and with some of them a CTC head stayed blank for the
    whole of a 60 s stream, or the MT decoder wrote only ``<unk>``. Builds are deterministic now,
    but kept this way on purpose: whether a random 2-update model writes is still luck (of its
    initialisation, and of another CPU's float kernels on the same corpus), and the tests that use
    it assert what the pipeline does with output, not that a random model makes some. Those
    symbols get a very low bias, or a zero weight row where the projection has no bias (a zero
    logit, below the largest of ~100 random logits).
    """
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model = state["model"]
    specials = [0, 1, 2, 3]  # fairseq dictionaries: <s> (the text CTC blank), <pad>, </s>, <unk>
    for ctc_head in ("source_unigram_decoder", "ctc_target_unigram_decoder"):
        model[f"{ctc_head}.proj.bias"][specials] = -1e4
    model["target_unigram_decoder.output_projection.weight"][specials] = 0.0
    unit_blank = model["decoder.output_projection.weight"].shape[0] - 1  # blank is added last
    model["decoder.output_projection.weight"][specials + [unit_blank]] = 0.0
    out = checkpoint.with_name("checkpoint_talkative.pt")
    torch.save(state, out)
    return out


def load_file_module(path: Path, name: str) -> Any:
    """A ``.py`` file outside the package (a bench, the example, a script) imported as module
    ``name``, registered in ``sys.modules`` (dataclasses look their module up there)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class RunsShellOnUnpickle:
    """A pickle payload: unpickling it runs ``touch marker``, so a test sees whether it ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))
