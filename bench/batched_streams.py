#!/usr/bin/env python
"""How many live streams one CPU core keeps in real time: batched steps against the same
streams stepped one after another, measured in the same run.

B streams of joined test sentences (each starting at a different sentence, so they stand at
different positions and cut sentences at different times) are pushed in ``--chunk-ms`` chunks
(320 ms), one torch thread. Per round every stream gets its next chunk, either in one
:meth:`~echostream_fairseq.streaming.StreamingS2ST.step_batch` (batched) or in B calls of
``step`` (serial, the same streams and the same work). A round's CPU time is what every stream
in it waits for its chunk; the streams are real time when the round's p95 stays within the chunk
length. Per batch size (``--batch-sizes``, default 1,8,32,64) it prints the rounds' p50 / p95 /
max, the CPU ms per stream-chunk, batched over serial, and whether B streams stay real time on
one core; then the largest B that does, batched and serial; and where the batched rounds' CPU
goes, component by component (fbank, encoder, CTC heads, MT decoder, T2U and unit decoder,
vocoder, the rest), which says what binds.

Usage: python bench/batched_streams.py --checkpoint CKPT --data-dir DATA [--seconds 30]
       [--batch-sizes 1,8,32,64] [--no-speech] [--randomise 0.5] [--output out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from common import (add_output_arguments, add_randomise_argument, bench_command,  # noqa: E402
                    positive_ints, run_bench)
from long_stream_memory import percentile, pick_checkpoint, randomise  # noqa: E402
from streaming_cost import SAMPLE_RATE, joined_test_sentences  # noqa: E402
from echostream_fairseq.checkpoints import load_model_and_task as load_checkpoint  # noqa: E402
from echostream_fairseq.cli.common import (add_log_level_argument,  # noqa: E402
                                           add_num_threads_argument, provenance,
                                           setup_logging)
from echostream_fairseq.streaming import PipelineConfig  # noqa: E402
from echostream_fairseq.streaming.config import add_pipeline_arguments  # noqa: E402
from echostream_fairseq.streaming.pipeline import StreamingS2ST  # noqa: E402


def stream_inputs(data_dir: Path, count: int, seconds: float) -> List[np.ndarray]:
    """``count`` streams of ``seconds``: the joined test sentences, each stream starting
    further into them (by a prime number of seconds, so the streams' sentences do not line up)."""
    joined, _ = joined_test_sentences(data_dir, seconds + 7.0 * count)
    shift = 7 * SAMPLE_RATE
    length = int(seconds * SAMPLE_RATE)
    return [joined[i * shift:i * shift + length] for i in range(count)]


@contextlib.contextmanager
def component_cpu(engine: StreamingS2ST) -> Iterator[Dict[str, float]]:
    """CPU seconds spent in each component of ``engine`` while the context is open (each entry
    point wrapped with a timer, a microsecond a call; all restored on exit)."""
    from unittest import mock

    from echostream_fairseq.streaming.features import StreamingFbank
    from echostream_fairseq.streaming.units import FullRecomputeUnits, IncrementalUnits

    entry_points = {"fbank": [(StreamingFbank, "push")],
                    "encoder": [(engine.model.encoder, "infer")],
                    "CTC heads": [(engine, "_ctc_labels")],
                    "MT decoder": [(engine.mt_stepper, "write")]}
    if engine.vocoder is not None:  # speech on
        entry_points["T2U + unit decoder"] = [(IncrementalUnits, "extend"),
                                              (FullRecomputeUnits, "extend")]
        entry_points["vocoder"] = [(engine.vocoder, "synthesize_chunk")]
    totals = dict.fromkeys(entry_points, 0.0)

    def timed(original, name):
        def run(*args, **kwargs):
            start = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                totals[name] += time.process_time() - start
        return run

    with contextlib.ExitStack() as patches:
        for name, places in entry_points.items():
            for owner, attribute in places:
                # a function on a class, a bound method on an instance: both stay callable
                patches.enter_context(mock.patch.object(
                    owner, attribute, timed(getattr(owner, attribute), name)))
        yield totals


def run_rounds(engine: StreamingS2ST, streams: List[np.ndarray], chunk: int,
               batched: bool) -> List[float]:
    """CPU seconds of each round (every stream's next chunk, the last one final)."""
    states = [engine.init() for _ in streams]
    starts = list(range(0, len(streams[0]), chunk))
    costs = []
    for start in starts:
        chunks = [samples[start:start + chunk] for samples in streams]
        final = start == starts[-1]
        cpu = time.process_time()
        if batched:
            _, states = engine.step_batch(states, chunks, SAMPLE_RATE, [final] * len(states))
        else:
            for index, samples in enumerate(chunks):
                _, states[index] = engine.step(states[index], samples, SAMPLE_RATE, final)
        costs.append(time.process_time() - cpu)
    return costs


def component_shares(components: Dict[str, float], total: float) -> Dict[str, float]:
    """Each component's share of ``total`` CPU seconds, and the rest (Python glue, sentence
    cuts, policy, detokenising) as ``other``."""
    shares = {name: seconds / total for name, seconds in components.items()}
    shares["other"] = max(0.0, 1.0 - sum(shares.values()))
    return shares


def summary(costs: List[float], streams: int, chunk_ms: int) -> Dict[str, Any]:
    p95 = 1000 * percentile(costs, 0.95)
    return {"p50_ms": 1000 * percentile(costs, 0.5), "p95_ms": p95, "max_ms": 1000 * max(costs),
            "ms_per_stream_chunk": 1000 * sum(costs) / (len(costs) * streams),
            "real_time": p95 <= chunk_ms}


COLUMNS = [
    {"key": "batch", "header": "streams"},
    {"key": "batched", "header": "batched round p50 / p95 / max (ms)"},
    {"key": "serial", "header": "one after another p50 / p95 / max (ms)"},
    {"key": "per_chunk", "header": "CPU ms per stream-chunk, batched / serial"},
    {"key": "ratio", "header": "serial / batched", "digits": 2},
    {"key": "real_time", "header": "real time on one core, batched / serial"},
]


def result_summary(rows: List[Dict[str, Any]], best: Dict[str, int], args: argparse.Namespace,
                   label: str, argv: Optional[List[str]]) -> Dict[str, Any]:
    """The run as a RESULTS.md section (``--results-file``)."""
    from echostream_fairseq.cli.results import measured_summary

    def cell(summary: Dict[str, Any]) -> str:
        return f"{summary['p50_ms']:.1f} / {summary['p95_ms']:.1f} / {summary['max_ms']:.1f}"

    table = [{"batch": row["batch"], "batched": cell(row["batched"]),
              "serial": cell(row["serial"]),
              "per_chunk": f"{row['batched']['ms_per_stream_chunk']:.2f} / "
                           f"{row['serial']['ms_per_stream_chunk']:.2f}",
              "ratio": row["serial_over_batched"],
              "real_time": f"{'yes' if row['batched']['real_time'] else 'no'} / "
                           f"{'yes' if row['serial']['real_time'] else 'no'}"} for row in rows]
    components = list(rows[0]["batched"]["shares"])
    profile = {"kind": "table", "title": "Where the batched rounds' CPU goes",
               "columns": [{"key": "batch", "header": "streams"}] + [
                   {"key": name, "header": f"{name} (%)", "digits": 0} for name in components],
               "rows": [{"batch": row["batch"], **{name: 100 * row["batched"]["shares"][name]
                                                   for name in components}} for row in rows]}
    speech = "off" if args.no_speech else "on"
    description = (
        f"B streams of joined test sentences ({label}), {args.seconds:g} s each, each starting "
        f"at a different point, {args.chunk_ms} ms chunks, speech {speech}, one torch thread: "
        "every round gives each stream its next chunk, in one `step_batch` or in B `step` "
        "calls; the round's CPU time is what each stream waits. Real time: the rounds' p95 "
        f"within {args.chunk_ms} ms. Real-time streams per core: batched {best['batched']}, "
        f"one after another {best['serial']} (largest batch tried).")
    command = bench_command("batched_streams.py", argv, args.recipe_command)
    return measured_summary(f"Batched streams, speech {speech}", description,
                            [{"kind": "table", "columns": COLUMNS, "rows": table}, profile],
                            command, "bench/batched_streams.py", argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a = parser.add_argument
    a("--checkpoint", type=Path, default=None, help="EchoStream checkpoint")
    a("--data-dir", type=Path, default=None, help="corpus of the checkpoint")
    a("--chunk-ms", type=int, default=320, help="source chunk per step")
    a("--seconds", type=float, default=30.0, help="length of each stream")
    a("--batch-sizes", default="1,8,32,64", help="streams per batch, comma-separated")
    a("--no-speech", action="store_true", help="text only (no T2U/vocoder)")
    add_randomise_argument(parser)
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
    sizes = positive_ints(parser, "--batch-sizes", args.batch_sizes)
    if args.seconds <= 0:
        parser.error(f"--seconds must be positive, got {args.seconds:g}")
    checkpoint, data_dir = pick_checkpoint(args.checkpoint, args.data_dir)
    model, task = load_checkpoint(str(checkpoint), str(data_dir) if data_dir else None)
    if args.randomise:
        randomise(model, args.randomise)
    config = PipelineConfig.from_args(args, speech=not args.no_speech)
    config = config.for_chunk(model, args.chunk_ms)
    engine = StreamingS2ST.from_task(model, task, config)
    chunk = SAMPLE_RATE * args.chunk_ms // 1000
    inputs = stream_inputs(data_dir or Path(task.args.data), sizes[-1], args.seconds)
    rows = []
    for size in sizes:
        row: Dict[str, Any] = {"batch": size}
        for mode in ("serial", "batched"):
            with component_cpu(engine) as components:
                costs = run_rounds(engine, inputs[:size], chunk, batched=mode == "batched")
            row[mode] = summary(costs, size, args.chunk_ms)
            row[mode]["shares"] = component_shares(components, sum(costs))
            print(f"  B={size} {mode}: p95 {row[mode]['p95_ms']:.1f} ms per round",
                  file=sys.stderr, flush=True)
        row["serial_over_batched"] = (row["serial"]["ms_per_stream_chunk"]
                                      / row["batched"]["ms_per_stream_chunk"])
        rows.append(row)
    print(f"checkpoint {checkpoint}, {args.chunk_ms} ms chunks, {args.seconds:g} s streams, "
          f"{args.num_threads} torch thread(s), speech {'off' if args.no_speech else 'on'}")
    print("| streams | batched round p50 / p95 / max (ms) | serial round p50 / p95 / max (ms) | "
          "ms per stream-chunk batched / serial | serial / batched | real time batched / "
          "serial |")
    print("|---" * 6 + "|")
    for row in rows:
        b, s = row["batched"], row["serial"]
        print(f"| {row['batch']} | {b['p50_ms']:.1f} / {b['p95_ms']:.1f} / {b['max_ms']:.1f} | "
              f"{s['p50_ms']:.1f} / {s['p95_ms']:.1f} / {s['max_ms']:.1f} | "
              f"{b['ms_per_stream_chunk']:.2f} / {s['ms_per_stream_chunk']:.2f} | "
              f"x{row['serial_over_batched']:.2f} | {'yes' if b['real_time'] else 'no'} / "
              f"{'yes' if s['real_time'] else 'no'} |")
    best = {mode: max([row["batch"] for row in rows if row[mode]["real_time"]], default=0)
            for mode in ("batched", "serial")}
    components = list(rows[0]["batched"]["shares"])
    print("share of the batched rounds' CPU: | streams | " + " | ".join(components) + " |")
    for row in rows:
        print(f"| {row['batch']} | " + " | ".join(
            f"{100 * row['batched']['shares'][name]:.0f} %" for name in components) + " |")
    print(f"real-time streams per core (largest batch tried whose p95 round <= "
          f"{args.chunk_ms} ms): batched {best['batched']}, one after another {best['serial']}")
    if args.results_file:
        from echostream_fairseq.cli.results import dump_summary

        args.results_file.write_text(dump_summary(result_summary(
            rows, best, args, args.label or str(checkpoint), argv)), encoding="utf-8")
    if args.output:
        args.output.write_text(json.dumps({
            "checkpoint": str(checkpoint), "chunk_ms": args.chunk_ms, "seconds": args.seconds,
            "num_threads": args.num_threads, "speech": not args.no_speech,
            "randomise": args.randomise, "decode": config.to_dict(),
            "provenance": provenance(), "rows": rows, "real_time_streams": best}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
