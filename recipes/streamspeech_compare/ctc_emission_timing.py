#!/usr/bin/env python
"""When EchoStream's CTC heads write their tokens while a sentence streams in.

StreamSpeech's write rule (EchoStream's ``configs/decode/streamspeech.yaml``) lets the MT decoder
write only when the ASR and the ST CTC prefixes have both grown, so a head that emits its tokens
late holds the speech back whatever the dev losses say. An Emformer frame is final once its
segment is emitted, and the training forward at a segment length equals streaming at it
(tested), so one forward per dev sentence gives every greedy CTC token's emission time: the end
of the segment holding its frame.

For each checkpoint and head: the tokens per sentence, the share emitted before the source's last
segment (what the write rule can act on before the sentence ends), and the median emission point
as a fraction of the sentence.

    python recipes/streamspeech_compare/ctc_emission_timing.py --data-dir data/deen_ding \\
      --run recipe=exp/streamspeech_compare/echostream/checkpoints/checkpoint_last.pt \\
      --run plain=exp/streamspeech_compare/ablations/plain/checkpoints/checkpoint_last.pt \\
      --output exp/streamspeech_compare/ctc_emission_timing.json
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
from echostream_fairseq.cli.common import positive_int  # noqa: E402
from echostream_fairseq.models.echostream import ASR_TASK, ST_TASK  # noqa: E402

BLANK = 0  # StreamSpeech's text CTC heads


def emissions(logits: torch.Tensor) -> List[int]:
    """Frames at which greedy CTC over ``(T, V)`` starts a new token."""
    best = logits.argmax(-1).tolist()
    return [t for t, label in enumerate(best)
            if label != BLANK and (t == 0 or label != best[t - 1])]


def measure(checkpoint: str, data_dir: Path, subset: str, segment: int,
            max_sentences: int) -> Dict[str, dict]:
    model, task = load_model_and_task(checkpoint, data_dir)
    model.eval()
    task.load_dataset(subset)
    dataset = task.dataset(subset)
    per_head: Dict[str, Dict[str, list]] = {
        head: {"tokens": [], "before_last": [], "points": []} for head in (ASR_TASK, ST_TASK)}
    sentences = min(max_sentences, len(dataset))
    with torch.no_grad():
        for index in range(sentences):
            sample = dataset.collater([dataset[index]])["net_input"]
            out = model.encoder(sample["src_tokens"], sample["src_lengths"],
                                segment_length=segment)
            frames = out["encoder_out"][0]  # (T, 1, D)
            length = frames.size(0)
            last_segment_start = (length - 1) // segment * segment
            for head in per_head:
                logits = getattr(model, f"{head}_decoder")(frames)["encoder_out"][:, 0]
                times = emissions(logits)
                stats = per_head[head]
                stats["tokens"].append(len(times))
                stats["before_last"].extend(t < last_segment_start for t in times)
                # a token is known at the end of its segment
                stats["points"].extend(min(length, (t // segment + 1) * segment) / length
                                       for t in times)
    return {head: {"sentences": sentences,
                   "tokens_per_sentence": statistics.mean(s["tokens"]),
                   "share_before_last_segment": (sum(s["before_last"]) / len(s["before_last"])
                                                 if s["before_last"] else 0.0),
                   "median_point": statistics.median(s["points"]) if s["points"] else None}
            for head, s in per_head.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--run", action="append", required=True, metavar="LABEL=CHECKPOINT")
    parser.add_argument("--subset", default="dev_sampled.units")
    parser.add_argument("--segment", type=int, default=8, help="encoder frames (8: 320 ms)")
    parser.add_argument("--max-sentences", type=positive_int, default=200)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {}
    for run in args.run:
        label, _, checkpoint = run.partition("=")
        results[label] = measure(checkpoint, args.data_dir, args.subset, args.segment,
                                 args.max_sentences)
        for head, row in results[label].items():
            median = ("no token" if row["median_point"] is None
                      else f"median at {row['median_point']:.2f} of the sentence")
            print(f"{label:>10} {head:>18}: {row['tokens_per_sentence']:.1f} tokens, "
                  f"{100 * row['share_before_last_segment']:.0f} % before the last segment, "
                  f"{median}")
    if args.output:
        args.output.write_text(json.dumps({"segment": args.segment, "subset": args.subset,
                                           "runs": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
