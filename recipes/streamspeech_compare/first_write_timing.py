#!/usr/bin/env python
"""When EchoStream's MT decoder writes its first subword, and when its first word comes out.

StreamSpeech's agents put out every subword the moment the MT decoder writes it (its speech agent
speaks the units of every write, partial words included; its text agent joins the subwords with
spaces, so SimulEval counts each as a word). EchoStream puts out whole words: a word is written
out, and spoken, once the next one has started (or the sentence has ended). This measures what
that costs: for each test sentence streamed in source chunks of ``--chunk-ms`` (one sentence per
stream, as SimulEval), the source time at which the MT decoder had written its first subword and
the time at which the first word came out; the medians, and how many sentences reached each only
at their end. In whole-word mode the decoder keeps only complete words (an incomplete last one is
decoded again later), so there the first subword kept is a first word's.

    python recipes/streamspeech_compare/first_write_timing.py --data-dir data/deen_ding \\
      --wav-list exp/streamspeech_compare/eval/test100/wav_list.txt \\
      --decode-config configs/decode/streamspeech_lead_in.yaml \\
      --run 3333=exp/streamspeech_compare/echostream/checkpoints/checkpoint_last.pt \\
      --output recipes/streamspeech_compare/results/first_write_timing.json
"""

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Dict, List

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from echostream_fairseq.checkpoints import load_model_and_task  # noqa: E402
from echostream_fairseq.cli.common import UserError, positive_int, run_main  # noqa: E402
from echostream_fairseq.data.audio import read_wav  # noqa: E402
from echostream_fairseq.streaming.config import PipelineConfig  # noqa: E402
from echostream_fairseq.streaming.pipeline import StreamingS2STPipeline  # noqa: E402


def first_writes(pipe: StreamingS2STPipeline, wav: Path, chunk_ms: int) -> Dict[str, float]:
    """Source ms at the step that wrote the first subword and the one that put out the first
    word (the sentence's length when it never did before its end)."""
    samples, rate = read_wav(wav)
    step = rate * chunk_ms // 1000
    length_ms = len(samples) * 1000 / rate
    pipe.reset()
    first_subword = first_word = None
    for start in range(0, len(samples), step):
        out = pipe.push(samples[start:start + step], rate)
        now = min(len(samples), start + step) * 1000 / rate
        if first_subword is None and pipe.target_tokens:
            first_subword = now
        if first_word is None and out.target_text:
            first_word = now
    return {"length_ms": length_ms,
            "first_subword_ms": length_ms if first_subword is None else first_subword,
            "first_word_ms": length_ms if first_word is None else first_word}


def summarise(rows: List[Dict[str, float]]) -> dict:
    at_end = {key: sum(r[key] >= r["length_ms"] for r in rows)
              for key in ("first_subword_ms", "first_word_ms")}
    return {"sentences": len(rows),
            "median_length_ms": statistics.median(r["length_ms"] for r in rows),
            "median_first_subword_ms": statistics.median(r["first_subword_ms"] for r in rows),
            "median_first_word_ms": statistics.median(r["first_word_ms"] for r in rows),
            "first_subword_only_at_the_end": at_end["first_subword_ms"],
            "first_word_only_at_the_end": at_end["first_word_ms"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--wav-list", type=Path, required=True,
                        help="source wavs, one path a line (a SimulEval source list)")
    parser.add_argument("--decode-config", type=Path, required=True)
    parser.add_argument("--run", action="append", required=True, metavar="LABEL=CHECKPOINT")
    parser.add_argument("--chunk-ms", type=positive_int, default=320)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)

    def run() -> int:
        torch.set_num_threads(1)
        try:
            wavs = [Path(line) for line in args.wav_list.read_text().splitlines() if line.strip()]
        except OSError as error:
            raise UserError(f"{args.wav_list}: {error.strerror} (--wav-list)") from None
        config = PipelineConfig.from_yaml(args.decode_config).replace(single_sentence=True,
                                                                      speech=False)
        results = {}
        for spec in args.run:
            label, _, checkpoint = spec.partition("=")
            model, task = load_model_and_task(checkpoint, str(args.data_dir))
            # the segment from the chunk size, as the agents choose it
            pipe = StreamingS2STPipeline.from_task(model, task,
                                                   config.for_chunk(model, args.chunk_ms))
            results[label] = summarise([first_writes(pipe, wav, args.chunk_ms) for wav in wavs])
            row = results[label]
            print(f"{label}: first subword at {row['median_first_subword_ms']:.0f} ms, first word "
                  f"at {row['median_first_word_ms']:.0f} ms (medians of {row['sentences']}); "
                  f"only at the end: {row['first_subword_only_at_the_end']} and "
                  f"{row['first_word_only_at_the_end']}")
        if args.output:
            args.output.write_text(json.dumps({"chunk_ms": args.chunk_ms,
                                               "decode_config": str(args.decode_config),
                                               "runs": results}, indent=1) + "\n")
        return 0

    return run_main(run)


if __name__ == "__main__":
    sys.exit(main())
