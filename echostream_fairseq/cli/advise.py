"""``echostream-advise``: how to restart training from a checkpoint: inspect it against the
current model and data.

Examples::

    echostream-advise --config configs/train/echostream_mini.yaml \\
        --checkpoint checkpoints_mini/checkpoint_last.pt \\
        --train-manifest data/train_sampled.units.tsv --dev-manifest data/dev_sampled.units.tsv

It reads the checkpoint (EchoStream, StreamSpeech, plain or bare state dict) and the settings that
shape its decoders (sizes and layer counts from the weights; attention heads, unit upsample rate
and causal T2U from its cfg), builds the model the config describes on the data with those
settings, and prints which parameter groups load, which tensors are re-initialised (shape, unit
vocabulary, spm size, Conformer encoder), whether the unit dictionary, spm models, manifests,
vocoder and a GPU are there, and then the recommended path -- evaluate, resume, decoders only,
partial (encoder and whatever fits) or from scratch -- with the reasons and the exact commands,
starting with a backup of the checkpoint file the next run builds on. Flags it does not know are
model flags for fairseq (as in scripts/train.py).
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
from echostream_fairseq.data.manifests import MULTITASK_YAML, read_tsv
from echostream_fairseq.data.text import parse_units
from echostream_fairseq.training import (RecipeRun, build_task_and_model, load_recipe,
                                         parse_fairseq_args)
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
# Model settings that shape the decoders and the encoder output they read, as (model arg, flag).
# A checkpoint records them in cfg["model"]; its weights show the sizes and layer counts too (and
# win where both do), but not the attention heads or the unit upsample rate.
DECODER_SETTINGS: Tuple[Tuple[str, str], ...] = (
    ("encoder_embed_dim", "--encoder-embed-dim"),
    ("decoder_embed_dim", "--decoder-embed-dim"),
    ("decoder_ffn_embed_dim", "--decoder-ffn-embed-dim"),
    ("decoder_layers", "--decoder-layers"),
    ("decoder_attention_heads", "--decoder-attention-heads"),
    ("translation_decoder_layers", "--translation-decoder-layers"),
    ("synthesizer_encoder_layers", "--synthesizer-encoder-layers"),
    ("ctc_upsample_rate", "--ctc-upsample-rate"),
)
MT_FFN_KEY = "target_unigram_decoder.layers.0.fc1.weight"


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


def _layer_count(weights: Mapping[str, torch.Tensor], prefix: str) -> Optional[int]:
    numbers = {int(rest.split(".", 1)[0]) for rest in
               (key[len(prefix):] for key in weights if key.startswith(prefix))
               if rest.split(".", 1)[0].isdigit()}
    return max(numbers) + 1 if numbers else None


def settings_in_weights(weights: Mapping[str, torch.Tensor]) -> Dict[str, int]:
    """The :data:`DECODER_SETTINGS` that tensor shapes and layer names show."""
    def dim(key: str, axis: int) -> Optional[int]:
        return int(weights[key].shape[axis]) if key in weights else None

    found = {
        "encoder_embed_dim": dim("source_unigram_decoder.proj.weight", 1),
        "decoder_embed_dim": dim("decoder.embed_tokens.weight", 1),
        "decoder_ffn_embed_dim": dim("decoder.layers.0.fc1.weight", 0),
        "decoder_layers": _layer_count(weights, "decoder.layers."),
        "translation_decoder_layers": _layer_count(weights, "target_unigram_decoder.layers."),
        "synthesizer_encoder_layers": _layer_count(weights, "synthesizer_encoder.layers."),
    }
    return {name: value for name, value in found.items() if value is not None}


def _recorded(holder: Any, name: str) -> Any:
    return holder.get(name) if isinstance(holder, Mapping) else getattr(holder, name, None)


def checkpoint_settings(state: Mapping[str, Any], weights: Mapping[str, torch.Tensor]
                        ) -> Dict[str, Dict[str, Any]]:
    """``{model arg: {"value", "source"}}`` for :data:`DECODER_SETTINGS`, ``uni_encoder`` and the
    unit count ``target_code_size``: from the weights where they show it, else the cfg."""
    cfg = state.get("cfg") or {}
    model_cfg = _recorded(cfg, "model") or state.get("args")
    task_cfg = _recorded(cfg, "task") or state.get("args")
    settings = {}
    for name in [n for n, _ in DECODER_SETTINGS] + ["uni_encoder"]:
        value = _recorded(model_cfg, name) if model_cfg is not None else None
        if value is not None:
            settings[name] = {"value": value, "source": "cfg"}
    for name, value in settings_in_weights(weights).items():
        settings[name] = {"value": value, "source": "weights"}
    units = vocabulary_sizes(weights).get("units")
    if units is not None:
        settings["target_code_size"] = {"value": units - UNIT_SPECIALS, "source": "weights"}
    elif task_cfg is not None and _recorded(task_cfg, "target_code_size"):
        settings["target_code_size"] = {"value": int(_recorded(task_cfg, "target_code_size")),
                                        "source": "cfg"}
    if MT_FFN_KEY in weights:
        settings["mt_decoder_ffn_embed_dim"] = {"value": int(weights[MT_FFN_KEY].shape[0]),
                                                "source": "weights"}
    return settings


def checkpoint_facts(path: Path) -> Dict[str, Any]:
    """Layout, arch, progress, optimizer, vocabulary and model settings of a checkpoint (raises
    CheckpointLoadError)."""
    weights, info = read_model_state(path)
    state = safe_torch_load(path)
    if not isinstance(state, Mapping) or "model" not in state:
        state = {}  # a bare state dict: the weights are all there is
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
        "settings": checkpoint_settings(state, weights),
    }


def _multitask_dicts(data_dir: Path) -> List[Path]:
    config = data_dir / MULTITASK_YAML
    if not config.is_file():
        return []
    entries = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    paths = {Path(str(entry["dict"])) for entry in entries.values()
             if isinstance(entry, dict) and "dict" in entry}
    return sorted(paths)


def _largest_unit(manifest: Path) -> Optional[int]:
    units = [max(parse_units(row["tgt_audio"]), default=-1) for row in read_tsv(manifest)
             if "tgt_audio" in row]
    return max(units) if units and max(units) >= 0 else None


def _mt_ffn_of_yaml(data_dir: Path) -> Optional[int]:
    """FFN size of the MT decoder: the multitask YAML's, not a model flag (StreamSpeech's rule)."""
    config = data_dir / MULTITASK_YAML
    if not config.is_file():
        return None
    entries = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    for name, entry in entries.items():
        if str(name).startswith("target") and isinstance(entry, dict) \
                and entry.get("decoder_type") == "transformer":
            return (entry.get("decoder_args") or {}).get("decoder_ffn_embed_dim")
    return None


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
    else:  # StreamSpeech's layout has no report: the units say how many there are at least
        facts["largest_unit"] = _largest_unit(run.train_manifest)
    facts["mt_decoder_ffn_embed_dim"] = _mt_ffn_of_yaml(data_dir)
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


def fitting_flags(settings: Mapping[str, Mapping[str, Any]], recipe_model: Any,
                  recipe_code_size: int, data: Mapping[str, Any]
                  ) -> Tuple[List[str], List[str], List[str]]:
    """``(flags, lines, notes)``: the options that give the new model the checkpoint's decoder
    shapes (its upsample rate and causal T2U encoder too) and the data's unit count, a line per
    option saying where its value came from, and what no option can change."""
    flags: List[str] = []
    lines: List[str] = []
    notes: List[str] = []
    for name, flag in DECODER_SETTINGS:
        found, ours = settings.get(name), getattr(recipe_model, name, None)
        if found is not None and ours is not None and int(found["value"]) != int(ours):
            flags += [flag, str(int(found["value"]))]
            lines.append(f"{flag} {int(found['value'])} (checkpoint {found['source']}; "
                         f"the recipe has {ours})")
    causal = settings.get("uni_encoder")
    if causal is not None and bool(causal["value"]) and not getattr(recipe_model, "uni_encoder"):
        flags.append("--uni-encoder")
        lines.append("--uni-encoder (checkpoint cfg: its T2U encoder is causal)")
    for name in ("decoder_attention_heads", "ctc_upsample_rate"):
        if flags and name not in settings:  # only matters for decoders of another shape
            notes.append(f"{name}: not recorded in the checkpoint (its cfg is missing), the "
                         f"recipe's {getattr(recipe_model, name, None)} is used")
    # the unit count the data needs: the corpus report's K; without a report (StreamSpeech's
    # layout) the checkpoint's K when every unit of the data is below it, else the largest + 1
    theirs = (settings.get("target_code_size") or {}).get("value")
    needed = data.get("unit_k")
    if needed is None and data.get("largest_unit") is not None:
        largest = data["largest_unit"]
        needed = theirs if theirs is not None and largest < theirs else largest + 1
    if needed is not None and int(needed) != int(recipe_code_size):
        flags += ["--target-code-size", str(int(needed))]
        lines.append(f"--target-code-size {int(needed)} (the data's units; the recipe "
                     f"has {recipe_code_size})")
    mt_ffn, yaml_ffn = settings.get("mt_decoder_ffn_embed_dim"), data.get(
        "mt_decoder_ffn_embed_dim")
    if mt_ffn is not None and yaml_ffn is not None and int(mt_ffn["value"]) != int(yaml_ffn):
        notes.append(f"mt_decoder: FFN {mt_ffn['value']} in the checkpoint, {yaml_ffn} in the "
                     f"data's {MULTITASK_YAML}: set target_unigram's "
                     f"decoder_args.decoder_ffn_embed_dim to {mt_ffn['value']} there to load "
                     "its layers (no model option sets it)")
    return flags, lines, notes


def _with_flags(argv: Sequence[str], flags: Sequence[str]) -> List[str]:
    """``argv`` with each ``--flag value`` (or bare ``--flag``) of ``flags`` set: a value given
    in ``argv`` is replaced in place, so the printed command holds each option once."""
    out = list(argv)
    i = 0
    while i < len(flags):
        flag = flags[i]
        has_value = i + 1 < len(flags) and not flags[i + 1].startswith("--")
        if flag in out:
            if has_value:
                out[out.index(flag) + 1] = flags[i + 1]
        else:
            out += [flag, flags[i + 1]] if has_value else [flag]
        i += 2 if has_value else 1
    return out


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


def _reinitialised(report: PartialLoadReport, names: Sequence[str]) -> List[str]:
    lines = []
    for name in names:
        group = report.groups[name]
        left = len(group.shape_mismatch) + len(group.missing)
        if group.loadable or left == 0:
            continue
        total = left + len(group.loaded)
        example = ""
        if group.shape_mismatch:
            key, found, expected = group.shape_mismatch[0]
            example = f", e.g. {key} {list(found)} in the checkpoint, {list(expected)} here"
        lines.append(f"re-initialised: {name}, {left} of {total} tensors{example}")
    return lines


def recommend(
    facts: Mapping[str, Any], report: Optional[PartialLoadReport], max_update: int
) -> Tuple[str, List[str]]:
    """``(path, reasons)``: evaluate, resume, decoders-only, partial or from-scratch."""
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
    decoder_tensors = sum(len(report.groups[g].loaded) for g in DECODER_GROUPS)
    if not encoder_ok and decoder_tensors == 0:
        return "from-scratch", ["neither the encoder nor any decoder tensor fits "
                                "(architecture or vocabularies differ)"]
    whole = ", ".join(decoders_ok) or "none"
    if encoder_ok:
        return "partial", ["the encoder loads; every tensor of the decoders that fits is loaded "
                           "too", f"decoder groups that load whole: {whole}",
                           *_reinitialised(report, DECODER_GROUPS)]
    why_not = report.groups["encoder"].note or "shape/keys differ"
    return "decoders-only", [f"the encoder does not load ({why_not})",
                             f"decoder groups that load whole: {whole}",
                             *_reinitialised(report, DECODER_GROUPS), MEASURED]


def _unused_dir(base: Path) -> Path:
    """``base``, or ``base2``, ``base3``...: a folder with no checkpoint in it, since fairseq would
    resume from one there instead of starting the new run."""
    candidate, number = base, 1
    while any(candidate.glob("checkpoint*.pt")):
        number += 1
        candidate = base.with_name(f"{base.name}{number}")
    return candidate


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB"


def commands(path: str, opts: argparse.Namespace, extra: Sequence[str], lr: float, stamp: str,
             num_updates: Optional[int] = None, optimizer: Optional[str] = None) -> List[str]:
    """The backup of the checkpoint the next run builds on, then the command of the
    recommended path."""
    checkpoint = opts.checkpoint.resolve()
    old_dir = checkpoint.parent
    new_dir = opts.save_dir or _unused_dir(old_dir.with_name(old_dir.name + "_restart"))
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
    if path == "partial":
        return [backup, shlex.join([*train, *init, "--load-encoder", "--load-decoders", *extra])]
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
    report, groups, fitted, notes = None, [], [], []
    if not data["problems"]:
        recipe_cfg = parse_fairseq_args(run.fairseq_argv() + list(extra))
        fit, fitted, notes = fitting_flags(facts["settings"], recipe_cfg.model,
                                           recipe_cfg.task.target_code_size, data)
        extra = _with_flags(extra, fit)
        report, ours = compare_with_model(run, extra, opts.checkpoint)
        groups = group_lines(report, ours, facts["vocabulary"])
        corpus_k, checkpoint_k = data.get("unit_k"), facts["unit_k"]
        if corpus_k is not None and checkpoint_k is not None and corpus_k != checkpoint_k:
            groups.append(f"unit dictionary: the checkpoint has K={checkpoint_k} units, "
                          f"the corpus K={corpus_k}")
    path, reasons = recommend(facts, report, max_update)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return {"checkpoint": facts, "data": data, "groups": groups, "recommendation": path,
            "fitted": fitted, "notes": notes, "reasons": reasons,
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
    if advice["fitted"]:
        print("settings taken from the checkpoint, so that its decoders fit:")
        for line in advice["fitted"]:
            print(f"  {line}")
        print("parameter groups of the model these settings build:")
    for line in advice["groups"]:
        print(f"  {line}")
    for note in advice["notes"]:
        print(f"  note: {note}")
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
