"""Compute per source chunk of a SimulEval agent over one long stream (either system's agent).

    python recipes/streamspeech_compare/agent_chunk_cost.py --wav stream.wav --chunk-ms 320 \
        --output-json cost.json -- <simuleval agent options>

The stream (16 kHz mono; ``echostream-compare-streamspeech compute`` writes test sentences joined
with 0.3 s silences, as the benchmarks do) is fed as SimulEval feeds an agent, one ``--chunk-ms``
segment per ``pushpop``, then empty final segments until the agent finishes; each call's process CPU
time (one torch thread) is recorded with the stream position it ends at. A chunk's cost depends only
on the stream before it, so one long stream gives the per-chunk cost at every shorter length too.
Everything after ``--`` is the agent's own SimulEval command line (``--agent FILE`` or
``--agent-class NAME`` and its options); the agent is built by SimulEval's own
``build_system_args``.

This file imports no EchoStream module itself: StreamSpeech's agent runs in its own process.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import wave
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
MAX_FINAL_CALLS = 1000  # a finished source that never finishes the target is a bug


def read_wav(path: str) -> np.ndarray:
    with wave.open(path, "rb") as handle:
        if handle.getframerate() != SAMPLE_RATE or handle.getnchannels() != 1:
            raise SystemExit(f"error: {path}: expected 16 kHz mono")
        data = handle.readframes(handle.getnframes())
    return np.frombuffer(data, dtype=np.int16).astype(np.float32) / 32768.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wav", required=True, help="the stream, 16 kHz mono")
    parser.add_argument("--chunk-ms", type=int, default=320)
    parser.add_argument("--output-json", type=Path, required=True)
    if "--" not in sys.argv:
        parser.error("give the agent's SimulEval options after --")
    split = sys.argv.index("--")
    args = parser.parse_args(sys.argv[1:split])
    agent_argv = sys.argv[split + 1:]

    from simuleval.data.segments import EmptySegment, SpeechSegment
    from simuleval.utils.agent import build_system_args

    stream = read_wav(args.wav)
    sys.argv = [sys.argv[0], *agent_argv, "--source-segment-size", str(args.chunk_ms),
                "--source", "/dev/null", "--target", "/dev/null"]
    system, _ = build_system_args()
    system.reset()
    step = int(args.chunk_ms * SAMPLE_RATE / 1000)
    positions, costs, finished = [], [], False
    for start in range(0, stream.size, step):
        last = start + step >= stream.size
        segment = SpeechSegment(content=stream[start:start + step].tolist(),
                                sample_rate=SAMPLE_RATE, finished=last)
        began = time.process_time()
        output = system.pushpop(segment)
        costs.append(time.process_time() - began)
        positions.append(min(start + step, stream.size) / SAMPLE_RATE)
        finished = bool(getattr(output, "finished", False))
    final_cost, calls = 0.0, 0
    while not finished and calls < MAX_FINAL_CALLS:
        began = time.process_time()
        output = system.pushpop(EmptySegment(finished=True))
        final_cost += time.process_time() - began
        finished, calls = bool(getattr(output, "finished", False)), calls + 1
    args.output_json.parent.mkdir(parents=True, exist_ok=True)
    args.output_json.write_text(json.dumps({
        "seconds": stream.size / SAMPLE_RATE, "chunk_ms": args.chunk_ms, "positions_s": positions,
        "chunk_cpu_s": costs, "final_cpu_s": final_cost, "final_calls": calls,
        "finished": finished, "agent_argv": agent_argv}, indent=1) + "\n")
    print(f"{len(costs)} chunks, {sum(costs):.1f} CPU s, then {final_cost:.2f} s to finish")
    return 0


if __name__ == "__main__":
    sys.exit(main())
