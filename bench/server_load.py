#!/usr/bin/env python
"""How many concurrent real-time streams ``echostream-serve`` sustains: batched steps against
the same servers forced to batch 1, measured in the same run, on loopback.

``--servers K`` server processes (``--num-threads`` torch threads each, default one; behind
nginx with ``least_conn``, as docs/server.md configures it, when K > 1) serve N websocket
clients (``--streams``), which run in this process: each streams joined test sentences at
real-time pace (a 320 ms chunk every 320 ms, their starts spread over the first chunk), then
ends and reads everything back. The figure is the servers' chunk latency: from a chunk's
arrival (its last sample, or the end message) to its outputs handed to the connection, which
includes the wait for the batch and its compute. The streams are real time when its p95 over
all servers stays within the chunk length.

Usage: python bench/server_load.py --checkpoint CKPT --data-dir DATA [--servers 1]
       [--streams 8,16,32,48,64] [--seconds 20] [--no-speech] [--output out.json]
       [--results-file FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import tempfile
import time
from contextlib import ExitStack
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from batched_streams import stream_inputs  # noqa: E402
from common import add_output_arguments, bench_command, positive_ints, run_bench  # noqa: E402
from long_stream_memory import percentile  # noqa: E402
from streaming_cost import SAMPLE_RATE  # noqa: E402
from echostream_fairseq.checkpoints import load_model_and_task  # noqa: E402
from echostream_fairseq.cli.common import (add_log_level_argument,  # noqa: E402
                                           add_num_threads_argument, provenance,
                                           setup_logging)
from echostream_fairseq.server.app import serve  # noqa: E402
from echostream_fairseq.server.balancer import run_nginx  # noqa: E402
from echostream_fairseq.server.protocol import ServerLimits, encode_pcm  # noqa: E402
from echostream_fairseq.streaming import PipelineConfig, StreamingS2ST  # noqa: E402
from echostream_fairseq.streaming.config import add_pipeline_arguments  # noqa: E402


async def client(url: str, samples: np.ndarray, chunk: int, delay_s: float) -> int:
    """Stream at real-time pace; returns the messages received."""
    from websockets.asyncio.client import connect

    received = 0
    await asyncio.sleep(delay_s)
    async with connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": SAMPLE_RATE}))
        await ws.recv()

        async def read() -> None:
            nonlocal received
            async for message in ws:
                received += 1
                if isinstance(message, str) and json.loads(message)["type"] == "end":
                    return

        reader = asyncio.create_task(read())
        pace = chunk / SAMPLE_RATE
        start = time.monotonic()
        for index, begin in enumerate(range(0, len(samples), chunk)):
            await asyncio.sleep(max(0.0, start + index * pace - time.monotonic()))
            await ws.send(encode_pcm(samples[begin:begin + chunk]))
        await ws.send(json.dumps({"type": "end"}))
        await reader
    return received


def load_checkpoint(args: argparse.Namespace) -> Tuple[Any, Any]:
    return load_model_and_task(str(args.checkpoint),
                               str(args.data_dir) if args.data_dir else None)


def server_process(argv: Optional[List[str]], control: Connection) -> None:
    """One server process: serves a run for each ``(max_batch, max_connections)`` received on
    ``control`` (sending back its port, then, when told the run is over, its figures), until
    ``None`` (between runs or in one: the parent gave up)."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    torch.set_num_threads(args.num_threads)
    model, task = load_checkpoint(args)
    config = PipelineConfig.from_args(args, speech=not args.no_speech)
    engine = StreamingS2ST.from_task(model, task, config.for_chunk(model, args.chunk_ms))

    async def serve_runs() -> None:
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, control.recv)
            if command is None:
                return
            max_batch, max_connections = command
            limits = ServerLimits(max_connections=max_connections)
            async with serve(engine, port=0, limits=limits, max_batch=max_batch) as (app,
                                                                                     server):
                cpu = time.process_time()
                control.send(server.sockets[0].getsockname()[1])
                if await loop.run_in_executor(None, control.recv) is None:
                    return  # the parent stopped mid-run
                control.send({"latencies": list(app.scheduler.chunk_latencies),
                              "steps": app.scheduler.steps,
                              "largest_batch": app.scheduler.largest_batch,
                              "cpu_s": time.process_time() - cpu})

    asyncio.run(serve_runs())


