"""``echostream-export-model``: a trained checkpoint as a shipped model (``models/<name>/``).

The folder holds everything a user needs to stream with it and nothing of the run (no optimizer
state): the weights, in float16 unless ``--no-fp16`` (the export streams the first
``--max-utterances`` test sentences with both and records whether texts and speech agree),
the dictionaries, sentencepiece models and CMVN it was trained with, the YAMLs (relative paths),
``model.json`` (sha256 of every file, the training run, the recorded outputs the tests check) and
the model card ``README.md`` (:mod:`echostream_fairseq.shipped` explains the layout).

Example::

    echostream-export-model --checkpoint exp/deen_ding/checkpoints/checkpoint_best.pt \\
        --output-dir models/echostream-mini-de-en --manifest data/deen_ding/test_sampled.tsv \\
        --evaluation exp/deen_ding/eval/test_all/report.json \\
        --recipe "recipes/deen_mini/run.sh --recipe ding"

The folder is written beside ``--output-dir`` and moved into place at the end, so an interrupted
export leaves the previous model as it was.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import yaml

from echostream_fairseq.cli.common import (add_log_level_argument, positive_int, provenance,
                                           run_main, setup_logging)
from echostream_fairseq.data.manifests import SPLIT_NAMES
from echostream_fairseq.errors import InputError
from echostream_fairseq.shipped import (CARD_JSON, DATA, GCMVN_YAML, MODEL_FILE, MULTITASK_YAML,
                                        PATH_KEYS, ShippedModel, file_sha256, relative_paths)

logger = logging.getLogger(__name__)

RECORD_CHUNK_MS = 320  # the chunk the card's recorded outputs (and the shipped-model test) use


def record_config(model: Any) -> Any:
    """The decoding of the card's recorded outputs: the defaults, one sentence per stream (each
    test wav is one sentence, scored as SimulEval scores it)."""
    from echostream_fairseq.streaming.config import PipelineConfig

    return PipelineConfig(single_sentence=True).for_chunk(model, RECORD_CHUNK_MS)
# float16 weights are kept when the texts are equal and the speech lengths within this
SPEECH_TOLERANCE_S = 0.05


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    a = parser.add_argument
    a("--checkpoint", type=Path, required=True, help="the trained EchoStream checkpoint (.pt)")
    a("--data-dir", type=Path,
      help="its corpus folder (default: the folder saved in the checkpoint)")
    a("--output-dir", type=Path, required=True,
      help="the model folder, models/<name>: the name loads it (--checkpoint <name>)")
    a("--no-fp16", action="store_true", help="keep float32 weights")
    a("--manifest", "--test-manifest", dest="manifest", type=Path, required=True,
      help="the corpus's test manifest: its first sentences are streamed and recorded")
    a("--max-utterances", type=positive_int, default=10,
      help="test sentences streamed at 320 ms for the card (default 10)")
    a("--evaluation", type=Path, action="append", default=[],
      help="an echostream-evaluate report.json whose results go into the card (repeatable)")
    a("--train-log", type=Path,
      help="the run's fairseq --log-file: its last dev losses go into the card")
    a("--trained-on", help="where it was trained, for the card (default: this machine)")
    a("--recipe", default="", help="the command that trained the model, for the card")
    add_log_level_argument(parser)
    return parser


def _copy_data(data_dir: Path, target: Path) -> None:
    """The YAMLs (paths made relative) and every file they name, into ``target``."""
    from echostream_fairseq.vocoder.builder import vocoder_files

    target.mkdir(parents=True)
    for name in (GCMVN_YAML, MULTITASK_YAML):
        source = data_dir / name
        if not source.is_file():
            raise InputError(f"{source}: missing (the checkpoint's corpus must have it)")
        content = yaml.safe_load(source.read_text(encoding="utf-8"))
        if name == GCMVN_YAML and not content.get("vocoder"):
            # the embedded vocoder found by convention in the corpus: named, so it travels
            kind, files = vocoder_files(content, data_dir)
            content["vocoder"] = {"type": kind, "checkpoint": str(files[0])}
        _copy_named_files(content, data_dir, target)
        (target / name).write_text(yaml.safe_dump(relative_paths(content, data_dir),
                                                  sort_keys=False), encoding="utf-8")


def _copy_named_files(content: Any, data_dir: Path, target: Path) -> None:
    if isinstance(content, list):
        for value in content:
            _copy_named_files(value, data_dir, target)
        return
    if not isinstance(content, dict):
        return
    for key, value in content.items():
        if key in PATH_KEYS and isinstance(value, str) and value:
            path = Path(value) if Path(value).is_absolute() else data_dir / value
            if not path.resolve().is_relative_to(data_dir.resolve()):
                raise InputError(f"{data_dir}: {key} names {path}, outside the corpus folder, so "
                                 "it cannot travel with the model (copy it in, or fix the YAML)")
            relative = path.resolve().relative_to(data_dir.resolve())
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            if path.is_file():
                shutil.copy2(path, destination)
            elif path.is_dir():  # a multitask folder: its sentencepiece model and dictionary
                for piece in sorted(path.glob("spm_*")):
                    shutil.copy2(piece, destination / piece.name)
            else:
                raise InputError(f"{data_dir}: {key} names {path}, which does not exist")
        else:
            _copy_named_files(value, data_dir, target)


def _weights_only(state: Dict[str, Any], fp16: bool) -> Dict[str, Any]:
    """fairseq's checkpoint without the optimizer: the loader still needs ``cfg`` and a short
    ``optimizer_history``; the data folder is set where the model's own is (``data``)."""
    cfg = state["cfg"]
    task = cfg["task"]
    if hasattr(task, "data"):
        task.data = DATA
    else:
        task["data"] = DATA
    history = [{"criterion_name": entry.get("criterion_name"),
                "optimizer_name": entry.get("optimizer_name"),
                "num_updates": entry.get("num_updates", 0),
                "lr_scheduler_state": {"best": (entry.get("lr_scheduler_state") or {}).get("best")}}
               for entry in state.get("optimizer_history", [])[-1:]]
    weights = {name: tensor.half() if fp16 and tensor.is_floating_point() else tensor
               for name, tensor in state["model"].items()}
    return {"args": None, "cfg": cfg, "model": weights, "criterion": None,
            "optimizer_history": history, "task_state": state.get("task_state", {}),
            "extra_state": {}}


