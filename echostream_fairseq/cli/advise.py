"""``echostream-advise``: how to restart training from a checkpoint: inspect it against the
current model and data.

Examples::

    echostream-advise --config configs/train/echostream_mini.yaml \\
        --checkpoint checkpoints_mini/checkpoint_last.pt \\
        --train-manifest data/train_sampled.units.tsv --dev-manifest data/dev_sampled.units.tsv

It reads the checkpoint (EchoStream, StreamSpeech, plain or bare state dict), builds the model the
config describes on the data, and prints which parameter groups load, which do not (shape, unit
vocabulary, spm size, Conformer encoder), whether the unit dictionary, spm models, manifests,
vocoder and a GPU are there, and then the recommended path -- evaluate, resume, decoders only or
from scratch -- with the reasons and the exact commands, starting with a backup of the old
checkpoint folder. Flags it does not know are model flags for fairseq (as in scripts/train.py).
Exit status: 0 advice printed, 2 the checkpoint or config cannot be read.
"""

import argparse
import datetime
import json
import shlex
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import yaml

from echostream_fairseq.checkpoint_safety import safe_torch_load
from echostream_fairseq.cli.common import (add_log_level_argument, add_run_manifest_arguments,
                                           run_main, setup_logging)
from echostream_fairseq.checkpoints import (
    DECODER_GROUPS, PartialLoadReport, plan_partial_load, read_model_state, vocabulary_sizes,
)
from echostream_fairseq.training import RecipeRun, build_task_and_model, load_recipe
from echostream_fairseq.vocoder import describe_vocoder

# The restart studies (docs/restarts.md): always load the decoders; freeze them first, with encoder
# lr > decoder lr, when they come from a long run, otherwise train everything at the recipe's lr.
FREEZE_UPDATES, ENCODER_LR_SCALE, DECODER_LR_SCALE = 100, 1.5, 0.5
# Decoders from a run this long are protected by the freeze (docs/restarts.md sections 4 and 5:
# measured better after 3,500 updates of training, worse after 200; the threshold lies between).
WELL_TRAINED_UPDATES = 1000
MEASURED = ("docs/restarts.md: with the old decoders loaded, dev loss after 400 updates was 4.0 "
            "lower than from scratch (decoders from a 3,500-update run); freezing them for 100 "
            "updates with encoder lr > decoder lr was 0.35 lower still, but 0.26 worse with "
            "decoders from a 200-update run")
UNIT_SPECIALS = 5  # fairseq's 4 specials + the CTC <blank>


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    a = parser.add_argument
    a("--config", type=Path, required=True, help="recipe YAML the next run will use")
    a("--checkpoint", type=Path, required=True, help="checkpoint to restart from")
    add_run_manifest_arguments(
        parser, save_dir_help="folder for a new run (default: beside the checkpoint's folder)")
    a("--json", action="store_true", help="print the findings as JSON instead of text")
    add_log_level_argument(parser, default="WARNING")
    return parser


def checkpoint_facts(path: Path) -> Dict[str, Any]:
    """Layout, arch, progress, optimizer and vocabulary of a checkpoint (raises
    CheckpointLoadError)."""
    weights, info = read_model_state(path)
    state = safe_torch_load(path)
    history = state.get("optimizer_history") or [{}]
    iterator = (state.get("extra_state") or {}).get("train_iterator") or {}
    vocab = vocabulary_sizes(weights)
    return {
        "path": str(path), "layout": info["layout"], "arch": info["arch"],
        "num_updates": info["num_updates"], "epoch": iterator.get("epoch"),
        "optimizer": (history[-1].get("optimizer_name") if state.get("last_optimizer_state")
                      else None),
        "unit_k": vocab["units"] - UNIT_SPECIALS if "units" in vocab else None,
        "vocabulary": vocab,
    }


def _multitask_dicts(data_dir: Path) -> List[Path]:
    config = data_dir / "config_mtl_asr_st_ctcst.yaml"
    if not config.is_file():
        return []
    entries = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    paths = {Path(str(entry["dict"])) for entry in entries.values()
             if isinstance(entry, dict) and "dict" in entry}
    return sorted(paths)


def data_facts(run: RecipeRun) -> Dict[str, Any]:
    """Manifests, YAMLs, spm models, unit K, vocoder and GPU, without building anything."""
    facts: Dict[str, Any] = {"problems": [], "warnings": [], "gpu": torch.cuda.is_available()}
    try:
        data_dir, _, _ = run.data_layout()
    except ValueError as error:
        facts["problems"].append(str(error))
        return facts
    facts["data_dir"] = str(data_dir)
    for name in ("config_gcmvn.yaml", "config_mtl_asr_st_ctcst.yaml"):
        if not (data_dir / name).is_file():
            facts["problems"].append(f"{data_dir / name}: missing (rebuild the corpus)")
    for dictionary in _multitask_dicts(data_dir):
        for needed in (dictionary, dictionary.with_suffix(".model")):
            if not needed.is_file():
                facts["problems"].append(f"spm file {needed}: missing")
    report = data_dir / "report.json"
    if report.is_file():
        facts["unit_k"] = (json.loads(report.read_text(encoding="utf-8"))
                           .get("units", {}).get("num_units"))
    gcmvn = data_dir / "config_gcmvn.yaml"
    try:
        facts["vocoder"], unusable = describe_vocoder(gcmvn if gcmvn.is_file() else {}, data_dir)
    except (ValueError, FileNotFoundError) as error:
        facts["vocoder"], unusable = f"unusable ({error})", [gcmvn]
    if unusable:
        # training does not need it, so it warns instead of blocking the comparison
        facts["warnings"].append(f"vocoder: {facts['vocoder']}: speech output and ASR-BLEU need it "
                                 "(scripts/fit_vocoder.py fits the embedded one)")
    return facts


