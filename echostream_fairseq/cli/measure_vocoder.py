"""``echostream-measure-vocoder``: resynthesis ASR-BLEU of ground-truth test units through the
corpus's vocoder (the embedded one, or piper itself for a piper-phonemes corpus).

Examples::

    echostream-measure-vocoder --data-dir data --output exp/vocoder/scores.json
    echostream-measure-vocoder --data-dir /tmp/mini --variants default unitspec_ctx_cum_s3

For each variant, the test manifest's units (``tgt_audio``) are synthesized and transcribed with
Whisper tiny.en (``echostream_fairseq.scoring.asr_bleu``); the piper target wavs go through the
same recogniser as the ceiling. Both are printed and written to ``--output`` as JSON. Durations and
spectra are fitted on the corpus's train split (as ``echostream-fit-vocoder`` does) unless
``--vocoder`` gives a fitted ``vocoder.npz``, whose stored settings are then the ``default``
variant (``ctxspec_*`` variants need context spectra in it, as the default fit makes).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from echostream_fairseq.cli.common import (add_log_level_argument, add_num_threads_argument,
                                           count_or_all, provenance, run_main,
                                           setup_logging)
from echostream_fairseq.data.manifests import GCMVN_YAML, read_tsv
from echostream_fairseq.data.text import parse_units
from echostream_fairseq.errors import InputError
from echostream_fairseq.scoring.asr_bleu import asr_bleu, load_whisper_tiny_en
from echostream_fairseq.vocoder.base import UnitVocoder
from echostream_fairseq.vocoder.builder import PIPER_PHONEMES, describe_vocoder
from echostream_fairseq.vocoder.centroid import CentroidVocoder, load_centroid_vocoder
from echostream_fairseq.vocoder.context import ContextModel
from echostream_fairseq.vocoder.fit import corpus_unit_runs, fit_centroid_vocoder, target_wav
from echostream_fairseq.vocoder.piper_phonemes import PiperPhonemeVocoder

logger = logging.getLogger(__name__)

SMOOTH5 = (1 / 9, 2 / 9, 3 / 9, 2 / 9, 1 / 9)
# name -> duration kind ("oracle": true frame run lengths), spectra kind, settings overrides,
# stream chunk (units per synthesize_chunk call). Names: <spectra>_<durations>_<rounding>_s<taps>.
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "default_stream8": {"stream_units": 8},
    "unitspec_unit_round_s3": {"spectra": "unit", "kind": "unit", "cumulative_rounding": False},
    "unitspec_unit_cum_s3": {"spectra": "unit", "kind": "unit"},
    "unitspec_ctx_cum_s3": {"spectra": "unit", "kind": "context"},
    "unitspec_ctx_cum_s0": {"spectra": "unit", "kind": "context", "smoothing_taps": (1.0,)},
    "unitspec_ctx_cum_s5": {"spectra": "unit", "kind": "context", "smoothing_taps": SMOOTH5},
    "unitspec_oracle_s3": {"spectra": "unit", "kind": "oracle"},
    "ctxspec_ctx_cum_s3": {"spectra": "context", "kind": "context"},
    "ctxspec_ctx_cum_s0": {"spectra": "context", "kind": "context", "smoothing_taps": (1.0,)},
    "ctxspec_ctx_cum_s3_gl16": {"spectra": "context", "kind": "context",
                                "griffin_lim_iters": 16},
    "ctxspec_ctx_cum_s3_gl64": {"spectra": "context", "kind": "context",
                                "griffin_lim_iters": 64},
    "ctxspec_ctx_cum_s3_stream8": {"spectra": "context", "kind": "context", "stream_units": 8},
    "ctxspec_ctx_cum_s3_zerophase": {"spectra": "context", "kind": "context",
                                     "random_phase": False},
    "unitspec_ctx_cum_s3_zerophase": {"spectra": "unit", "kind": "context",
                                      "random_phase": False},
}


# A corpus of piper phoneme units (--unit-type piper-phonemes) is spoken by the voice itself:
# whole (one piper call per sentence), or streamed 8 units a call with phrases of N units.
PIPER_VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "default_stream8": {"stream_units": 8},
    "phrase24_stream8": {"stream_units": 8, "phrase_units": 24},
    "phrase48_stream8": {"stream_units": 8, "phrase_units": 48},
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="corpus folder built by scripts/prepare_mini.py")
    parser.add_argument("--manifest", default="test_sampled.tsv",
                        help="manifest (in --data-dir) whose tgt_audio units are resynthesized")
    parser.add_argument("--max-utterances", "--max-utts", dest="max_utterances",
                        type=count_or_all, default=50,
                        help="score only the first N utterances of the manifest, or all "
                             "(--max-utts: deprecated spelling)")
    parser.add_argument("--vocoder", type=Path, default=None,
                        help="a fitted vocoder.npz (default: fit on the train split now)")
    parser.add_argument("--variants", nargs="+", default=["default"],
                        choices=sorted(set(VARIANTS) | set(PIPER_VARIANTS)),
                        help="vocoder variants to score (a piper-phonemes corpus: "
                             f"{', '.join(PIPER_VARIANTS)})")
    parser.add_argument("--ceiling", action=argparse.BooleanOptionalAction, default=True,
                        help="also score the piper wavs (--no-ceiling: the corpus REPORT.md has "
                             "it for the whole test split; saves a recogniser pass)")
    parser.add_argument("--save-wavs", type=Path, default=None,
                        help="write each variant's first 5 wavs under this folder")
    parser.add_argument("--output", "--out", dest="output", type=Path, default=None,
                        help="JSON file for all scores (default: print only; --out: deprecated "
                             "spelling)")
    add_num_threads_argument(parser, "CPU threads for torch and the recogniser")
    add_log_level_argument(parser)
    return parser


def _synthesize_stream(vocoder: UnitVocoder, units: Sequence[int], chunk: int) -> np.ndarray:
    """Feed units ``chunk`` at a time, as a streaming caller would; concatenate the output."""
    state, pieces = None, []
    for start in range(0, max(len(units), 1), chunk):
        piece, state = vocoder.synthesize_chunk(units[start:start + chunk], state,
                                                final=start + chunk >= len(units))
        pieces.append(piece)
    return np.concatenate(pieces)


def _variant_audio(name: str, base: CentroidVocoder, rows: list[dict[str, str]],
                   data_dir: Path) -> list[np.ndarray]:
    spec = dict(VARIANTS[name])
    kind = spec.pop("kind", base.durations.kind)
    spectra = base.spectra.with_kind(spec.pop("spectra", base.spectra.kind))
    chunk = spec.pop("stream_units", 0)
    if kind == "oracle":
        # True run lengths: frame-level units, each lasting exactly one frame.
        vocoder = CentroidVocoder(spectra, ContextModel.per_unit(
            np.ones(base.num_units, np.float32)), base.mel, base.settings)
        runs = corpus_unit_runs(_unit_model_of(data_dir), [target_wav(data_dir, r["id"])
                                                           for r in rows])
        unit_lists = [np.repeat(u, r).tolist() for u, r, _ in runs]
    else:
        vocoder = CentroidVocoder(spectra, base.durations.with_kind(kind), base.mel,
                                  base.settings)
        unit_lists = [parse_units(r["tgt_audio"]) for r in rows]
    if spec:
        vocoder = vocoder.with_settings(**spec)
    if chunk:
        return [_synthesize_stream(vocoder, units, chunk) for units in unit_lists]
    return [vocoder.synthesize(units) for units in unit_lists]


def _piper_audio(name: str, base: PiperPhonemeVocoder,
                 rows: list[dict[str, str]]) -> list[np.ndarray]:
    spec = PIPER_VARIANTS[name]
    vocoder = base
    if "phrase_units" in spec:
        vocoder = copy.copy(base)
        vocoder.phrase_units = spec["phrase_units"]
    unit_lists = [parse_units(r["tgt_audio"]) for r in rows]
    if spec.get("stream_units"):
        return [_synthesize_stream(vocoder, units, spec["stream_units"]) for units in unit_lists]
    return [vocoder.synthesize(units) for units in unit_lists]


def _unit_model_of(data_dir: Path) -> Any:
    from echostream_fairseq.vocoder.fit import UNIT_MODEL, read_unit_model

    return read_unit_model(data_dir / UNIT_MODEL)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    return run_main(lambda: _measure(args, argv), (OSError,))


def _measure(args: argparse.Namespace, argv: Optional[Sequence[str]]) -> None:
    torch.set_num_threads(args.num_threads)
    rows = read_tsv(args.data_dir / args.manifest)[:args.max_utterances]
    refs = [r["tgt_text"] for r in rows]
    kind, _ = describe_vocoder(args.data_dir / GCMVN_YAML, args.data_dir)
    phonemes = kind.startswith(PIPER_PHONEMES)
    variants = PIPER_VARIANTS if phonemes else VARIANTS
    unknown = [name for name in args.variants if name not in variants]
    if unknown:
        raise InputError(f"--variants {' '.join(unknown)}: not a variant of this corpus's "
                         f"vocoder ({kind}); choose from {', '.join(variants)}")
    if phonemes:
        base = PiperPhonemeVocoder()
    else:
        base = (load_centroid_vocoder(args.vocoder) if args.vocoder
                else fit_centroid_vocoder(args.data_dir))
    asr = load_whisper_tiny_en(workers=args.num_threads)
    results: dict[str, Any] = {
        "data_dir": str(args.data_dir), "manifest": args.manifest, "sentences": len(rows),
        "num_units": base.num_units,
        "train_utterances": len(read_tsv(args.data_dir / "train_sampled.units.tsv")),
        "variants": {}, "provenance": provenance(argv)}
    if args.ceiling:
        start = time.perf_counter()
        ceiling = asr_bleu(asr, [target_wav(args.data_dir, r["id"]) for r in rows], refs,
                           allow_empty=True)
        results["ceiling_piper"] = ceiling.as_dict()
        print(f"piper ceiling: ASR-BLEU {ceiling.bleu:.1f}  WER {ceiling.wer:.1f}  "
              f"({len(rows)} sentences, {time.perf_counter() - start:.0f} s)", flush=True)
    for name in args.variants:
        t0 = time.perf_counter()
        audio = (_piper_audio(name, base, rows) if phonemes
                 else _variant_audio(name, base, rows, args.data_dir))
        synth_s = time.perf_counter() - t0
        score = asr_bleu(asr, audio, refs, allow_empty=True)
        seconds = sum(a.shape[0] for a in audio) / base.sample_rate
        results["variants"][name] = {**score.as_dict(), "spec": {k: str(v) for k, v in
                                                                 variants[name].items()},
                                     "synthesis_s": synth_s, "audio_s": seconds,
                                     "rtf": synth_s / max(seconds, 1e-9)}
        print(f"{name:22s} ASR-BLEU {score.bleu:5.1f}  WER {score.wer:5.1f}  "
              f"empty {score.num_empty}  synth RTF {synth_s / max(seconds, 1e-9):.3f}",
              flush=True)
        if args.save_wavs:
            from echostream_fairseq.data.audio import write_wav

            for row, samples in list(zip(rows, audio))[:5]:
                write_wav(args.save_wavs / name / f"{row['id']}.wav", samples, base.sample_rate)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2), encoding="utf-8")
        logger.info("wrote %s", args.output)


if __name__ == "__main__":
    raise SystemExit(main())