def _stream_first(model: Any, task: Any, utterances: Sequence[Any]) -> List[Dict[str, Any]]:
    from echostream_fairseq.data.audio import read_wav
    from echostream_fairseq.evaluation.streaming_eval import UtteranceRun, stream_utterance
    from echostream_fairseq.streaming.pipeline import StreamingS2STPipeline

    pipeline = StreamingS2STPipeline.from_task(model, task, record_config(model))
    out = []
    for utterance in utterances:
        samples, source_rate = read_wav(utterance.wav)
        run = UtteranceRun(utterance, stream_utterance(pipeline, samples, source_rate,
                                                       RECORD_CHUNK_MS))
        speech = sum(step.speech.size for step in run.steps)
        speech_rate = pipeline.vocoder.sample_rate if pipeline.vocoder is not None else 0
        out.append({"id": utterance.utt_id, "source_text": utterance.source_text,
                    "reference": utterance.reference, "asr_text": run.asr_text,
                    "target_text": run.target_text,
                    "speech_s": round(speech / speech_rate, 3) if speech_rate else 0.0})
    return out


def _corpus_summary(corpus: Mapping[str, Any]) -> str:
    """The card's sentence on the data, from the corpus report."""
    from echostream_fairseq.corpus.tts import ESPEAK_VOICES

    splits = corpus.get("splits", {})
    sizes = "; ".join(f"{split}: {info['pairs']:,} pairs, {info['source_hours']:.1f} h of German "
                      "speech" for split, info in splits.items() if split != "all")
    extra = [origin for origin in (corpus.get("origins") or {}).get("train", {})
             if origin.startswith("ding")]
    return (f"{sizes}. FreeDict's German-English example sentences (dev and test are theirs "
            "alone)" + (f", and Debian's trans-de-en (Ding) pairs ({', '.join(extra)}) in "
                        "training" if extra else "")
            + f"; German spoken by espeak-ng ({len(ESPEAK_VOICES)} voices, speed and pitch "
            "varied), English by piper's joe voice.")