def compare_with_model(
    run: RecipeRun, extra: Sequence[str], checkpoint: Path
) -> Tuple[PartialLoadReport, Dict[str, int]]:
    """Per-group loadability of ``checkpoint`` into the model the recipe builds, and its
    vocabularies."""
    _, _, model = build_task_and_model(run.fairseq_argv() + list(extra))
    state = model.state_dict()
    report, _ = plan_partial_load(state, checkpoint, load_encoder=True, load_decoders=True)
    return report, vocabulary_sizes(state)


def group_lines(report: PartialLoadReport, ours: Mapping[str, int],
                theirs: Mapping[str, int]) -> List[str]:
    lines = []
    for name, group in report.groups.items():
        total = len(group.loaded) + len(group.shape_mismatch) + len(group.missing)
        if group.loadable:
            lines.append(f"{name}: loads ({total} tensors)")
            continue
        why = [group.note] if group.note else []
        if group.shape_mismatch:
            key, found, expected = group.shape_mismatch[0]
            why.append(f"{len(group.shape_mismatch)} shape mismatches, "
                       f"e.g. {key} {list(found)} vs {list(expected)}")
        if group.missing and not group.note:
            why.append(f"{len(group.missing)} of {total} tensors missing")
        lines.append(f"{name}: does not load ({'; '.join(why)})")
    for vocab, size in sorted(ours.items()):
        if vocab in theirs and theirs[vocab] != size:
            label = "unit vocabulary (K+5)" if vocab == "units" else f"{vocab} size"
            lines.append(f"vocabulary: {label} is {theirs[vocab]} in the checkpoint, "
                         f"{size} in the model")
    return lines


def recommend(
    facts: Mapping[str, Any], report: Optional[PartialLoadReport], max_update: int
) -> Tuple[str, List[str]]:
    """``(path, reasons)``: evaluate, resume, decoders-only or from-scratch."""
    if report is None:
        return "fix-data", ["the model cannot be built from this config and data "
                            "(see problems above)"]
    encoder_ok = report.groups["encoder"].loadable
    decoders_ok = [g for g in DECODER_GROUPS if report.groups[g].loadable]
    if encoder_ok and len(decoders_ok) == len(DECODER_GROUPS) and facts["layout"] != "streamspeech":
        if facts["num_updates"] is not None and facts["num_updates"] >= max_update:
            return "evaluate", ["every group loads and training reached max_update "
                                f"({facts['num_updates']} >= {max_update})"]
        reasons = ["every parameter group loads unchanged (same architecture and vocabularies)"]
        if facts["optimizer"] != "EchoStreamAdam":
            reasons.append(f"its optimizer state ({facts['optimizer'] or 'none'}) "
                           "cannot be resumed: the weights are loaded into a fresh optimizer")
        return "resume", reasons
    if decoders_ok:
        left = [g for g in DECODER_GROUPS if g not in decoders_ok]
        why_not = report.groups["encoder"].note or "shape/keys differ"
        reasons = [f"the encoder does not load ({why_not})",
                   f"decoder groups that load: {', '.join(decoders_ok)}"]
        if left:
            reasons.append(f"left initialised (other vocabulary or shape): {', '.join(left)}")
        reasons.append(MEASURED)
        return "decoders-only", reasons
    return "from-scratch", ["neither the encoder nor any decoder group loads "
                            "(architecture or vocabularies differ)"]


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB"


