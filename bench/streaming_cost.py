#!/usr/bin/env python
"""Whole-pipeline streaming cost on CPU: EchoStream's incremental pipeline against StreamSpeech's
re-encoding method (``PipelineConfig(reencode=True)``), the same model, measured in one run.

Inputs of 20, 60 and 180 s are test utterances of the corpus joined with 0.3 s of silence. Costs
are CPU seconds of the calls (one torch thread), so other jobs on a shared machine do not distort
them. For each length it prints, as ratios measured in this run (speech output on: text, units and
vocoder):

* total compute of the incremental pipeline (``push`` every chunk, then ``finish``);
* per-chunk cost at the end of the stream vs at its start (median of the last / first 10 steps);
* streaming total vs one offline pass of the same pipeline (the whole input in one call);
* the re-encoding baseline's total vs ours (lengths in ``--baseline-seconds``: it is quadratic),
  and the same for the steps before the end of the input only (the final flush, which decodes
  what is left to ``</s>``, is the same work in both).

Usage: python bench/streaming_cost.py [--checkpoint CKPT --data-dir DATA] [--chunk-ms 320]
       [--seconds 20,60,180] [--baseline-seconds 20,60] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from common import run_bench  # noqa: E402
from echostream_fairseq.data.audio import SAMPLE_RATE  # noqa: E402
from echostream_fairseq.cli.common import (add_log_level_argument,  # noqa: E402
                                           add_num_threads_argument, provenance,
                                           setup_logging)
from echostream_fairseq.streaming import PipelineConfig, StreamingS2STPipeline  # noqa: E402
from echostream_fairseq.streaming.config import add_pipeline_arguments  # noqa: E402
from echostream_fairseq.checkpoints import load_model_and_task as load_checkpoint  # noqa: E402
from echostream_fairseq.evaluation.testset import joined_test_sentences  # noqa: E402,F401

EDGE_STEPS = 10  # steps averaged (median) for the first- and last-chunk cost


def default_checkpoint() -> Path:
    for candidate in ("exp/train_mini/checkpoints/checkpoint_best.pt",
                      "exp/demo_mini/checkpoints/checkpoint_best.pt"):
        if (REPO / candidate).is_file():
            return REPO / candidate
    return REPO / "exp/train_mini/checkpoints/checkpoint_best.pt"


def long_input(data_dir: Path, seconds: float) -> np.ndarray:
    """Test utterances (16 kHz) joined with short silences, cut to exactly ``seconds``."""
    return joined_test_sentences(data_dir, seconds)[0]


def cpu_seconds(call, *args) -> float:
    """CPU time of one call: unlike wall time, other jobs on a shared machine do not inflate it
    (with one torch thread, CPU time is the compute the call needs)."""
    start = time.process_time()
    call(*args)
    return time.process_time() - start


def stream_costs(pipe: StreamingS2STPipeline, samples: np.ndarray, chunk: int) -> Dict:
    pipe.reset()
    steps = [cpu_seconds(pipe.push, samples[i:i + chunk], SAMPLE_RATE)
             for i in range(0, len(samples), chunk)]
    final = cpu_seconds(pipe.finish)
    edge = min(EDGE_STEPS, max(1, len(steps) // 4))
    return {"total_s": sum(steps) + final, "steps": len(steps), "reading_s": sum(steps),
            "final_s": final,
            "first_chunk_s": statistics.median(steps[:edge]),
            "last_chunk_s": statistics.median(steps[-edge:]),
            "written_subwords": len(pipe.target_tokens)}


def offline_cost(pipe: StreamingS2STPipeline, samples: np.ndarray) -> float:
    pipe.reset()
    return cpu_seconds(pipe.finish, samples, SAMPLE_RATE)


def parse_seconds(text: str) -> List[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a = parser.add_argument
    a("--checkpoint", type=Path, default=None,
      help="EchoStream checkpoint (default: the trained mini, else the demo's)")
    a("--data-dir", type=Path, default=None,
      help="corpus of the checkpoint (default: its saved data path)")
    a("--chunk-ms", type=int, default=320, help="source chunk per push")
    a("--seconds", default="20,60,180", help="input lengths, comma-separated")
    a("--baseline-seconds", default="20,60", help="lengths that also run the re-encoding baseline")
    add_num_threads_argument(parser, "torch threads")
    a("--output", type=Path, default=None, help="also write the figures to this JSON file")
    add_pipeline_arguments(parser.add_argument_group("decoding (the baseline adds --reencode)"))
    add_log_level_argument(parser, default="WARNING")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    return run_bench(lambda: _run_bench(argv))


def _run_bench(argv: Optional[List[str]]) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    torch.set_num_threads(args.num_threads)
    checkpoint = args.checkpoint or default_checkpoint()
    model, task = load_checkpoint(str(checkpoint), str(args.data_dir) if args.data_dir else None)
    data_dir = Path(args.data_dir or task.args.data)  # a shipped model holds no test set
    config = PipelineConfig.from_args(args, reencode=False)
    config = config.for_chunk(model, args.chunk_ms)
    ours = StreamingS2STPipeline.from_task(model, task, config)
    baseline = StreamingS2STPipeline(model, ours.dicts, ours.features.cmvn, ours.vocoder,
                                     config.replace(reencode=True))
    chunk = SAMPLE_RATE * args.chunk_ms // 1000
    print(f"checkpoint {checkpoint} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M "
          f"params), {args.chunk_ms} ms chunks, {args.num_threads} thread(s), speech output on, "
          "CPU seconds")
    print("| input | ours total (s) | RTF | last/first chunk | ours / offline | "
          "baseline total (s) | baseline / ours | baseline / ours, steps before the end |")
    print("|---|---|---|---|---|---|---|---|")
    results = []
    for seconds in parse_seconds(args.seconds):
        samples = long_input(data_dir, seconds)
        stream = stream_costs(ours, samples, chunk)
        offline = offline_cost(ours, samples)
        row = {"seconds": seconds, "ours": stream, "offline_s": offline,
               "last_over_first": stream["last_chunk_s"] / stream["first_chunk_s"],
               "ours_over_offline": stream["total_s"] / offline}
        if seconds in parse_seconds(args.baseline_seconds):
            reference = stream_costs(baseline, samples, chunk)
            row["baseline"] = reference
            row["baseline_over_ours"] = reference["total_s"] / stream["total_s"]
            row["baseline_over_ours_while_reading"] = reference["reading_s"] / stream["reading_s"]
        results.append(row)
        base_total = f"{row['baseline']['total_s']:.1f}" if "baseline" in row else "-"
        base_ratio = f"{row['baseline_over_ours']:.1f}x" if "baseline" in row else "-"
        reading_ratio = (f"{row['baseline_over_ours_while_reading']:.1f}x" if "baseline" in row
                         else "-")
        print(f"| {seconds:g} s | {stream['total_s']:.2f} | {stream['total_s'] / seconds:.3f} | "
              f"{row['last_over_first']:.2f} | {row['ours_over_offline']:.2f} | {base_total} | "
              f"{base_ratio} | {reading_ratio} |", flush=True)
    if args.output:
        args.output.write_text(json.dumps({"checkpoint": str(checkpoint),
                                           "chunk_ms": args.chunk_ms, "decode": config.to_dict(),
                                           "provenance": provenance(),
                                           "num_threads": args.num_threads, "results": results},
                                          indent=2))


if __name__ == "__main__":
    sys.exit(main())
