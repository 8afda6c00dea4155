#!/usr/bin/env python
"""Encoder-only streaming cost on CPU, measured side by side in one run.

Builds the encoder of a registered arch (default ``echostream``, StreamSpeech-sized) with random
weights and prints, as ratios measured in this run:

* per-chunk ``infer`` cost after N minutes of stream vs at the start (flat means <= ~1.3);
* streaming total over a T-second input vs one offline ``forward`` over the same input.

Usage: python bench/encoder_chunk_cost.py [--arch echostream] [--minutes 3] [--seconds 20]
"""

import argparse
import statistics
import time
from argparse import Namespace

import torch

import echostream_fairseq  # noqa: F401  (registers the archs)
from echostream_fairseq.cli.common import (add_log_level_argument, add_num_threads_argument,
                                           setup_logging)
from echostream_fairseq.models.emformer_encoder import EchoStreamEncoder
from fairseq.models import ARCH_CONFIG_REGISTRY


def build_encoder(arch: str) -> EchoStreamEncoder:
    args = Namespace(input_feat_per_channel=80, input_channels=1)
    ARCH_CONFIG_REGISTRY[arch](args)
    torch.manual_seed(0)
    return EchoStreamEncoder(args).eval()


def per_chunk_seconds(encoder: EchoStreamEncoder, minutes: float) -> tuple:
    geometry = encoder.geometry()
    chunk = torch.randn(1, geometry.segment_fbank_frames, 80)
    steps = geometry.seconds_to_fbank_frames(minutes * 60) // geometry.segment_fbank_frames
    state, times = encoder.init_state(1), []
    for _ in range(steps):
        start = time.perf_counter()
        _, state = encoder.infer(chunk, state)
        times.append(time.perf_counter() - start)
    window = max(10, steps // 20)
    return statistics.median(times[2:2 + window]), statistics.median(times[-window:]), geometry


def stream_vs_offline(encoder: EchoStreamEncoder, seconds: float) -> tuple:
    geometry = encoder.geometry()
    features = torch.randn(1, geometry.seconds_to_fbank_frames(seconds), 80)
    start = time.perf_counter()
    encoder(features, torch.tensor([features.size(1)]))
    offline = time.perf_counter() - start
    start = time.perf_counter()
    state = encoder.init_state(1)
    for begin in range(0, features.size(1), geometry.segment_fbank_frames):
        _, state = encoder.infer(features[:, begin:begin + geometry.segment_fbank_frames], state)
    encoder.infer(features[:, :0], state, final=True)
    return time.perf_counter() - start, offline


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Emformer encoder streaming cost (CPU)")
    a = parser.add_argument
    a("--arch", default="echostream", help="registered echostream arch preset")
    a("--minutes", type=float, default=3.0, help="stream length for the flatness check")
    a("--seconds", type=float, default=20.0, help="input length for stream vs offline")
    add_num_threads_argument(parser, "torch threads (1 is fastest for chunks)")
    add_log_level_argument(parser, default="WARNING")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    setup_logging(args.log_level)
    torch.set_num_threads(args.num_threads)
    encoder = build_encoder(args.arch)
    with torch.inference_mode():
        first, last, geometry = per_chunk_seconds(encoder, args.minutes)
        streamed, offline = stream_vs_offline(encoder, args.seconds)
    params = sum(p.numel() for p in encoder.parameters())
    print(f"arch {args.arch}: encoder {params / 1e6:.2f}M params, {geometry.segment_ms} ms chunks, "
          f"{args.num_threads} thread(s)")
    print(f"per-chunk infer: start {first * 1e3:.1f} ms, "
          f"after {args.minutes:g} min {last * 1e3:.1f} ms, "
          f"ratio last/first {last / first:.2f}")
    print(f"{args.seconds:g} s input: streamed {streamed:.2f} s "
          f"vs offline forward {offline:.2f} s, "
          f"ratio {streamed / offline:.2f}; streaming RTF {streamed / args.seconds:.3f}")


if __name__ == "__main__":
    main()
