#!/usr/bin/env python
"""When each system's CTC heads write their tokens while a sentence streams in.

StreamSpeech's write rule (EchoStream's ``configs/decode/streamspeech.yaml``) lets the MT decoder
write only when the ASR and the ST CTC prefixes have both grown, so a head that emits its tokens
late holds the speech back whatever the dev losses say. A frame of either encoder is final once
its segment (EchoStream's Emformer) or chunk (StreamSpeech's chunked Conformer, re-encoded at
every step but with chunk-causal attention and convolutions) is in, so one forward per dev
sentence at the streaming segment length gives every greedy CTC token's emission time: the end of
the segment holding its frame. (EchoStream's training forward at a segment length equals
streaming at it, tested; StreamSpeech's model is set up as its agent sets it up.)

For each checkpoint and head: the tokens per sentence, the share emitted before the source's last
segment (what the write rule can act on before the sentence ends), the median emission point as a
fraction of the sentence and the median point of each sentence's first token.

    python recipes/streamspeech_compare/ctc_emission_timing.py --data-dir data/deen_ding \\
      --run recipe=exp/streamspeech_compare/echostream/checkpoints/checkpoint_last.pt \\
      --streamspeech-src /path/to/StreamSpeech --streamspeech-run \\
        streamspeech=exp/streamspeech_compare/streamspeech/checkpoints/checkpoint_last.pt \\
      --output exp/streamspeech_compare/ctc_emission_timing.json

StreamSpeech's checkpoints are measured by ``streamspeech_ctc_timing.py`` in a process of their
own (its code and EchoStream's register the same fairseq criterion name).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BLANK = 0  # both systems' text CTC heads
HEADS = ("source_unigram", "ctc_target_unigram")  # ASR CTC, ST CTC (both systems' task names)


def emissions(logits: torch.Tensor) -> List[int]:
    """Frames at which greedy CTC over ``(T, V)`` starts a new token."""
    best = logits.argmax(-1).tolist()
    return [t for t, label in enumerate(best)
            if label != BLANK and (t == 0 or label != best[t - 1])]


def timing(sentences: int, segment: int,
           head_logits: Callable[[int], Dict[str, torch.Tensor]]) -> Dict[str, dict]:
    """The summary per head over ``sentences`` dev sentences; ``head_logits(i)`` gives sentence
    ``i``'s ``(T, V)`` CTC logits per head at the streaming segment length."""
    per_head = {head: {"tokens": [], "before_last": [], "points": [], "first": []}
                for head in HEADS}
    for index in range(sentences):
        for head, logits in head_logits(index).items():
            length = logits.size(0)
            last_segment_start = (length - 1) // segment * segment
            times = emissions(logits)
            stats = per_head[head]
            stats["tokens"].append(len(times))
            stats["before_last"].extend(t < last_segment_start for t in times)
            # a token is known at the end of its segment
            points = [min(length, (t // segment + 1) * segment) / length for t in times]
            stats["points"].extend(points)
            stats["first"].append(points[0] if points else 1.0)
    return {head: {"sentences": sentences,
                   "tokens_per_sentence": statistics.mean(s["tokens"]),
                   "share_before_last_segment": (sum(s["before_last"]) / len(s["before_last"])
                                                 if s["before_last"] else 0.0),
                   "median_point": statistics.median(s["points"]) if s["points"] else None,
                   # a sentence whose head writes nothing counts as its end
                   "median_first_token_point": statistics.median(s["first"])}
            for head, s in per_head.items()}


def measure_echostream(checkpoint: str, data_dir: Path, subset: str, segment: int,
                       max_sentences: int) -> Dict[str, dict]:
    from echostream_fairseq.checkpoints import load_model_and_task

    model, task = load_model_and_task(checkpoint, data_dir)
    model.eval()
    task.load_dataset(subset)
    dataset = task.dataset(subset)

    def head_logits(index: int) -> Dict[str, torch.Tensor]:
        sample = dataset.collater([dataset[index]])["net_input"]
        out = model.encoder(sample["src_tokens"], sample["src_lengths"], segment_length=segment)
        frames = out["encoder_out"][0]  # (T, 1, D)
        return {head: getattr(model, f"{head}_decoder")(frames)["encoder_out"][:, 0]
                for head in HEADS}

    with torch.no_grad():
        return timing(min(max_sentences, len(dataset)), segment, head_logits)


def measure_streamspeech(checkpoint: str, src: Path, data_dir: Path, subset: str, segment: int,
                         max_sentences: int) -> Dict[str, dict]:
    """StreamSpeech's measurement, run in a child process (see the module's docstring)."""
    env = dict(os.environ, STREAMSPEECH_SRC=str(src.resolve()), OMP_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "timing.json"
        command = [sys.executable, str(HERE / "streamspeech_ctc_timing.py"), "--checkpoint",
                   str(Path(checkpoint).resolve()), "--data-dir", str(data_dir.resolve()),
                   "--subset", subset, "--segment", str(segment), "--max-sentences",
                   str(max_sentences), "--output", str(output)]
        done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=False)
        if done.returncode != 0:
            raise SystemExit(f"error: StreamSpeech's CTC timing of {checkpoint} failed "
                             f"(exit {done.returncode})")
        return json.loads(output.read_text())


def main(argv: Optional[List[str]] = None) -> int:
    # here, not at the top: streamspeech_ctc_timing.py imports this module beside StreamSpeech's
    # code, which must never meet echostream_fairseq in one process
    sys.path.insert(0, str(REPO))
    from echostream_fairseq.cli.common import positive_int

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--run", action="append", default=[], metavar="LABEL=CHECKPOINT",
                        help="an EchoStream checkpoint")
    parser.add_argument("--streamspeech-run", action="append", default=[],
                        metavar="LABEL=CHECKPOINT", help="a StreamSpeech checkpoint")
    parser.add_argument("--streamspeech-src", type=Path,
                        help="a StreamSpeech checkout (needed with --streamspeech-run)")
    parser.add_argument("--subset", default="dev_sampled.units")
    parser.add_argument("--segment", type=positive_int, default=8,
                        help="encoder frames (8: 320 ms)")
    parser.add_argument("--max-sentences", type=positive_int, default=200)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    if not args.run and not args.streamspeech_run:
        parser.error("give --run or --streamspeech-run")
    if args.streamspeech_run and not (args.streamspeech_src
                                      and (args.streamspeech_src / "researches").is_dir()):
        parser.error("--streamspeech-run needs --streamspeech-src (a StreamSpeech checkout)")
    torch.set_num_threads(1)
    results = {}
    runs = ([(run, False) for run in args.run]
            + [(run, True) for run in args.streamspeech_run])
    for run, streamspeech in runs:
        label, _, checkpoint = run.partition("=")
        if not Path(checkpoint).is_file():
            parser.error(f"{checkpoint}: no such checkpoint ({label})")
        results[label] = (
            measure_streamspeech(checkpoint, args.streamspeech_src, args.data_dir, args.subset,
                                 args.segment, args.max_sentences) if streamspeech else
            measure_echostream(checkpoint, args.data_dir, args.subset, args.segment,
                               args.max_sentences))
        for head, row in results[label].items():
            median = ("no token" if row["median_point"] is None
                      else f"median at {row['median_point']:.2f} of the sentence")
            print(f"{label:>12} {head:>18}: {row['tokens_per_sentence']:.1f} tokens, "
                  f"{100 * row['share_before_last_segment']:.0f} % before the last segment, "
                  f"{median}, first token at {row['median_first_token_point']:.2f}")
    if args.output:
        args.output.write_text(json.dumps({"segment": args.segment, "subset": args.subset,
                                           "runs": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