def _training_facts(state: Mapping[str, Any], train_log: Optional[Path],
                    trained_on: Optional[str]) -> Dict[str, Any]:
    """What the card says of the run: from the checkpoint (updates, epochs, fairseq's cumulative
    training time over all restarts) and the log's last validation."""
    import os
    import platform

    import torch

    extra = state.get("extra_state") or {}
    history = (state.get("optimizer_history") or [{}])[-1]
    facts: Dict[str, Any] = {
        "updates": history.get("num_updates"),
        "epoch": (extra.get("train_iterator") or {}).get("epoch"),
        "training_minutes": round(extra["previous_training_time"] / 60.0, 1)
        if "previous_training_time" in extra else None,
        "machine": trained_on or (f"{platform.machine()}, {os.cpu_count()} CPUs, torch "
                                  f"{torch.__version__}, no GPU"
                                  if not torch.cuda.is_available() else "a CUDA GPU"),
    }
    if train_log is not None:
        from echostream_fairseq.training_logs import log_records

        valid = log_records(train_log.read_text(errors="replace"), SPLIT_NAMES["dev"],
                            source=str(train_log))
        if valid:
            last = valid[-1]
            facts["last_dev_losses"] = ", ".join(
                f"{key.replace('multitask_', '').replace('_loss', '')} {last[key]:.2f}"
                for key in sorted(last) if key.endswith("_loss") and key != "nll_loss")
            facts["last_dev_at_update"] = int(last.get("num_updates", 0))
    return facts


def _evaluation_summary(path: Path) -> Dict[str, Any]:
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not a readable evaluation report ({err})") from err
    rows = []
    conditions = list(report["results"].get("streaming") or [])
    if report["results"].get("offline"):
        conditions.append(report["results"]["offline"])
    for condition in conditions:
        text, speech = condition.get("text") or {}, condition.get("speech") or {}
        rows.append({"condition": condition["name"],
                     "asr_bleu": speech.get("asr_bleu"), "bleu": text.get("bleu"),
                     "source_wer": (condition.get("asr") or {}).get("wer"),
                     "al_ms": (text.get("latency") or {}).get("AL"),
                     "al_ca_ms": (text.get("latency") or {}).get("AL_CA"),
                     "speech_al_ms": (speech.get("latency") or {}).get("AL"),
                     "whisper_hears_nothing": speech.get("num_empty")})
    return {"report": str(path), "label": report.get("label"),
            "num_utterances": report.get("num_utterances"),
            "commit": (report.get("provenance") or {}).get("git_commit"), "conditions": rows}


