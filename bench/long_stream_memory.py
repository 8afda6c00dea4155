#!/usr/bin/env python
"""Per-chunk cost, memory and sentences of one long (default 60-minute) stream through the
speech->speech pipeline: does anything grow without bound?

The input is test utterances of the corpus joined with 0.3 s of silence
(:func:`streaming_cost.joined_test_sentences`), pushed in chunks of ``--chunk-ms`` (320 ms)
into one :class:`~echostream_fairseq.streaming.StreamingS2STPipeline` stream (speech output on:
text, units and vocoder; sentence after sentence, unless ``--single-sentence``), then
``finish``. Every chunk's CPU time is kept (one torch thread; CPU time, so other jobs on a
shared machine do not inflate it). Per window of ``--window-minutes`` (5) it reports:

* p50 / p95 / max CPU ms per chunk, over all chunks and over the chunks that wrote text;
* the process RSS at the window's end (``VmRSS``) and the peak within it (``VmHWM``, reset at
  every window end through ``/proc/self/clear_refs`` where the kernel allows it);
* the pipeline's own state at the window's end, in MB of tensor data, by part: the Emformer
  state (constant), the MT cross-attention store and self-attention cache and decoder states,
  the T2U and unit-decoder caches (all of the current sentence only), fbank and vocoder buffers;
* the sentences the pipeline ended and the target words it wrote.

It then prints the last window's p95 and max against the first's (the target: within 1.3x), the
RSS growth from minute 1 to the end (target: under 50 MB), the sentences ended against the
sentences joined, and the joined text BLEU of the whole translation against the joined
references.

Usage: python bench/long_stream_memory.py [--checkpoint CKPT --data-dir DATA] [--chunk-ms 320]
       [--minutes 60] [--window-minutes 5] [--no-speech] [--randomise 0.5] [--output out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import sacrebleu
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from common import (add_output_arguments, add_randomise_argument, bench_command,  # noqa: E402
                    run_bench)
from streaming_cost import SAMPLE_RATE, joined_test_sentences  # noqa: E402
from echostream_fairseq.corpus.tts import release_free_heap  # noqa: E402
from echostream_fairseq.models.state import state_numel  # noqa: E402
from echostream_fairseq.cli.common import (add_log_level_argument,  # noqa: E402
                                           add_num_threads_argument, provenance,
                                           setup_logging)
from echostream_fairseq.streaming import PipelineConfig, StreamingS2STPipeline  # noqa: E402
from echostream_fairseq.streaming.config import add_pipeline_arguments  # noqa: E402
from echostream_fairseq.checkpoints import load_model_and_task as load_checkpoint  # noqa: E402

MB = 1024.0 * 1024.0
#: (checkpoint, corpus) tried in order when --checkpoint is not given
DEFAULTS = (("exp/bench/mini_500.pt", "data"),
            ("exp/demo-train/checkpoints/checkpoint_best.pt", "data/demo"))  # make demo-train's


# ------------------------------------------------------------------------------------ process
def proc_status_mb(field: str) -> float:
    """A ``kB`` field of ``/proc/self/status`` (VmRSS, VmHWM) in MB."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5); False where not permitted."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


# ------------------------------------------------------------------------------ state sizes
def _nbytes(obj: Any) -> int:
    """Bytes of tensor/array data in a nested structure (dicts, sequences, dataclasses)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return sum(_nbytes(getattr(obj, f.name)) for f in dataclasses.fields(obj))
    return 0


def state_sizes(pipe: StreamingS2STPipeline) -> Dict[str, float]:
    """MB of the stream's state, by part (reads private attributes: a bench)."""
    state = pipe.state
    units = state.sentence.units
    features = state.features
    resampler = features._resampler
    sizes = {
        "encoder_state": state_numel(state.encoder) * 4,  # float32
        **state.sentence.mt.state_bytes(),
        # IncrementalUnits: T2U outputs and caches; FullRecomputeUnits: the MT states it keeps
        "t2u": sum(_nbytes(getattr(units, name, None))
                   for name in ("_t2u_out", "_t2u_state", "_states")),
        "unit_decoder_cache": _nbytes(getattr(units, "_decoder_state", None))
        + _nbytes(getattr(units, "_positions", None)),
        "fbank_buffers": _nbytes(features._pending)
        + (_nbytes(resampler._buffer) if resampler is not None else 0),
        "vocoder_state": _nbytes(state.vocoder),
    }
    return {name: value / MB for name, value in sizes.items()}


