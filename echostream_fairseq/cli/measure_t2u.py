"""``echostream-measure-t2u``: how well a checkpoint's T2U + unit decoder speak a *correct* text.

Example::

    echostream-measure-t2u --checkpoint exp/train_mini/checkpoints/checkpoint_best.pt \\
        --manifest data/dev_sampled.units.tsv --max-utterances 100 \\
        --decode-config configs/decode/deen_mini.yaml --output exp/train_mini/t2u_dev.json

The model's MT decoder is teacher-forced with the reference translation (the corpus's
``target_unigram`` subwords, as in training), its states go through the T2U encoder and the unit
CTC decoder (under the unit mask and blank penalty the streaming pipeline uses: the unit
options of ``--decode-config`` and ``--unit-k2/--unit-n2/--unit-blank-penalty``; the other
decoding options do not apply here), the unit sequence through the corpus's vocoder, and the
speech through the same recogniser and normalisation as every ASR-BLEU here. So the score is the
ASR-BLEU the model would reach if its MT text were perfect: it separates a weak text-to-unit part
from a weak translation. ``--output`` is read by ``echostream-results --ceilings``.

Also reported: units per sentence against the reference units (a decoder that writes too few units
speaks too little), and seconds of speech. Bad input (a missing file, a manifest without a column)
exits with status 2 and names the file.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from echostream_fairseq.cli.common import (add_log_level_argument, add_num_threads_argument,
                                           count_or_all, positive_int, provenance, run_main,
                                           setup_logging)
from echostream_fairseq.streaming.config import PipelineConfig, add_pipeline_arguments
from echostream_fairseq.errors import InputError

logger = logging.getLogger("echostream.measure_t2u")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    a = parser.add_argument
    a("--checkpoint", type=Path, required=True, help="EchoStream fairseq checkpoint (.pt)")
    a("--manifest", "--test-manifest", dest="manifest", type=Path, required=True,
      help="manifest with tgt_text and tgt_audio units (e.g. data/dev_sampled.units.tsv); its "
           "folder is the corpus, its name the split (--test-manifest: deprecated spelling)")
    a("--max-utterances", type=count_or_all, default=100,
      help="the first N utterances, or all (default 100)")
    a("--batch-size", type=positive_int, default=8, help="utterances per forward pass")
    a("--label", help="the model's name in tables (default: the checkpoint path)")
    a("--output", "--out", dest="output", type=Path,
      help="JSON file for the scores (--out: deprecated spelling)")
    a("--save-wavs", type=Path, help="write the first 5 wavs under this folder")
    add_num_threads_argument(parser, "torch CPU threads, and recogniser transcriptions at once")
    a("--asr-model-dir", type=Path, help="faster-whisper model folder (default: tiny.en)")
    add_pipeline_arguments(parser.add_argument_group("unit decoding (as the streaming pipeline)"))
    add_log_level_argument(parser)
    return parser


def reference_text_units(model: Any, task: Any, split: str, count: int, batch_size: int,
                         blank_penalty: float = 0.0, unit_k2: int = 0,
                         unit_n2: int = 1) -> List[Dict[str, Any]]:
    """Per utterance (manifest order, the first ``count``): ``{"index", "units",
    "reference_units"}``, units as ids ``0..K-1``: the model's greedy unit CTC output for its
    teacher-forced reference text, under the unit decoder mask the streaming pipeline uses
    (``k2``/``n2``), and the manifest's units."""
    import torch

    from echostream_fairseq.generation import greedy_unit_ctc

    if split.startswith("train"):
        # fairseq applies the data config's training-only transforms (SpecAugment, ...) there
        raise InputError(f"split '{split}': measure a dev or test manifest, not a training one")
    task.load_dataset(split)
    dataset = task.datasets[split]
    unit_dict = task.tgt_dict
    mask = {"k2": unit_k2, "n2": unit_n2}  # the model's streaming_config keys
    out: List[Dict[str, Any]] = []
    indices = list(range(min(count, len(dataset))))
    for start in range(0, len(indices), batch_size):
        sample = dataset.collater([dataset[i] for i in indices[start:start + batch_size]])
        net_input = sample["net_input"]
        with torch.no_grad():
            logits, extra = model(
                net_input["src_tokens"], net_input["src_lengths"], net_input["prev_output_tokens"],
                prev_output_tokens_mt=sample["multitask"][model.mt_task_name]["net_input"][
                    "prev_output_tokens"], streaming_config=mask)
        decoded = greedy_unit_ctc(logits, extra["decoder_padding_mask"], unit_dict,
                                  blank_penalty)
        for row, (labels, _scores) in enumerate(decoded):
            reference = [t for t in sample["target"][row].tolist()
                         if t >= unit_dict.nspecial and t != unit_dict.blank_index]
            out.append({"index": int(sample["id"][row]),
                        "units": [int(unit_dict[label]) for label in labels],
                        "reference_units": [int(unit_dict[t]) for t in reference]})
    out.sort(key=lambda item: item["index"])
    return out


