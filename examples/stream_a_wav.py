#!/usr/bin/env python3
"""Stream one wav through an EchoStream checkpoint, chunk by chunk, as a live source would.

Every chunk is pushed into the incremental pipeline (Emformer state carried, nothing re-encoded)
and whatever became final is printed at once: new German ASR words, new English words and the
seconds of English speech written so far, and each sentence's whole translation when the
pipeline ends it (at a pause; ``--single-sentence`` keeps one). The speech is saved as one wav
at the end.

Example::

    python examples/stream_a_wav.py --checkpoint exp/train_mini/checkpoints/checkpoint_best.pt \\
        --data-dir data --decode-config configs/decode/deen_mini.yaml \\
        --wav data/wav/source/deen_52735c148bb9.wav --chunk-ms 320 --output /tmp/translated.wav
    python examples/stream_a_wav.py --checkpoint echostream-mini-de-en \\
        --wav data/demo-test/wav/source/deen_52735c148bb9.wav --output /tmp/translated.wav

Any sample rate is accepted (the pipeline resamples incrementally); multi-channel audio is
averaged to mono.
"""

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from echostream_fairseq.cli.common import (add_log_level_argument, add_num_threads_argument,
                                           setup_logging)
from echostream_fairseq.data.audio import read_wav, write_wav
from echostream_fairseq.errors import UserError
from echostream_fairseq.streaming.config import PipelineConfig, add_pipeline_arguments
from echostream_fairseq.streaming.pipeline import StreamingS2STPipeline, load_checkpoint


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a = parser.add_argument
    a("--checkpoint", type=Path, required=True, help="EchoStream checkpoint")
    a("--data-dir", type=Path,
      help="the corpus folder (dictionaries, CMVN stats, vocoder; default: the one the "
           "checkpoint names; a shipped model always uses its own)")
    a("--wav", type=Path, required=True, help="source speech")
    a("--chunk-ms", type=int, default=320,
      help="audio per push (and the Emformer segment unless --segment-length)")
    a("--output", type=Path, help="write the translated speech here")
    add_num_threads_argument(parser)
    add_pipeline_arguments(parser.add_argument_group("decoding (as the SimulEval agents)"))
    add_log_level_argument(parser, default="WARNING")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    torch.set_num_threads(args.num_threads)
    try:
        samples, rate = read_wav(args.wav, expected_sr=None)
        config = PipelineConfig.from_args(args)
        model, task = load_checkpoint(str(args.checkpoint),
                                      str(args.data_dir) if args.data_dir else None)
        config = config.for_chunk(model, args.chunk_ms)
        pipeline = StreamingS2STPipeline.from_task(model, task, config)
    except (UserError, OSError) as error:  # bad input: one line naming the file
        print(f"error: {error}", file=sys.stderr)
        return 2
    chunk = max(1, rate * args.chunk_ms // 1000)
    speech, speech_rate, compute_s = [], 0, 0.0
    for start in range(0, len(samples) + 1, chunk):
        piece = samples[start:start + chunk]
        last = start + chunk >= len(samples)
        step = pipeline.finish(piece, rate) if last else pipeline.push(piece, rate)
        speech.append(step.speech)
        speech_rate = step.speech_sample_rate or speech_rate
        compute_s += step.compute_s
        written = sum(len(s) for s in speech) / speech_rate if speech_rate else 0.0
        heard = min(len(samples), start + chunk) / rate
        if step.asr_text or step.target_text or step.units:
            print(f"{heard:6.2f} s heard | ASR: {step.asr_text!r:28} | "
                  f"EN: {step.target_text!r:28} | "
                  f"+{len(step.units)} units, {written:.2f} s of speech so far")
        for sentence in step.sentences:  # sentence after sentence: each one whole, once ended
            print(f"sentence {sentence.index + 1} ({sentence.start_ms / 1000:.2f}-"
                  f"{sentence.end_ms / 1000:.2f} s): {sentence.target_text!r}")
        if last:
            break
    print(f"done: {len(samples) / rate:.2f} s of source, compute {compute_s:.2f} s "
          f"(real-time factor {compute_s / (len(samples) / rate):.3f})")
    if args.output is not None and speech_rate:
        write_wav(args.output, np.concatenate(speech), speech_rate)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
