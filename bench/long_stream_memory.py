#!/usr/bin/env python
"""Memory and per-chunk cost of one long (default 10-minute) stream through the speech->speech
pipeline: does anything grow without bound?

The input is test utterances of the corpus joined with 0.3 s of silence
(:func:`streaming_cost.long_input`), pushed in chunks of ``--chunk-ms`` (320 ms) into one
:class:`~echostream_fairseq.streaming.StreamingS2STPipeline` utterance (speech output on: text,
units and vocoder), then ``finish``. After 1, 2, 5 and 10 minutes of stream it records:

* the process RSS (``VmRSS`` of ``/proc/self/status``) and the peak RSS since the previous mark
  (``VmHWM``, reset at every mark through ``/proc/self/clear_refs`` where the kernel allows it);
* the median CPU seconds per chunk over the last minute (one torch thread; CPU time, so other
  jobs on a shared machine do not inflate it);
* the pipeline's own state, in MB of tensor data: the Emformer encoder state
  (:func:`~echostream_fairseq.models.streaming.state_numel`: constant), the encoder frames kept
  for the MT decoder and its cross-attention key/value cache (both linear in the source), the MT
  self-attention cache and decoder states (linear in the written subwords), the T2U and unit
  decoder caches (linear in the written subwords / unit steps), the fbank and vocoder buffers.

It then prints the RSS growth from minute 1 to the end (MB and ratio), the per-chunk cost at the
start vs the end, the ``finish`` cost and the output lengths.

Usage: python bench/long_stream_memory.py [--checkpoint CKPT --data-dir DATA] [--chunk-ms 320]
       [--marks 1,2,5,10] [--no-speech] [--json out.json]
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from streaming_cost import SAMPLE_RATE, long_input  # noqa: E402
from echostream_fairseq.models.state import state_numel  # noqa: E402
from echostream_fairseq.cli.common import (add_log_level_argument,  # noqa: E402
                                           add_num_threads_argument, provenance,
                                           setup_logging)
from echostream_fairseq.streaming import PipelineConfig, StreamingS2STPipeline  # noqa: E402
from echostream_fairseq.streaming.config import (add_pipeline_arguments,  # noqa: E402
                                                 segment_length_for_chunk)
from echostream_fairseq.checkpoints import load_model_and_task as load_checkpoint  # noqa: E402

MB = 1024.0 * 1024.0
EDGE_STEPS = 10  # chunks whose median is the cost "at the start" / "at the end"
#: (checkpoint, corpus) tried in order when --checkpoint is not given
DEFAULTS = (("exp/bench/mini_500.pt", "data"),
            ("exp/demo_mini/checkpoints/checkpoint_best.pt", "data/demo"))


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


def malloc_trim() -> bool:
    """Give free heap memory back to the OS (glibc ``malloc_trim(0)``); False without glibc."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        return True
    except (OSError, AttributeError):
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
    """MB of the pipeline's per-utterance state, by part (reads private attributes: a bench)."""
    encoder_state = state_numel(pipe._state) * 4  # float32
    cross = sum(_nbytes(buf) for _, buf in pipe._attention_buffers("encoder_attn"))
    self_attn = sum(_nbytes(buf) for _, buf in pipe._attention_buffers("self_attn"))
    units = pipe._units
    features = pipe.features
    resampler = features._resampler
    sizes = {
        "encoder_state": encoder_state,
        "encoder_frames": _nbytes(pipe._encoder_chunks),
        "mt_cross_attn_cache": cross,
        "mt_self_attn_cache": self_attn,
        "mt_decoder_states": _nbytes(pipe._mt_states),
        # IncrementalUnits: T2U outputs and caches; FullRecomputeUnits: the MT states it keeps
        "t2u": sum(_nbytes(getattr(units, name, None))
                   for name in ("_t2u_out", "_t2u_state", "_states")),
        "unit_decoder_cache": _nbytes(getattr(units, "_decoder_state", None)),
        "fbank_buffers": _nbytes(features._pending)
        + (_nbytes(resampler._buffer) if resampler is not None else 0),
        "vocoder_state": _nbytes(pipe._vocoder_state),
    }
    return {name: value / MB for name, value in sizes.items()}


# ---------------------------------------------------------------------------------- stream
@dataclasses.dataclass
class Totals:
    """Output lengths so far (only counts are kept, so the output itself costs no memory)."""

    asr_words: int = 0
    target_words: int = 0
    units: int = 0
    speech_samples: int = 0