def run(opts: argparse.Namespace,
        argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    import torch

    from echostream_fairseq.data.manifests import read_tsv
    from echostream_fairseq.data.validate import ManifestError, find_problems
    from echostream_fairseq.scoring.asr_bleu import (load_whisper_tiny_en, normalize_text,
                                                     score_texts, transcribe_all)
    from echostream_fairseq.checkpoints import load_model_and_task as load_checkpoint
    from echostream_fairseq.shipped import checkpoint_file
    from echostream_fairseq.vocoder import build_vocoder

    start = time.perf_counter()
    torch.set_num_threads(opts.num_threads)
    decode = PipelineConfig.from_args(opts)
    manifest = opts.manifest.resolve()
    problems = find_problems(manifest)  # every column (tgt_text, tgt_audio, ...) and file named
    if problems:
        raise ManifestError(problems)
    rows = read_tsv(manifest)[:opts.max_utterances]
    model, task = load_checkpoint(str(opts.checkpoint), str(manifest.parent))
    model.eval()
    decoded = reference_text_units(model, task, manifest.stem, len(rows), opts.batch_size,
                                   decode.unit_blank_penalty, decode.unit_k2, decode.unit_n2)
    vocoder = build_vocoder(manifest.parent / task.args.config_yaml, manifest.parent)
    audios = [vocoder.synthesize(item["units"]) for item in decoded]
    asr = load_whisper_tiny_en(opts.asr_model_dir, workers=opts.num_threads)
    # a sentence without units has no audio to transcribe: it scores as an empty transcript
    transcripts = transcribe_all(asr, [audio if audio.size else None for audio in audios],
                                 vocoder.sample_rate)
    score = score_texts(transcripts, [r["tgt_text"] for r in rows],
                        num_empty=sum(not normalize_text(t) for t in transcripts))
    if opts.save_wavs:
        from echostream_fairseq.data.audio import write_wav

        for row, samples in list(zip(rows, audios))[:5]:
            write_wav(opts.save_wavs / f"{row['id']}.wav", samples, vocoder.sample_rate)
    units = sum(len(item["units"]) for item in decoded)
    reference_units = sum(len(item["reference_units"]) for item in decoded)
    result = {
        "label": opts.label or str(opts.checkpoint),
        "checkpoint": str(checkpoint_file(opts.checkpoint)),
        "manifest": str(manifest),
        "ctc_upsample_rate": int(model.decoder.ctc_upsample_rate),
        "decode": {"config": str(opts.decode_config) if opts.decode_config else None,
                   "unit_k2": decode.unit_k2, "unit_n2": decode.unit_n2,
                   "unit_blank_penalty": decode.unit_blank_penalty},
        "t2u_reference_text": {
            **score.as_dict(),
            "units": units, "reference_units": reference_units,
            "unit_ratio": units / max(reference_units, 1),
            "speech_s": sum(a.shape[0] for a in audios) / vocoder.sample_rate,
            "no_units": sum(1 for item in decoded if not item["units"]),
        },
        "wall_s": time.perf_counter() - start,
        "provenance": provenance(argv, {"decode": str(opts.decode_config)
                                        if opts.decode_config else None}),
    }
    if opts.output:
        opts.output.parent.mkdir(parents=True, exist_ok=True)
        opts.output.write_text(json.dumps(result, indent=2), encoding="utf-8")
        logger.info("wrote %s", opts.output)
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    opts = build_parser().parse_args(argv)
    setup_logging(opts.log_level)

    def body() -> None:
        result = run(opts, argv)
        t2u = result["t2u_reference_text"]
        print(f"{result['label']}: reference text -> T2U -> vocoder: ASR-BLEU {t2u['bleu']:.2f}  "
              f"WER {t2u['wer']:.1f}%  units {t2u['unit_ratio']:.2f}x the reference's  "
              f"{t2u['speech_s']:.1f} s of speech for {t2u['num_sentences']} sentences  "
              f"({t2u['no_units']} without units)")

    return run_main(body, (OSError,))


if __name__ == "__main__":
    raise SystemExit(main())
