#!/usr/bin/env python
"""How much faster ``echostream-evaluate`` runs batched on both cores than serially: the same
test sentences streamed speech to speech at one chunk size, evaluated twice in one run.

Each test wav is one sentence (``--single-sentence``, as the recipe's stage 4 evaluates).
Serial: ``--batch-size 1 --num-threads 1``; batched: ``--batch-size B --num-threads T`` (T torch
threads, T single-thread Whisper transcriptions and T voice calls at once). Each run's wall time
is split into streaming and scoring (Whisper transcribing the speech for ASR-BLEU), so the ratio
says which part binds; the texts of the two runs (English, German ASR, ST CTC) must be equal
(the batched evaluation's contract), which the bench checks and prints. Last, Whisper's encoder
is timed alone on one thread over one 30 s window and over a batch of 8 windows: one
transcription encodes a whole window whatever the output's length, so unless batching makes a
window cheaper, the scoring needs about the serial scoring's time over T cores.

Usage: python bench/evaluation_speed.py --checkpoint CKPT --data-dir DATA [--batch-size 32]
       [--num-threads 2] [--chunk-ms 320] [--max-utterances N] [--results-file FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from common import add_output_arguments, bench_command, run_bench  # noqa: E402
from echostream_fairseq.cli import evaluate  # noqa: E402
from echostream_fairseq.cli.common import (add_log_level_argument,  # noqa: E402
                                           positive_int, provenance, setup_logging)

COLUMNS = [
    {"key": "run", "header": "run"},
    {"key": "wall_s", "header": "wall (s)", "digits": 1},
    {"key": "stream_s", "header": "streaming (s)", "digits": 1},
    {"key": "asr_s", "header": "Whisper scoring (s)", "digits": 1},
    {"key": "asr_bleu", "header": "ASR-BLEU", "digits": 2},
    {"key": "bleu", "header": "text BLEU", "digits": 2},
]


def evaluate_once(args: argparse.Namespace, batch_size: int, num_threads: int,
                  output_dir: Path) -> Dict[str, Any]:
    argv = ["--checkpoint", str(args.checkpoint), "--manifest", str(args.manifest),
            "--data-dir", str(args.data_dir), "--chunk-ms", str(args.chunk_ms), "--no-offline",
            "--single-sentence",  # each test wav is one sentence, as the recipe's stage 4 scores it
            "--no-progress", "--batch-size", str(batch_size), "--num-threads", str(num_threads),
            "--output-dir", str(output_dir), "--log-level", args.log_level]
    if args.max_utterances:
        argv += ["--max-utterances", str(args.max_utterances)]
    report = evaluate.run(evaluate.build_parser().parse_args(argv), argv)
    condition = report["results"]["streaming"][0]
    with open(output_dir / condition["name"] / "utterances.jsonl", encoding="utf-8") as lines:
        outputs = [(u["target_text"], u["asr_text"], u["st_ctc_text"])
                   for u in map(json.loads, lines)]
    return {"batch_size": batch_size, "num_threads": num_threads,
            "wall_s": condition["wall_s"], "stream_s": condition["compute"]["stream_wall_s"],
            "asr_s": condition["compute"]["asr_wall_s"],
            "asr_bleu": condition["speech"]["asr_bleu"], "bleu": condition["text"]["bleu"],
            "num_utterances": report["num_utterances"], "outputs": outputs}


#: how much faster than serial the long-form issue asked the evaluation to be
AIMED_SPEEDUP = 5


def whisper_encoder_ms(batches: Sequence[int], repeats: int = 8) -> Dict[int, float]:
    """Milliseconds of Whisper tiny.en's encoder (the scorer's, one thread) per 30 s window,
    for each number of windows a call (the median of ``repeats`` calls; the mel's content does
    not change its cost)."""
    import statistics
    import time

    import ctranslate2
    import numpy as np

    from echostream_fairseq.scoring.asr_bleu import load_whisper_tiny_en

    model = load_whisper_tiny_en().model
    per_window = {}
    for batch in batches:
        windows = ctranslate2.StorageView.from_array(
            np.random.default_rng(0).standard_normal((batch, model.n_mels, 3000), np.float32))
        model.encode(windows)  # the first call allocates
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.encode(windows)
            times.append(time.perf_counter() - start)
        per_window[batch] = 1000.0 * statistics.median(times) / batch
    return per_window


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a = parser.add_argument
    a("--checkpoint", type=Path, required=True, help="EchoStream checkpoint or shipped name")
    a("--data-dir", type=Path, required=True, help="the corpus (its test set is evaluated)")
    a("--manifest", type=Path, default=None,
      help="test manifest (default: <data-dir>/test_sampled.tsv)")
    a("--chunk-ms", type=positive_int, default=320, help="source chunk size")
    a("--max-utterances", type=positive_int, default=None,
      help="only the first N test sentences")
    a("--batch-size", type=positive_int, default=32, help="streams stepped together, batched run")
    a("--num-threads", type=positive_int, default=2,
      help="torch threads, and Whisper transcriptions and voice calls at once, batched run")
    add_output_arguments(parser)
    add_log_level_argument(parser, default="WARNING")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    args.manifest = args.manifest or args.data_dir / "test_sampled.tsv"
    return run_bench(lambda: measure(args, argv))


def measure(args: argparse.Namespace, argv: Optional[List[str]]) -> int:
    """Both evaluations, the printed comparison and the files asked for; 1 if the texts
    differ."""
    with tempfile.TemporaryDirectory(prefix="evaluation-speed-") as scratch:
        serial = evaluate_once(args, 1, 1, Path(scratch) / "serial")
        batched = evaluate_once(args, args.batch_size, args.num_threads,
                                Path(scratch) / "batched")
    same = serial.pop("outputs") == batched.pop("outputs")
    encoder_ms = whisper_encoder_ms((1, 8))
    ratio = serial["wall_s"] / batched["wall_s"]
    parts = (f"streaming x{serial['stream_s'] / batched['stream_s']:.2f}, Whisper's scoring "
             f"x{serial['asr_s'] / batched['asr_s']:.2f}")
    scoring_share = serial["asr_s"] / serial["wall_s"]
    rows = [{"run": "serial (batch 1, 1 thread)", **serial},
            {"run": f"batched (batch {args.batch_size}, {args.num_threads} threads)", **batched}]
    print(f"{serial['num_utterances']} test sentences at {args.chunk_ms} ms, speech to speech")
    for row in rows:
        print(f"  {row['run']}: wall {row['wall_s']:.1f} s (streaming {row['stream_s']:.1f} s, "
              f"Whisper {row['asr_s']:.1f} s), ASR-BLEU {row['asr_bleu']:.2f}, "
              f"BLEU {row['bleu']:.2f}")
    per_sentence_ms = 1000.0 * serial["asr_s"] / serial["num_utterances"]
    floor = (f"Whisper's encoder over one 30 s window: {encoder_ms[1]:.0f} ms on one thread "
             f"({encoder_ms[8]:.0f} ms a window in a batch of 8) of the serial scoring's "
             f"{per_sentence_ms:.0f} ms a sentence; so the scoring alone needs about "
             f"{serial['asr_s'] / args.num_threads:.0f} s on {args.num_threads} cores, against "
             f"{serial['wall_s'] / AIMED_SPEEDUP:.0f} s for the whole evaluation "
             f"{AIMED_SPEEDUP}x faster than serial")
    print(f"serial / batched: x{ratio:.2f} ({parts}); Whisper's scoring is "
          f"{100 * scoring_share:.0f} % of the serial run; the same texts: {same}")
    print(floor)
    if args.results_file:
        from echostream_fairseq.cli.results import dump_summary, measured_summary

        description = (
            f"`echostream-evaluate` on {serial['num_utterances']} test sentences "
            f"({args.label or args.checkpoint}), {args.chunk_ms} ms chunks, speech to speech, "
            f"run twice in one process: serially (batch 1, one thread) and batched (batch "
            f"{args.batch_size}, {args.num_threads} torch threads, {args.num_threads} Whisper "
            f"transcriptions and voice calls at once). Serial / batched: x{ratio:.2f} ({parts}); "
            f"Whisper's scoring is "
            f"{100 * scoring_share:.0f} % of the serial evaluation. The two runs' texts "
            f"(English, German ASR, ST CTC) are {'equal' if same else 'NOT equal'}. {floor}.")
        table = [{k: row[k] for k in ("run", "wall_s", "stream_s", "asr_s", "asr_bleu", "bleu")}
                 for row in rows]
        args.results_file.write_text(dump_summary(measured_summary(
            "Evaluation speed, batched against serial", description,
            [{"kind": "table", "columns": COLUMNS, "rows": table}],
            bench_command("evaluation_speed.py", argv, args.recipe_command),
            "bench/evaluation_speed.py", argv)), encoding="utf-8")
    if args.output:
        args.output.write_text(json.dumps({"rows": rows, "serial_over_batched": ratio,
                                           "outputs_equal": same,
                                           "whisper_encoder_ms_per_window": encoder_ms,
                                           "provenance": provenance(argv)}, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