def _mark_row(pipe: StreamingS2STPipeline, minute: float, costs: List[float],
              totals: Totals, peak_ok: bool, trim: bool) -> Dict[str, Any]:
    gc.collect()
    rss = proc_status_mb("VmRSS")
    row = {"minute": minute, "rss_mb": rss,
           "rss_trimmed_mb": proc_status_mb("VmRSS") if trim and malloc_trim() else None,
           "peak_rss_mb": proc_status_mb("VmHWM") if peak_ok else None,
           "chunk_cpu_s_median": statistics.median(costs) if costs else None,
           "chunk_cpu_s_max": max(costs) if costs else None,
           "encoder_frames": pipe.encoder_frames, "asr_subwords": len(pipe.asr_tokens),
           "target_subwords": len(pipe.target_tokens), **dataclasses.asdict(totals),
           "state_mb": state_sizes(pipe)}
    if peak_ok:
        reset_peak_rss()
    return row


def run_stream(pipe: StreamingS2STPipeline, samples: np.ndarray, chunk: int,
               marks_s: List[float], trim: bool = False) -> Dict[str, Any]:
    """Push ``samples`` in chunks, record a row at every mark, then ``finish``."""
    pipe.reset()
    peak_ok = reset_peak_rss()
    totals = Totals()

    def count(out) -> None:
        totals.asr_words += len(out.asr_text.split())
        totals.target_words += len(out.target_text.split())
        totals.units += len(out.units)
        totals.speech_samples += int(out.speech.size)

    rows, costs, all_costs = [], [], []
    start_rss = proc_status_mb("VmRSS")
    pending = sorted(marks_s)
    wall = time.perf_counter()
    for begin in range(0, len(samples), chunk):
        cpu = time.process_time()
        out = pipe.push(samples[begin:begin + chunk], SAMPLE_RATE)
        cost = time.process_time() - cpu
        costs.append(cost)
        all_costs.append(cost)
        count(out)
        consumed_s = min(begin + chunk, len(samples)) / SAMPLE_RATE
        while pending and consumed_s >= pending[0] - 1e-9:
            rows.append(_mark_row(pipe, pending.pop(0) / 60.0, costs, totals, peak_ok, trim))
            costs = []
            row = rows[-1]
            print(f"  {row['minute']:g} min: RSS {row['rss_mb']:.1f} MB, "
                  f"{row['target_subwords']} subwords, {row['encoder_frames']} encoder frames, "
                  f"median chunk {1000 * row['chunk_cpu_s_median']:.1f} ms CPU "
                  f"({time.perf_counter() - wall:.0f} s wall)", file=sys.stderr, flush=True)
    cpu = time.process_time()
    out = pipe.finish()
    finish_s = time.process_time() - cpu
    count(out)
    gc.collect()
    edge = min(EDGE_STEPS, max(1, len(all_costs) // 4))
    return {
        "rss_before_mb": start_rss, "marks": rows, "steps": len(all_costs),
        "config": dataclasses.asdict(pipe.config),
        "first_chunk_cpu_s": statistics.median(all_costs[:edge]),
        "last_chunk_cpu_s": statistics.median(all_costs[-edge:]),
        "total_cpu_s": sum(all_costs) + finish_s, "finish_cpu_s": finish_s,
        "wall_s": time.perf_counter() - wall,
        "rss_after_finish_mb": proc_status_mb("VmRSS"),
        "peak_rss_finish_mb": proc_status_mb("VmHWM") if peak_ok else None,
        "final": {**dataclasses.asdict(totals), "target_subwords": len(pipe.target_tokens),
                  "asr_subwords": len(pipe.asr_tokens), "encoder_frames": pipe.encoder_frames,
                  "max_len": pipe._max_len(), "speech_seconds": (
                      totals.speech_samples / pipe.vocoder.sample_rate if pipe.vocoder else 0.0)},
        "state_after_finish_mb": state_sizes(pipe),
    }


# ----------------------------------------------------------------------------------- report
def growth(result: Dict[str, Any]) -> Tuple[float, float]:
    """RSS growth from the first mark to the last: (MB, ratio)."""
    first, last = result["marks"][0]["rss_mb"], result["marks"][-1]["rss_mb"]
    return last - first, last / first


def print_report(result: Dict[str, Any], checkpoint: Path, chunk_ms: int,
                 noise: float = 0.0) -> None:
    marks = result["marks"]
    noisy = f" + noise {noise:g}" if noise else ""
    config = result["config"]
    print(f"checkpoint {checkpoint}{noisy}, {chunk_ms} ms chunks, one torch thread, speech "
          f"{'on' if config['speech'] else 'off'}, MT cap {config['max_len_a']:g} * frames + "
          f"{config['max_len_b']}; RSS before the stream {result['rss_before_mb']:.1f} MB "
          "(model and input loaded)")
    trimmed = any(row["rss_trimmed_mb"] is not None for row in marks)
    print("| stream | RSS (MB) | " + ("RSS after malloc_trim (MB) | " if trimmed else "")
          + "peak since last (MB) | chunk CPU median (ms) | encoder frames | "
          "target subwords | units | encoder state | encoder frames + MT cross-attn | "
          "MT self-attn + states | T2U + unit decoder | fbank + vocoder |")
    print("|---" * (12 + trimmed) + "|")
    for row in marks:
        s = row["state_mb"]
        peak = f"{row['peak_rss_mb']:.1f}" if row["peak_rss_mb"] is not None else "-"
        trim_cell = f"{row['rss_trimmed_mb']:.1f} | " if trimmed else ""
        print(f"| {row['minute']:g} min | {row['rss_mb']:.1f} | {trim_cell}{peak} | "
              f"{1000 * row['chunk_cpu_s_median']:.1f} | {row['encoder_frames']} | "
              f"{row['target_subwords']} | {row['units']} | {s['encoder_state']:.3f} | "
              f"{s['encoder_frames'] + s['mt_cross_attn_cache']:.2f} | "
              f"{s['mt_self_attn_cache'] + s['mt_decoder_states']:.2f} | "
              f"{s['t2u'] + s['unit_decoder_cache']:.2f} | "
              f"{s['fbank_buffers'] + s['vocoder_state']:.3f} |")
    mb, ratio = growth(result)
    print(f"RSS growth {marks[0]['minute']:g} -> {marks[-1]['minute']:g} min: {mb:+.1f} MB "
          f"(x{ratio:.3f}); per minute after the first: "
          f"{mb / max(1e-9, marks[-1]['minute'] - marks[0]['minute']):+.2f} MB")
    state_first = sum(marks[0]["state_mb"].values())
    state_last = sum(marks[-1]["state_mb"].values())
    print(f"pipeline state {state_first:.2f} MB -> {state_last:.2f} MB "
          f"(encoder state {marks[0]['state_mb']['encoder_state']:.3f} -> "
          f"{marks[-1]['state_mb']['encoder_state']:.3f} MB)")
    print(f"per-chunk CPU: start {1000 * result['first_chunk_cpu_s']:.1f} ms, end "
          f"{1000 * result['last_chunk_cpu_s']:.1f} ms (x"
          f"{result['last_chunk_cpu_s'] / result['first_chunk_cpu_s']:.2f}); finish "
          f"{result['finish_cpu_s']:.2f} s; total {result['total_cpu_s']:.1f} s CPU over "
          f"{result['steps']} chunks ({result['wall_s']:.0f} s wall)")
    final = result["final"]
    print(f"output: {final['target_words']} target words ({final['target_subwords']} subwords, "
          f"cap {final['max_len']}), {final['asr_words']} ASR words, {final['units']} units, "
          f"{final['speech_seconds']:.1f} s speech; RSS after finish "
          f"{result['rss_after_finish_mb']:.1f} MB")


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
    a("--marks", default="1,2,5,10",
      help="minutes of stream at which to measure; the last is the length")
    a("--no-speech", action="store_true", help="text only (no T2U/vocoder)")
    a("--randomise", type=float, default=0.0, metavar="SCALE",
      help="add seeded Gaussian noise of this scale to every weight (as the tests' "
           "randomise_checkpoint), so that an under-trained model writes all along the stream: "
           "a stress test of the write path")
    a("--trim", action="store_true",
      help="diagnosis: at every mark also call glibc malloc_trim(0) and report the RSS after it "
           "(what the allocator held but did not use); this changes the later RSS figures")
    add_num_threads_argument(parser, "torch threads")
    a("--output", type=Path, default=None, help="also write the figures to this JSON file")
    add_pipeline_arguments(parser.add_argument_group("decoding"))
    add_log_level_argument(parser, default="WARNING")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    torch.set_num_threads(args.num_threads)
    marks_s = sorted(60.0 * float(x) for x in args.marks.split(",") if x.strip())
    if not marks_s or marks_s[0] <= 0:
        parser.error(f"--marks needs positive minutes, got {args.marks!r}")
    checkpoint, data_dir = pick_checkpoint(args.checkpoint, args.data_dir)
    if not checkpoint.is_file():
        parser.error(f"checkpoint not found: {checkpoint}")

    model, task = load_checkpoint(str(checkpoint), str(data_dir) if data_dir else None)
    if args.randomise:
        randomise(model, args.randomise)
    config = PipelineConfig.from_args(args, speech=not args.no_speech)
    if config.segment_length is None:
        config = config.replace(segment_length=segment_length_for_chunk(model, args.chunk_ms))
    pipe = StreamingS2STPipeline.from_task(model, task, config)
    samples = long_input(Path(task.args.data), marks_s[-1])
    chunk = SAMPLE_RATE * args.chunk_ms // 1000
    print(f"streaming {marks_s[-1] / 60:g} min ({len(samples)} samples) in {args.chunk_ms} ms "
          f"chunks ...", file=sys.stderr, flush=True)
    result = run_stream(pipe, samples, chunk, marks_s, args.trim)
    print_report(result, checkpoint, args.chunk_ms, args.randomise)
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