class ServerPool:
    """``count`` server processes, started once and reused for every run."""

    def __init__(self, count: int, argv: Optional[List[str]]) -> None:
        context = multiprocessing.get_context("spawn")  # no torch state forked
        self.controls, self.processes = [], []
        for _ in range(count):
            ours, theirs = context.Pipe()
            process = context.Process(target=server_process, args=(argv, theirs), daemon=True)
            process.start()
            theirs.close()  # only the child holds it: its death ends our recv with EOFError
            self.controls.append(ours)
            self.processes.append(process)

    def start_run(self, max_batch: int, max_connections: int) -> List[int]:
        for control in self.controls:
            control.send((max_batch, max_connections))
        return [control.recv() for control in self.controls]

    def end_run(self) -> List[Dict[str, Any]]:
        for control in self.controls:
            control.send("done")
        return [control.recv() for control in self.controls]

    def close(self) -> None:
        for control, process in zip(self.controls, self.processes):
            try:
                control.send(None)
            except (BrokenPipeError, OSError):
                pass  # it is gone already
            process.join(30)
            if process.is_alive():
                process.terminate()
                process.join()


def load_run(pool: ServerPool, inputs: List[np.ndarray], chunk: int,
             max_batch: int) -> Dict[str, Any]:
    """The clients of one run, through nginx when the pool has several servers."""
    ports = pool.start_run(max_batch, len(inputs) + 1)
    spread = chunk / SAMPLE_RATE
    with ExitStack() as stack:
        port = ports[0]
        if len(ports) > 1:
            run_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nginx-")))
            # each stream holds two of nginx's connections (client and upstream); headroom
            # for the handshakes of clients that connect while others close
            port = stack.enter_context(run_nginx(run_dir, ports,
                                                 connections=4 * len(inputs) + 64))

        async def clients() -> None:
            await asyncio.gather(*[client(f"ws://127.0.0.1:{port}", samples, chunk,
                                          spread * i / len(inputs))
                                   for i, samples in enumerate(inputs)])

        asyncio.run(clients())
    servers = pool.end_run()
    latencies = [x for server in servers for x in server["latencies"]]
    return {"p50_ms": 1000 * percentile(latencies, 0.5),
            "p95_ms": 1000 * percentile(latencies, 0.95),
            "max_ms": 1000 * max(latencies), "chunks": len(latencies),
            "steps": [server["steps"] for server in servers],
            "largest_batch": max(server["largest_batch"] for server in servers),
            "cpu_s": [server["cpu_s"] for server in servers]}


COLUMNS = [
    {"key": "streams", "header": "concurrent streams"},
    {"key": "batched", "header": "chunk latency batched p50 / p95 / max (ms)"},
    {"key": "unbatched", "header": "batch 1 p50 / p95 / max (ms)"},
    {"key": "largest", "header": "largest batch"},
    {"key": "real_time", "header": "real time, batched / batch 1"},
]