def _fmt(value: Optional[float], spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def render_card(card: Mapping[str, Any]) -> str:
    """The model card (README.md) from ``model.json``."""
    corpus, training = card.get("corpus") or {}, card.get("training") or {}
    lines = [f"# {card['name']}", "", card.get("description", ""), "",
             "```bash",
             "make demo    # the first 10 test sentences, streamed speech to speech at 320 ms",
             # each test wav is one sentence: scored as the card's results were
             f"echostream-evaluate --checkpoint {card['name']} "
             "--manifest data/demo-test/test_sampled.tsv --chunk-ms 320 --single-sentence",
             f"python examples/stream_a_wav.py --checkpoint {card['name']} "
             "--wav some_german.wav --output english.wav",
             f"echostream-serve --checkpoint {card['name']}",
             "```", "",
             "`--checkpoint` takes the name (or this folder) wherever it takes a checkpoint file.",
             "", "## Model", "",
             "| | |", "|---|---|",
             f"| architecture | `{card.get('arch')}`, {card.get('parameters', 0):,} parameters |",
             f"| weights | {card.get('dtype')} ({card.get('fp16_check', '')}) |",
             f"| units | {card.get('units', '')} |",
             f"| vocabularies | source {corpus.get('vocab', {}).get('source')} and target "
             f"{corpus.get('vocab', {}).get('target')} sentencepiece pieces |",
             "", "## Data", "", corpus.get("summary", ""), "",
             "## Training", "",
             "| | |", "|---|---|"]
    for key, value in training.items():
        lines.append(f"| {key.replace('_', ' ')} | {value} |")
    lines += ["", f"Recipe: `{card.get('recipe') or 'not recorded'}`; code at commit "
              f"`{card.get('provenance', {}).get('git_commit')}`.", ""]
    for evaluation in card.get("evaluations", []):
        lines += [f"## Results: {evaluation['label']} ({evaluation['num_utterances']} test "
                  f"sentences, commit `{(evaluation.get('commit') or '')[:10]}`)", "",
                  "| condition | ASR-BLEU | BLEU | source WER % | text AL ms | text AL_CA ms | "
                  "Whisper hears nothing |", "|---|---|---|---|---|---|---|"]
        for row in evaluation["conditions"]:
            lines.append(f"| {row['condition']} | {_fmt(row['asr_bleu'])} | {_fmt(row['bleu'])} "
                         f"| {_fmt(row['source_wer'], '.1f')} | {_fmt(row['al_ms'], '.0f')} | "
                         f"{_fmt(row['al_ca_ms'], '.0f')} | "
                         f"{_fmt(row['whisper_hears_nothing'], 'd')} |")
        lines.append("")
    lines += ["## Recorded outputs", "",
              f"The first test sentences streamed at {RECORD_CHUNK_MS} ms with the default "
              "decoding, one sentence per stream (`tests/test_shipped_model.py` checks the "
              "first):", "",
              "| id | German | reference | ASR | written English | speech s |",
              "|---|---|---|---|---|---|"]
    for row in card.get("recorded", []):
        lines.append(f"| {row['id']} | {row['source_text']} | {row['reference']} | "
                     f"{row['asr_text']} | {row['target_text']} | {row['speech_s']} |")
    lines += ["", "## Files", "", "| file | sha256 |", "|---|---|"]
    for name, digest in sorted(card["files"].items()):
        lines.append(f"| `{name}` | `{digest}` |")
    lines += ["", card.get("licence", ""), ""]
    return "\n".join(lines)


def _save_weights(state: Dict[str, Any], staging: Path, name: str, fp16: bool) -> Dict[str, Any]:
    """``model.pt`` and a first card (name and checksums) into ``staging``; returns the card."""
    import torch

    torch.save(_weights_only(state, fp16=fp16), staging / MODEL_FILE)
    files = {str(p.relative_to(staging)): file_sha256(p) for p in sorted(staging.rglob("*"))
             if p.is_file() and p.name != CARD_JSON}
    card: Dict[str, Any] = {"name": name, "files": files}
    (staging / CARD_JSON).write_text(json.dumps(card), encoding="utf-8")
    return card


def _write_model(opts: argparse.Namespace, argv: Optional[Sequence[str]], state: Dict[str, Any],
                 data_dir: Path, utterances: Sequence[Any], name: str, staging: Path,
                 start: float) -> Dict[str, Any]:
    """Everything of the model folder into ``staging``; returns the card."""
    from echostream_fairseq.checkpoints import load_model_and_task
    from echostream_fairseq.shipped import find_shipped_model

    _copy_data(data_dir, staging / DATA)
    reference_model, reference_task = load_model_and_task(opts.checkpoint, data_dir)
    float32 = _stream_first(reference_model, reference_task, utterances)
    fp16 = not opts.no_fp16
    card = _save_weights(state, staging, name, fp16)
    model, task = load_model_and_task(find_shipped_model(staging).folder)
    recorded = _stream_first(model, task, utterances)
    same = sum(a["target_text"] == b["target_text"] and a["asr_text"] == b["asr_text"]
               for a, b in zip(recorded, float32))
    speech_diff = max((abs(a["speech_s"] - b["speech_s"]) for a, b in zip(recorded, float32)),
                      default=0.0)
    fp16_check = (f"{same} of {len(recorded)} test sentences with the same ASR and English text "
                  f"as float32, speech lengths within {speech_diff:.3f} s" if fp16
                  else "float32 kept (--no-fp16)")
    if fp16 and (same < len(recorded) or speech_diff > SPEECH_TOLERANCE_S):
        # float16 changed what the model says: ship float32 instead
        logger.warning("float16 weights differ from float32 (%s): keeping float32", fp16_check)
        fp16, fp16_check = False, f"float16 was refused: {fp16_check}"
        card, recorded = _save_weights(state, staging, name, fp16), float32
    corpus_report = data_dir / "report.json"
    corpus = json.loads(corpus_report.read_text(encoding="utf-8")) if corpus_report.is_file() \
        else {}
    splits = corpus.get("splits", {})
    units = corpus.get("units", {})
    card.update({
        "description": "German speech -> English text and speech, streamed chunk by chunk "
                       "(EchoStream: an Emformer encoder with StreamSpeech's five heads).",
        "arch": state["cfg"]["model"].arch if hasattr(state["cfg"]["model"], "arch")
        else state["cfg"]["model"].get("_name"),
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": "float16" if fp16 else "float32",
        "fp16_check": fp16_check,
        "units": (f"{units.get('unit_type', 'logmel')}, K = {units.get('num_units')}"
                  + (", spoken by piper itself" if units.get("unit_type") == "piper-phonemes"
                     else "")),
        "corpus": {"path": str(data_dir), "vocab": corpus.get("vocab", {}),
                   "splits": splits, "origins": corpus.get("origins", {}),
                   "summary": _corpus_summary(corpus)},
        "training": _training_facts(state, opts.train_log, opts.trained_on),
        "recipe": opts.recipe,
        "source_checkpoint": {"path": str(opts.checkpoint.resolve()),
                              "sha256": file_sha256(opts.checkpoint)},
        "recorded": recorded,
        "recorded_chunk_ms": RECORD_CHUNK_MS,
        "evaluations": [_evaluation_summary(path) for path in opts.evaluation],
        "licence": "Trained on FreeDict (GPL) and Ding (GPL) dictionary sentences: the weights "
                   "are distributed under the GPL, as the project is.",
        "provenance": provenance(argv),
        "export_s": round(time.perf_counter() - start, 1),
    })
    (staging / CARD_JSON).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (staging / "README.md").write_text(render_card(card), encoding="utf-8")
    return card


def export(opts: argparse.Namespace, argv: Optional[Sequence[str]] = None) -> ShippedModel:
    import torch

    from echostream_fairseq.checkpoint_safety import safe_torch_load
    from echostream_fairseq.evaluation.testset import load_test_set
    from echostream_fairseq.shipped import find_shipped_model

    start = time.perf_counter()
    torch.set_num_threads(1)
    state = safe_torch_load(opts.checkpoint)
    task_cfg = state["cfg"]["task"]
    data_dir = (opts.data_dir or Path(getattr(task_cfg, "data", None)
                                      or task_cfg["data"])).resolve()
    utterances = load_test_set(opts.manifest, max_utterances=opts.max_utterances
                               ).utterances
    output = opts.output_dir.resolve()
    name = output.name
    staging = output.parent / f".{output.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        card = _write_model(opts, argv, state, data_dir, utterances, name, staging, start)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # the previous model stays as it was
        raise
    previous = output.parent / f".{output.name}.previous"
    shutil.rmtree(previous, ignore_errors=True)
    if output.exists():
        output.rename(previous)
    staging.rename(output)
    shutil.rmtree(previous, ignore_errors=True)
    logger.info("wrote %s (%s; %s)", output, card["dtype"], card["fp16_check"])
    return find_shipped_model(output)


def main(argv: Optional[Sequence[str]] = None) -> int:
    opts = build_parser().parse_args(argv)
    setup_logging(opts.log_level)

    def body() -> None:
        shipped = export(opts, argv)
        size = sum(p.stat().st_size for p in shipped.folder.rglob("*") if p.is_file())
        print(f"{shipped.folder}: {size / 1e6:.1f} MB; {shipped.card['fp16_check']}")

    return run_main(body, (OSError,))


if __name__ == "__main__":
    raise SystemExit(main())