def commands(path: str, opts: argparse.Namespace, extra: Sequence[str], lr: float, stamp: str,
             num_updates: Optional[int] = None, optimizer: Optional[str] = None) -> List[str]:
    """The backup of the checkpoint the next run builds on, then the command of the
    recommended path."""
    checkpoint = opts.checkpoint.resolve()
    old_dir = checkpoint.parent
    new_dir = opts.save_dir or old_dir.with_name(old_dir.name + "_restart")
    backup = (shlex.join(["cp", "-p", str(checkpoint), f"{checkpoint}.bak-{stamp}"])
              + f"   # {_size(checkpoint)}")
    train = ["python", "scripts/train.py", "--config", str(opts.config),
             "--train-manifest", str(opts.train_manifest),
             "--dev-manifest", str(opts.dev_manifest)]
    init = ["--save-dir", str(new_dir), "--init-from", str(opts.checkpoint)]
    if path == "evaluate":
        return [backup, f"# evaluate {opts.checkpoint} "
                        f"(e.g. scripts/evaluate.py --checkpoint {opts.checkpoint})"]
    if path == "resume":
        # a real resume: fairseq restores weights, update count and (same optimizer) its state
        target = opts.save_dir.resolve() if opts.save_dir else old_dir
        restore = ([] if checkpoint.name == "checkpoint_last.pt" and target == old_dir
                   else ["--restore-file", str(checkpoint)])
        reset = [] if optimizer == "EchoStreamAdam" else ["--reset-optimizer"]
        return [backup, shlex.join([*train, "--save-dir", str(target), *restore, *reset, *extra])]
    if path == "decoders-only":
        freeze = ["--freeze-decoders-updates", str(FREEZE_UPDATES), "--encoder-lr",
                  f"{lr * ENCODER_LR_SCALE:g}", "--decoder-lr", f"{lr * DECODER_LR_SCALE:g}"]
        plain = [*train, *init, "--no-load-encoder", "--load-decoders", *extra]
        if (num_updates or 0) >= WELL_TRAINED_UPDATES:
            return [backup, shlex.join([*plain, *freeze]),
                    f"# decoders from a run of {num_updates} updates: frozen first, so that "
                    "the new encoder's first updates do not damage them; for young decoders "
                    "drop: " + shlex.join(freeze)]
        return [backup, shlex.join(plain),
                "# to protect well-trained decoders from the new encoder's first updates, "
                "add: " + shlex.join(freeze)]
    if path == "from-scratch":
        return [backup, shlex.join([*train, "--save-dir", str(new_dir), *extra])]
    return [backup, "python scripts/prepare_mini.py --data-dir <data folder>   "
                    "# then run this advisor again"]


def advise(opts: argparse.Namespace, extra: Sequence[str]) -> Dict[str, Any]:
    recipe = load_recipe(opts.config)
    optimization = recipe.get("optimization") or {}
    max_update = int(optimization.get("max_update") or 0) or 10**12
    lr = float((optimization.get("lr") or [1e-3])[0])
    for flag, value in zip(extra, list(extra[1:]) + [""]):
        if flag == "--max-update":
            max_update = int(value)
    facts = checkpoint_facts(opts.checkpoint)
    # save_dir names the folder only: nothing is written
    run = RecipeRun(config=opts.config, train_manifest=opts.train_manifest,
                    dev_manifest=opts.dev_manifest, save_dir=opts.checkpoint.resolve().parent)
    data = data_facts(run)
    report, groups = None, []
    if not data["problems"]:
        report, ours = compare_with_model(run, extra, opts.checkpoint)
        groups = group_lines(report, ours, facts["vocabulary"])
        corpus_k, checkpoint_k = data.get("unit_k"), facts["unit_k"]
        if corpus_k is not None and checkpoint_k is not None and corpus_k != checkpoint_k:
            groups.append(f"unit dictionary: the checkpoint has K={checkpoint_k} units, "
                          f"the corpus K={corpus_k}")
    path, reasons = recommend(facts, report, max_update)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return {"checkpoint": facts, "data": data, "groups": groups, "recommendation": path,
            "reasons": reasons,
            "commands": commands(path, opts, extra, lr, stamp, facts["num_updates"],
                                 facts["optimizer"])}


def print_text(advice: Mapping[str, Any]) -> None:
    ckpt, data = advice["checkpoint"], advice["data"]
    print(f"checkpoint  {ckpt['path']}: {ckpt['layout']} layout, arch {ckpt['arch'] or 'unknown'}, "
          f"{ckpt['num_updates']} updates, epoch {ckpt['epoch']}, "
          f"optimizer state: {ckpt['optimizer'] or 'none'}")
    print(
        f"data        {data.get('data_dir', 'not found')}: unit K={data.get('unit_k')}, "
        f"{'no problems' if not data['problems'] else str(len(data['problems'])) + ' problem(s)'}")
    for problem in data["problems"]:
        print(f"  problem: {problem}")
    for warning in data["warnings"]:
        print(f"  warning: {warning}")
    gpu = "yes" if data["gpu"] else "none (trains on CPU)"
    print(f"environment GPU: {gpu}; vocoder: {data.get('vocoder', 'unknown')}")
    for line in advice["groups"]:
        print(f"  {line}")
    print(f"\nrecommended: {advice['recommendation'].upper()}")
    for reason in advice["reasons"]:
        print(f"  - {reason}")
    print("commands:")
    for command in advice["commands"]:
        print(f"  {command}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    opts, extra = build_parser().parse_known_args(argv)
    setup_logging(opts.log_level)

    def body() -> None:
        advice = advise(opts, extra)
        if opts.json:
            print(json.dumps(advice, indent=1, default=str))
        else:
            print_text(advice)

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