# ---------------------------------------------------------------------------------- stream
def percentile(values: List[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _cost_summary(costs: List[float]) -> Dict[str, Optional[float]]:
    if not costs:
        return {"chunks": 0, "p50_ms": None, "p95_ms": None, "max_ms": None}
    return {"chunks": len(costs), "p50_ms": 1000 * percentile(costs, 0.5),
            "p95_ms": 1000 * percentile(costs, 0.95), "max_ms": 1000 * max(costs)}


@dataclasses.dataclass
class Window:
    """The chunks of one window: CPU seconds of each, whether it wrote text, what it made."""

    costs: List[float] = dataclasses.field(default_factory=list)
    write_costs: List[float] = dataclasses.field(default_factory=list)
    sentence_end_costs: List[float] = dataclasses.field(default_factory=list)
    sentences: int = 0
    target_words: int = 0
    units: int = 0
    speech_samples: int = 0
    worst: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def add(self, cost: float, out) -> None:
        if not self.costs or cost > max(self.costs):  # what the slowest chunk did
            self.worst = {"cpu_ms": 1000 * cost, "sentences_ended": len(out.sentences),
                          "target_words": len(out.target_text.split()), "units": len(out.units),
                          "ended_sentence_s": [(s.end_ms - s.start_ms) / 1000
                                               for s in out.sentences]}
        self.costs.append(cost)
        words = len(out.target_text.split())
        if words:
            self.write_costs.append(cost)
        if out.sentences:
            self.sentence_end_costs.append(cost)
        self.sentences += len(out.sentences)
        self.target_words += words
        self.units += len(out.units)
        self.speech_samples += int(out.speech.size)


def _window_row(pipe: StreamingS2STPipeline, end_minute: float, window: Window, peak_ok: bool,
                trim: bool) -> Dict[str, Any]:
    gc.collect()
    row = {"end_minute": end_minute, "all": _cost_summary(window.costs),
           "writing": _cost_summary(window.write_costs),
           "sentence_ends": _cost_summary(window.sentence_end_costs),
           "rss_mb": proc_status_mb("VmRSS"),
           "rss_trimmed_mb": proc_status_mb("VmRSS") if trim and release_free_heap() else None,
           "peak_rss_mb": proc_status_mb("VmHWM") if peak_ok else None,
           "sentences": window.sentences, "target_words": window.target_words,
           "units": window.units, "speech_samples": window.speech_samples,
           "slowest_chunk": window.worst,
           "state_mb": state_sizes(pipe)}
    if peak_ok:
        reset_peak_rss()
    return row


def run_stream(pipe: StreamingS2STPipeline, samples: np.ndarray, chunk: int,
               window_s: float, trim: bool = False) -> Dict[str, Any]:
    """Push ``samples`` in chunks, one row per window, then ``finish``."""
    pipe.reset()
    peak_ok = reset_peak_rss()
    rows: List[Dict[str, Any]] = []
    window = Window()
    translation: List[str] = []
    sentences = 0
    rss_at_minute = None
    start_rss = proc_status_mb("VmRSS")
    wall = time.perf_counter()
    next_end = window_s
    total_cpu = 0.0
    for begin in range(0, len(samples), chunk):
        cpu = time.process_time()
        out = pipe.push(samples[begin:begin + chunk], SAMPLE_RATE)
        cost = time.process_time() - cpu
        total_cpu += cost
        window.add(cost, out)
        translation.append(out.target_text)
        sentences += len(out.sentences)
        consumed_s = min(begin + chunk, len(samples)) / SAMPLE_RATE
        if rss_at_minute is None and consumed_s >= 60.0:
            rss_at_minute = proc_status_mb("VmRSS")
        if consumed_s >= next_end - 1e-9 or begin + chunk >= len(samples):
            rows.append(_window_row(pipe, consumed_s / 60.0, window, peak_ok, trim))
            window = Window()
            next_end += window_s
            row = rows[-1]
            print(f"  {row['end_minute']:g} min: RSS {row['rss_mb']:.1f} MB, chunk p50/p95/max "
                  f"{row['all']['p50_ms']:.1f}/{row['all']['p95_ms']:.1f}/"
                  f"{row['all']['max_ms']:.1f} ms CPU, {sentences} sentences "
                  f"({time.perf_counter() - wall:.0f} s wall)", file=sys.stderr, flush=True)
    cpu = time.process_time()
    out = pipe.finish()
    finish_s = time.process_time() - cpu
    translation.append(out.target_text)
    sentences += len(out.sentences)
    gc.collect()
    return {
        "rss_before_mb": start_rss, "rss_at_minute_1_mb": rss_at_minute, "windows": rows,
        "config": dataclasses.asdict(pipe.config), "finish_cpu_s": finish_s,
        "total_cpu_s": total_cpu + finish_s,
        "wall_s": time.perf_counter() - wall,
        "rss_after_finish_mb": proc_status_mb("VmRSS"),
        "sentences_ended": sentences, "translation": " ".join(t for t in translation if t),
        "state_after_finish_mb": state_sizes(pipe),
    }


# ----------------------------------------------------------------------------------- report
def ratios(result: Dict[str, Any]) -> Dict[str, Optional[float]]:
    """Last window against the first: p95 and max of all chunks; RSS growth after minute 1."""
    first, last = result["windows"][0]["all"], result["windows"][-1]["all"]
    at_minute = result["rss_at_minute_1_mb"]
    return {"p95_last_over_first": last["p95_ms"] / first["p95_ms"],
            "max_last_over_first": last["max_ms"] / first["max_ms"],
            "rss_growth_after_minute_1_mb": (result["windows"][-1]["rss_mb"] - at_minute
                                             if at_minute is not None else None)}


def _cell(value: Optional[float], digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_report(result: Dict[str, Any], checkpoint: Path, chunk_ms: int,
                 noise: float = 0.0) -> None:
    config = result["config"]
    noisy = f" + noise {noise:g}" if noise else ""
    mode = "one sentence" if config["single_sentence"] else (
        f"sentence after sentence (pause {config['sentence_pause_ms']} ms, at most "
        f"{config['max_sentence_ms'] / 1000:g} s)")
    print(f"checkpoint {checkpoint}{noisy}, {chunk_ms} ms chunks, one torch thread, speech "
          f"{'on' if config['speech'] else 'off'}, {mode}, MT cap {config['max_len_a']:g} * "
          f"frames + {config['max_len_b']}; RSS before the stream {result['rss_before_mb']:.1f} "
          "MB (model and input loaded)")
    print("| window end (min) | chunk CPU p50 / p95 / max (ms) | writing chunks p50 / p95 / "
          "max (ms) | sentence-end chunks p50 / p95 / max (ms) | RSS (MB) | peak (MB) | "
          "state (MB) | of which MT | sentences | target words |")
    print("|---" * 10 + "|")
    for row in result["windows"]:
        every, writing, state = row["all"], row["writing"], row["state_mb"]
        ends = row["sentence_ends"]
        mt = sum(state[k] for k in ("mt_cross_attn_cache", "mt_self_attn_cache",
                                    "mt_decoder_states"))
        print(f"| {row['end_minute']:g} | {_cell(every['p50_ms'])} / {_cell(every['p95_ms'])} / "
              f"{_cell(every['max_ms'])} | {_cell(writing['p50_ms'])} / "
              f"{_cell(writing['p95_ms'])} / {_cell(writing['max_ms'])} | "
              f"{_cell(ends['p50_ms'])} / {_cell(ends['p95_ms'])} / {_cell(ends['max_ms'])} | "
              f"{row['rss_mb']:.1f} | "
              f"{_cell(row['peak_rss_mb'])} | {sum(state.values()):.2f} | {mt:.2f} | "
              f"{row['sentences']} | {row['target_words']} |")
    r = ratios(result)
    print(f"last window / first: p95 x{r['p95_last_over_first']:.2f}, max "
          f"x{r['max_last_over_first']:.2f} (target <= 1.3); RSS growth after minute 1: "
          f"{_cell(r['rss_growth_after_minute_1_mb'])} MB (target < 50)")
    print(f"sentences: {result['sentences_ended']} ended by the pipeline, "
          f"{result['sentences_joined']} joined in the input; joined text BLEU "
          f"{result['joined_bleu']:.2f}; finish {result['finish_cpu_s']:.2f} s CPU; "
          f"{result['wall_s']:.0f} s wall; RSS after finish {result['rss_after_finish_mb']:.1f} MB")


WINDOW_COLUMNS = [
    {"key": "end_minute", "header": "window end (min)", "digits": 0},
    {"key": "p50_ms", "header": "chunk CPU p50 (ms)", "digits": 1},
    {"key": "p95_ms", "header": "p95 (ms)", "digits": 1},
    {"key": "max_ms", "header": "max (ms)", "digits": 1},
    {"key": "writing_p95_ms", "header": "writing chunks p95 (ms)", "digits": 1},
    {"key": "sentence_end_p95_ms", "header": "sentence-end chunks p95 (ms)", "digits": 1},
    {"key": "rss_mb", "header": "RSS (MB)", "digits": 1},
    {"key": "state_mb", "header": "stream state (MB)", "digits": 2},
    {"key": "sentences", "header": "sentences ended", "digits": 0},
    {"key": "slowest", "header": "the slowest chunk did"},
]


def _slowest(worst: Dict[str, Any]) -> str:
    if not worst.get("sentences_ended"):
        return f"{worst.get('target_words', 0)} words, {worst.get('units', 0)} units"
    spans = ", ".join(f"{s:.1f} s" for s in worst["ended_sentence_s"])
    return f"ended a sentence of {spans}: {worst['target_words']} words, {worst['units']} units"


def result_summary(result: Dict[str, Any], label: str, command: str,
                   argv: Optional[List[str]]) -> Dict[str, Any]:
    """The run as a RESULTS.md section (``--results-file``)."""
    from echostream_fairseq.cli.results import measured_summary

    rows = [{"end_minute": round(row["end_minute"]), "p50_ms": row["all"]["p50_ms"],
             "p95_ms": row["all"]["p95_ms"], "max_ms": row["all"]["max_ms"],
             "writing_p95_ms": row["writing"]["p95_ms"],
             "sentence_end_p95_ms": row["sentence_ends"]["p95_ms"], "rss_mb": row["rss_mb"],
             "state_mb": sum(row["state_mb"].values()), "sentences": row["sentences"],
             "slowest": _slowest(row["slowest_chunk"])} for row in result["windows"]]
    r, config = result["ratios"], result["config"]
    facts = [
        {"what": "p95 per chunk, last window / first (target <= 1.3)",
         "value": f"x{r['p95_last_over_first']:.2f}"},
        {"what": "max per chunk, last window / first (target <= 1.3)",
         "value": f"x{r['max_last_over_first']:.2f}"},
        {"what": "RSS growth after minute 1 (target < 50 MB)",
         "value": f"{r['rss_growth_after_minute_1_mb']:+.1f} MB"},
        {"what": "sentences ended / whole sentences joined",
         "value": f"{result['sentences_ended']} / {result['sentences_joined']}"},
        {"what": "joined text BLEU of the whole translation",
         "value": f"{result['joined_bleu']:.2f}"},
    ]
    minutes = result["windows"][-1]["end_minute"]
    description = (
        f"{minutes:.0f} minutes of joined test sentences ({label}) through the speech->speech "
        "pipeline in 320 ms chunks, one torch thread, speech output on, sentence after sentence "
        f"(a sentence ends after {config['sentence_pause_ms']} ms of ASR blanks, or after "
        f"{config['max_sentence_ms'] / 1000:g} s). CPU time per chunk, per "
        f"{result['windows'][0]['end_minute']:.0f}-minute window; the stream state is the "
        "Emformer state plus the current sentence's MT, T2U and unit-decoder stores.")
    return measured_summary("Long streams: an hour, sentence after sentence", description,
                            [{"kind": "table", "columns": WINDOW_COLUMNS, "rows": rows},
                             {"kind": "facts", "title": "Against the targets", "rows": facts}],
                            command, "bench/long_stream_memory.py", argv)


def randomise(model: torch.nn.Module, scale: float, seed: int = 0) -> None:
    """Add seeded noise ``N(0, scale^2)`` to every floating-point weight, in place."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.randn(tensor.shape, generator=generator) * scale)


def pick_checkpoint(checkpoint: Optional[Path], data_dir: Optional[Path]
                    ) -> Tuple[Path, Optional[Path]]:
    if checkpoint is not None:
        return checkpoint, data_dir
    for path, corpus in DEFAULTS:
        if (REPO / path).is_file():
            return REPO / path, data_dir or REPO / corpus
    raise SystemExit(f"no checkpoint: none of {[p for p, _ in DEFAULTS]} exists; pass --checkpoint")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a = parser.add_argument
    a("--checkpoint", type=Path, default=None,
      help=f"EchoStream checkpoint (default: {DEFAULTS[0][0]} with {DEFAULTS[0][1]}, else "
           f"{DEFAULTS[1][0]} with {DEFAULTS[1][1]})")
    a("--data-dir", type=Path, default=None, help="corpus of the checkpoint")
    a("--chunk-ms", type=int, default=320, help="source chunk per push")
    a("--minutes", type=float, default=60.0, help="length of the stream")
    a("--window-minutes", type=float, default=5.0, help="the report's window")
    a("--no-speech", action="store_true", help="text only (no T2U/vocoder)")
    add_randomise_argument(parser)
    a("--trim", action="store_true",
      help="diagnosis: at every window end also call glibc malloc_trim(0) and report the RSS "
           "after it (what the allocator held but did not use); this changes later RSS figures")
    add_num_threads_argument(parser, "torch threads")
    add_output_arguments(parser)
    add_pipeline_arguments(parser.add_argument_group("decoding"))
    add_log_level_argument(parser, default="WARNING")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    return run_bench(lambda: _run_bench(argv))


def _run_bench(argv: Optional[List[str]]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    torch.set_num_threads(args.num_threads)
    if args.minutes <= 0 or args.window_minutes <= 0:
        parser.error("--minutes and --window-minutes must be positive")
    checkpoint, data_dir = pick_checkpoint(args.checkpoint, args.data_dir)
    model, task = load_checkpoint(str(checkpoint), str(data_dir) if data_dir else None)
    if args.randomise:
        randomise(model, args.randomise)
    config = PipelineConfig.from_args(args, speech=not args.no_speech)
    config = config.for_chunk(model, args.chunk_ms)
    pipe = StreamingS2STPipeline.from_task(model, task, config)
    test_corpus = data_dir or Path(task.args.data)  # a shipped model holds no test set
    samples, references = joined_test_sentences(test_corpus, 60.0 * args.minutes)
    chunk = SAMPLE_RATE * args.chunk_ms // 1000
    print(f"streaming {args.minutes:g} min ({len(samples)} samples, {len(references)} whole "
          f"sentences) in {args.chunk_ms} ms chunks ...", file=sys.stderr, flush=True)
    result = run_stream(pipe, samples, chunk, 60.0 * args.window_minutes, args.trim)
    result["sentences_joined"] = len(references)
    result["joined_bleu"] = sacrebleu.corpus_bleu([result["translation"]],
                                                  [[" ".join(references)]]).score
    result["ratios"] = ratios(result)
    print_report(result, checkpoint, args.chunk_ms, args.randomise)
    if args.results_file:
        from echostream_fairseq.cli.results import dump_summary

        command = bench_command("long_stream_memory.py", argv, args.recipe_command)
        args.results_file.write_text(dump_summary(result_summary(
            result, args.label or str(checkpoint), command, argv)), encoding="utf-8")
    if args.output:
        args.output.write_text(json.dumps({"checkpoint": str(checkpoint),
                                           "chunk_ms": args.chunk_ms,
                                           "randomise": args.randomise, "trim": args.trim,
                                           "decode": config.to_dict(),
                                           "provenance": provenance(),
                                           "speech": not args.no_speech,
                                           "num_threads": args.num_threads,
                                           **result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