def result_summary(rows: List[Dict[str, Any]], best: Dict[str, int], args: argparse.Namespace,
                   label: str, argv: Optional[List[str]]) -> Dict[str, Any]:
    """The run as a RESULTS.md section (``--results-file``)."""
    from echostream_fairseq.cli.results import measured_summary

    def cell(run: Dict[str, Any]) -> str:
        return f"{run['p50_ms']:.0f} / {run['p95_ms']:.0f} / {run['max_ms']:.0f}"

    table = [{"streams": row["streams"], "batched": cell(row["batched"]),
              "unbatched": cell(row["unbatched"]), "largest": row["batched"]["largest_batch"],
              "real_time": f"{'yes' if row['batched']['p95_ms'] <= args.chunk_ms else 'no'} / "
                           f"{'yes' if row['unbatched']['p95_ms'] <= args.chunk_ms else 'no'}"}
             for row in rows]
    speech = "off" if args.no_speech else "on"
    threads = ("one torch thread" if args.num_threads == 1
               else f"{args.num_threads} torch threads")
    servers = (f"{args.servers} `echostream-serve` processes behind nginx (least_conn), each"
               if args.servers > 1 else "one `echostream-serve` process")
    description = (
        f"N websocket clients on loopback ({label}) each stream {args.seconds:g} s of joined "
        f"test sentences at real-time pace in {args.chunk_ms} ms chunks, speech {speech}, to "
        f"{servers} with {threads} (the clients run in another process); the same "
        f"streams to the same {'servers' if args.servers > 1 else 'server'} forced to batch 1. "
        "Chunk latency: from a chunk's arrival "
        "to its outputs handed to the connection. Real-time streams (p95 within "
        f"{args.chunk_ms} ms): batched {best['batched']}, batch 1 {best['unbatched']} "
        "(largest count tried).")
    title = (f"The server under load, {args.servers} processes, speech {speech}"
             if args.servers > 1 else f"The server under load, speech {speech}")
    return measured_summary(title, description,
                            [{"kind": "table", "columns": COLUMNS, "rows": table}],
                            bench_command("server_load.py", argv, args.recipe_command),
                            "bench/server_load.py", argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a = parser.add_argument
    a("--checkpoint", type=Path, required=True, help="EchoStream checkpoint")
    a("--data-dir", type=Path, default=None, help="corpus of the checkpoint")
    a("--chunk-ms", type=int, default=320, help="source chunk per step")
    a("--seconds", type=float, default=20.0, help="length of each stream")
    a("--streams", default="8,16,32,48,64", help="concurrent stream counts, comma-separated")
    a("--servers", type=int, default=1,
      help="server processes (behind nginx when more than one; --num-threads each)")
    a("--no-speech", action="store_true", help="text only (no T2U/vocoder)")
    add_num_threads_argument(parser, "torch threads")
    add_output_arguments(parser)
    add_pipeline_arguments(parser.add_argument_group("decoding"))
    add_log_level_argument(parser, default="WARNING")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    return run_bench(lambda: _run_bench(argv), reads_files_only=False)


def _run_bench(argv: Optional[List[str]]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    torch.set_num_threads(args.num_threads)
    counts = positive_ints(parser, "--streams", args.streams)
    if args.seconds <= 0:
        parser.error(f"--seconds must be positive, got {args.seconds:g}")
    if args.servers < 1:
        parser.error(f"--servers must be at least 1, got {args.servers}")
    _, task = load_checkpoint(args)  # the checkpoint is checked before the servers start
    chunk = SAMPLE_RATE * args.chunk_ms // 1000
    # a shipped model's corpus is its cache folder, which holds no test set
    inputs = stream_inputs(args.data_dir or Path(task.args.data), counts[-1], args.seconds)
    del task
    pool = ServerPool(args.servers, argv if argv is not None else sys.argv[1:])
    rows = []
    try:
        for count in counts:
            row: Dict[str, Any] = {"streams": count}
            for mode, max_batch in (("batched", count), ("unbatched", 1)):
                row[mode] = load_run(pool, inputs[:count], chunk, max_batch)
                print(f"  {count} streams {mode}: p95 {row[mode]['p95_ms']:.0f} ms",
                      file=sys.stderr, flush=True)
            rows.append(row)
    finally:
        pool.close()
    best = {mode: max([r["streams"] for r in rows if r[mode]["p95_ms"] <= args.chunk_ms],
                      default=0) for mode in ("batched", "unbatched")}
    print(f"checkpoint {args.checkpoint}, {args.seconds:g} s streams, {args.chunk_ms} ms chunks, "
          f"speech {'off' if args.no_speech else 'on'}, {args.servers} server process(es), "
          f"{args.num_threads} torch thread(s) each")
    print("| streams | batched p50 / p95 / max (ms) | batch 1 p50 / p95 / max (ms) | "
          "largest batch |")
    print("|---|---|---|---|")
    for row in rows:
        b, u = row["batched"], row["unbatched"]
        print(f"| {row['streams']} | {b['p50_ms']:.0f} / {b['p95_ms']:.0f} / {b['max_ms']:.0f} | "
              f"{u['p50_ms']:.0f} / {u['p95_ms']:.0f} / {u['max_ms']:.0f} | "
              f"{b['largest_batch']} |")
    print(f"real-time streams (p95 chunk latency <= {args.chunk_ms} ms): batched "
          f"{best['batched']}, batch 1 {best['unbatched']}")
    if args.results_file:
        from echostream_fairseq.cli.results import dump_summary

        args.results_file.write_text(dump_summary(result_summary(
            rows, best, args, args.label or str(args.checkpoint), argv)), encoding="utf-8")
    if args.output:
        args.output.write_text(json.dumps({"rows": rows, "real_time_streams": best,
                                           "provenance": provenance(argv)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
