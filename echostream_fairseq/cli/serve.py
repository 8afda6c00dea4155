"""echostream-serve: stream many websocket clients through one EchoStream model, batched.

Example::

    echostream-serve --checkpoint exp/deen_mini/checkpoints/checkpoint_best.pt --data-dir data \\
        --decode-config configs/decode/deen_mini.yaml --port 8765

It binds 127.0.0.1 unless ``--host`` says otherwise (then give ``--token``). The protocol, the
limits and running several servers behind a balancer: docs/server.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Optional, Sequence

from echostream_fairseq.cli.common import (UserError, add_log_level_argument,
                                           add_num_threads_argument, positive_int, run_main,
                                           setup_logging)
from echostream_fairseq.streaming.config import add_pipeline_arguments

logger = logging.getLogger("echostream.serve")

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a = parser.add_argument
    a("--checkpoint", required=True, help="EchoStream fairseq checkpoint (.pt) to serve")
    a("--data-dir", default=None, help="corpus folder with the configs and dictionaries "
      "(default: the data path saved in the checkpoint)")
    a("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    a("--port", type=int, default=8765, help="port (0: any free one)")
    a("--chunk-ms", type=positive_int, default=320,
      help="source chunk each stream is stepped in (the Emformer segment)")
    a("--max-connections", type=positive_int, default=64, help="concurrent connections")
    a("--max-message-bytes", type=positive_int, default=1 << 20,
      help="largest websocket message; a larger one closes its connection")
    a("--max-stream-seconds", type=float, default=3600.0, help="source audio per stream")
    a("--max-batch", type=positive_int, default=64, help="streams per batched step at most")
    a("--allowed-origins", default=None,
      help="comma-separated browser origins accepted (default: any, and no Origin header)")
    a("--token", default=None, help="a secret every stream's start message must carry "
      "(required when --host is not loopback)")
    a("--no-speech", action="store_true", help="text only (no T2U/vocoder)")
    add_pipeline_arguments(parser.add_argument_group("decoding (as the SimulEval agents)"))
    add_num_threads_argument(parser, "torch CPU threads")
    add_log_level_argument(parser)
    return parser


async def _serve_forever(engine, opts: argparse.Namespace, limits) -> None:
    from echostream_fairseq.server.app import serve

    async with serve(engine, opts.host, opts.port, limits, opts.max_batch) as (_, server):
        host, port = server.sockets[0].getsockname()[:2]
        logger.info("serving on ws://%s:%d (%s); stop with Ctrl-C", host, port,
                    "token required" if limits.token else "no token")
        stop = asyncio.get_running_loop().create_future()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.cancel)
        try:
            await stop
        except asyncio.CancelledError:
            logger.info("stopping")


def main(argv: Optional[Sequence[str]] = None) -> int:
    opts = build_parser().parse_args(argv)
    setup_logging(opts.log_level)

    def body() -> None:
        import torch

        from echostream_fairseq.checkpoints import load_model_and_task
        from echostream_fairseq.server.protocol import ServerLimits
        from echostream_fairseq.streaming import PipelineConfig, StreamingS2ST

        if opts.host not in LOOPBACK and not opts.token:
            raise UserError(f"--host {opts.host} serves beyond this machine: give --token")
        try:
            limits = ServerLimits(
                max_connections=opts.max_connections, max_message_bytes=opts.max_message_bytes,
                max_stream_seconds=opts.max_stream_seconds, token=opts.token,
                allowed_origins=tuple(o.strip() for o in opts.allowed_origins.split(",")
                                      if o.strip()) if opts.allowed_origins else None)
        except ValueError as error:
            raise UserError(str(error)) from None
        torch.set_num_threads(opts.num_threads)
        config = PipelineConfig.from_args(opts, speech=not opts.no_speech)
        model, task = load_model_and_task(opts.checkpoint, opts.data_dir)
        config = config.for_chunk(model, opts.chunk_ms)
        engine = StreamingS2ST.from_task(model, task, config)
        try:
            asyncio.run(_serve_forever(engine, opts, limits))
        except OSError as error:  # the address is taken or not ours
            raise UserError(f"cannot serve on {opts.host}:{opts.port}: "
                            f"{error.strerror or error}") from None

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
