"""StreamSpeech's side of ``ctc_emission_timing.py``: its checkpoint's CTC emission times on dev
sentences, written as JSON to ``--output`` (its code prints to stdout). Run in a process of its
own with ``$STREAMSPEECH_SRC`` set (never beside ``echostream_fairseq``: both register the same
criterion name).

The model is loaded and set up as its agent (``agent/speech_to_speech.streamspeech.agent.py``,
``load_model_vocab``) sets it up for a source segment of ``--segment`` frames: the encoder's
attention chunk is the segment, the chunk of its subsampling and depthwise convolutions 8 frames
(16 from 640 ms segments on). The agent re-encodes the whole input at every step, but with
chunk-causal attention and convolutions a frame does not change once its chunk is in, so one
forward over the sentence gives the frames (and greedy CTC tokens) the agent sees.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import streamspeech_shims  # noqa: E402
from ctc_emission_timing import HEADS, timing  # noqa: E402


def load(checkpoint: str, data_dir: str, segment: int):
    from fairseq import checkpoint_utils, tasks, utils

    src = Path(os.environ["STREAMSPEECH_SRC"]).resolve()
    state = checkpoint_utils.load_checkpoint_to_cpu(checkpoint)
    state["cfg"].common["user_dir"] = str(src / "researches" / "ctc_unity")
    utils.import_user_module(state["cfg"].common)
    task_args = state["cfg"]["task"]
    task_args.data = data_dir
    task = tasks.setup_task(task_args)
    (model,), _ = checkpoint_utils.load_model_ensemble([checkpoint], task=task)
    model.eval()
    model.encoder.chunk_size = segment  # as the agent: source_segment_size // 40
    conv_chunk = 16 if segment >= 16 else 8
    for conv in model.encoder.subsample.conv_layers:
        conv.chunk_size = conv_chunk
    for layer in model.encoder.conformer_layers:
        layer.conv_module.depthwise_conv.chunk_size = conv_chunk
    return model, task


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--subset", required=True)
    parser.add_argument("--segment", type=int, required=True)
    parser.add_argument("--max-sentences", type=int, required=True)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    # a frame is final once its chunk is in only when the convolutions' chunk (8 frames, 16 from
    # 640 ms) is a whole number of the attention's
    if args.segment % (16 if args.segment >= 16 else 8):
        raise SystemExit(f"error: --segment {args.segment}: StreamSpeech's frames are final at "
                         "segment ends only for multiples of 8 encoder frames (320 ms)")
    streamspeech_shims.install()
    torch.set_num_threads(1)
    model, task = load(args.checkpoint, args.data_dir, args.segment)
    task.load_dataset(args.subset)
    dataset = task.datasets[args.subset]

    def head_logits(index: int):
        sample = dataset.collater([dataset[index]])["net_input"]
        frames = model.encoder(sample["src_tokens"], sample["src_lengths"])["encoder_out"][0]
        return {head: getattr(model, f"{head}_decoder")(frames)["encoder_out"][:, 0]
                for head in HEADS}

    with torch.no_grad():
        result = timing(min(args.max_sentences, len(dataset)), args.segment, head_logits)
    args.output.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
