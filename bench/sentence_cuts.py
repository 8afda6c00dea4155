#!/usr/bin/env python
"""Where the pipeline cuts a stream into sentences, against where the joined sentences meet.

The dev and test utterances of a corpus are joined with ``--gap-ms`` (300) of silence and
streamed in 320 ms chunks (text only) at each ``--pause-ms`` value. A boundary is found when a
cut falls between the end of one utterance's speech and 160 ms into the next one's (speech
extents from the wavs' energy: 10 ms frames above 1 % of the utterance's peak RMS); every other
cut splits a sentence. It prints, per pause length, the boundaries found and the extra cuts, and
the speech-to-speech gaps of the input (what a pause rule has to fit in).

Usage: python bench/sentence_cuts.py --checkpoint CKPT --data-dir DATA
       [--pause-ms 240,320,400,480,560,640] [--output out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from common import add_output_arguments, bench_command, positive_ints, run_bench  # noqa: E402
from echostream_fairseq.cli.common import (add_log_level_argument,  # noqa: E402
                                           add_num_threads_argument, provenance,
                                           setup_logging)
from echostream_fairseq.data.audio import SAMPLE_RATE, read_wav  # noqa: E402
from echostream_fairseq.streaming import PipelineConfig, StreamingS2STPipeline  # noqa: E402
from echostream_fairseq.streaming.config import segment_length_for_chunk  # noqa: E402
from echostream_fairseq.checkpoints import load_model_and_task as load_checkpoint  # noqa: E402

CHUNK_MS = 320
#: a cut this far into the next utterance's speech still counts as its boundary (the ASR's
#: blank run may end a few frames after speech resumes)
LATE_MS = 160


def speech_extent_ms(samples: np.ndarray) -> Tuple[float, float]:
    """First and last 10 ms frame above 1 % of the peak frame RMS, in ms."""
    hop = SAMPLE_RATE // 100
    frames = samples[:len(samples) // hop * hop].reshape(-1, hop)
    rms = np.sqrt((frames ** 2).mean(axis=1))
    loud = np.nonzero(rms > 0.01 * rms.max())[0]
    return 10.0 * loud[0], 10.0 * (loud[-1] + 1)


def joined_input(data_dir: Path, gap_ms: int) -> Tuple[np.ndarray, List[Tuple[float, float]]]:
    """Dev and test utterances joined with silence; the speech gaps (ms) between them."""
    wavs = [line for split in ("dev", "test")
            for line in (data_dir / "simuleval" / split / "wav_list.txt").read_text().split()]
    gap = np.zeros(SAMPLE_RATE * gap_ms // 1000, dtype=np.float32)
    pieces, extents, position = [], [], 0
    for wav in wavs:
        samples, rate = read_wav(wav)
        if rate != SAMPLE_RATE:
            raise SystemExit(f"{wav}: expected {SAMPLE_RATE} Hz, got {rate}")
        start, end = speech_extent_ms(samples)
        offset = 1000.0 * position / SAMPLE_RATE
        extents.append((offset + start, offset + end))
        pieces += [samples, gap]
        position += len(samples) + len(gap)
    gaps = [(extents[i][1], extents[i + 1][0]) for i in range(len(extents) - 1)]
    return np.concatenate(pieces), gaps


def cut_points(pipe: StreamingS2STPipeline, samples: np.ndarray) -> List[int]:
    """Where the pipeline ended sentences (ms), the end of the stream left out."""
    chunk = SAMPLE_RATE * CHUNK_MS // 1000
    pipe.reset()
    ends = []
    for start in range(0, len(samples), chunk):
        ends += [s.end_ms for s in pipe.push(samples[start:start + chunk], SAMPLE_RATE).sentences]
    ends += [s.end_ms for s in pipe.finish().sentences]
    return ends[:-1]


def score_cuts(cuts: List[int], gaps: List[Tuple[float, float]]) -> Dict[str, int]:
    found = {k for cut in cuts for k, (lo, hi) in enumerate(gaps) if lo <= cut <= hi + LATE_MS}
    right = sum(any(lo <= cut <= hi + LATE_MS for lo, hi in gaps) for cut in cuts)
    return {"cuts": len(cuts), "boundaries": len(gaps), "boundaries_found": len(found),
            "extra_cuts": len(cuts) - right}


COLUMNS = [{"key": "pause_ms", "header": "pause (ms)"},
           {"key": "found", "header": "boundaries found"},
           {"key": "extra_cuts", "header": "extra cuts (inside a sentence)"}]


def result_summary(rows: List[Dict[str, Any]], widths: List[float], args: argparse.Namespace,
                   label: str, argv: Optional[List[str]]) -> Dict[str, Any]:
    """The run as a RESULTS.md section (``--results-file``)."""
    from echostream_fairseq.cli.results import measured_summary

    table = [{"pause_ms": row["pause_ms"],
              "found": f"{row['boundaries_found']} / {row['boundaries']}",
              "extra_cuts": row["extra_cuts"]} for row in rows]
    description = (
        f"{len(widths) + 1} dev and test utterances ({label}) joined with {args.gap_ms} ms of "
        f"silence (speech-to-speech gaps {min(widths):.0f} to {max(widths):.0f} ms, median "
        f"{statistics.median(widths):.0f} ms), streamed in {CHUNK_MS} ms chunks, text only. A "
        "boundary is found when a cut falls between one utterance's speech and "
        f"{LATE_MS} ms into the next one's; every other cut splits a sentence.")
    command = bench_command("sentence_cuts.py", argv, args.recipe_command)
    return measured_summary("Where a stream is cut into sentences", description,
                            [{"kind": "table", "columns": COLUMNS, "rows": table}], command,
                            "bench/sentence_cuts.py", argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a = parser.add_argument
    a("--checkpoint", type=Path, required=True, help="EchoStream checkpoint")
    a("--data-dir", type=Path, default=None, help="corpus of the checkpoint")
    a("--pause-ms", default="240,320,400,480,560,640", help="pause lengths to try, ms")
    a("--gap-ms", type=int, default=300, help="silence put between the utterances")
    add_num_threads_argument(parser, "torch threads")
    add_output_arguments(parser)
    add_log_level_argument(parser, default="WARNING")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    return run_bench(lambda: _run_bench(argv))


def _run_bench(argv: Optional[List[str]]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    pauses = positive_ints(parser, "--pause-ms", args.pause_ms)
    setup_logging(args.log_level)
    torch.set_num_threads(args.num_threads)
    model, task = load_checkpoint(str(args.checkpoint),
                                  str(args.data_dir) if args.data_dir else None)
    samples, gaps = joined_input(args.data_dir or Path(task.args.data), args.gap_ms)
    widths = [hi - lo for lo, hi in gaps]
    print(f"{len(gaps) + 1} utterances joined with {args.gap_ms} ms of silence; speech-to-speech "
          f"gaps min {min(widths):.0f} ms, median {statistics.median(widths):.0f} ms")
    rows: List[Dict[str, Any]] = []
    print("| pause (ms) | boundaries found | extra cuts (inside a sentence) |")
    print("|---|---|---|")
    for pause in pauses:
        config = PipelineConfig(speech=False, sentence_pause_ms=pause,
                                segment_length=segment_length_for_chunk(model, CHUNK_MS))
        row = {"pause_ms": pause, **score_cuts(
            cut_points(StreamingS2STPipeline.from_task(model, task, config), samples), gaps)}
        rows.append(row)
        print(f"| {pause} | {row['boundaries_found']} / {row['boundaries']} | "
              f"{row['extra_cuts']} |", flush=True)
    if args.results_file:
        from echostream_fairseq.cli.results import dump_summary

        args.results_file.write_text(dump_summary(result_summary(
            rows, widths, args, args.label or str(args.checkpoint), argv)), encoding="utf-8")
    if args.output:
        args.output.write_text(json.dumps({
            "checkpoint": str(args.checkpoint), "gap_ms": args.gap_ms, "chunk_ms": CHUNK_MS,
            "speech_gaps_ms": {"min": min(widths), "median": statistics.median(widths)},
            "provenance": provenance(), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
