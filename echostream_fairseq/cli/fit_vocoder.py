"""``echostream-fit-vocoder``: fit the embedded centroid vocoder's durations and spectra; write
``<data>/units/vocoder.npz``.

Examples::

    echostream-fit-vocoder --data-dir data
    echostream-fit-vocoder --data-dir /tmp/mini --kind unit --output /tmp/mini/voc.npz

Reads ``train_sampled.units.tsv``, ``units/unit_model.npz`` and the train target wavs (to count
unit run lengths and average each unit's log-mel in context); takes about a second per hundred
utterances plus a few seconds for the tables (the 9,074-utterance corpus: 1-3 min, ~3 GB of
memory). ``build_vocoder`` picks the file up from ``<data>/units/`` when ``config_gcmvn.yaml``
names no CodeHiFiGAN vocoder. A corpus of piper phoneme units (``--unit-type piper-phonemes``)
has nothing to fit: piper itself speaks them; the command says so and exits 0, so that recipes
run unchanged on either kind.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

from echostream_fairseq.cli.common import (add_log_level_argument, add_num_threads_argument,
                                           run_main, setup_logging)
from echostream_fairseq.vocoder.builder import EMBEDDED_VOCODER_FILE
from echostream_fairseq.vocoder.duration import DURATION_KINDS
from echostream_fairseq.vocoder.fit import (SPECTRA_MIN_COUNT, SPECTRA_RANK,
                                            fit_centroid_vocoder)

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="corpus folder built by scripts/prepare_mini.py")
    parser.add_argument("--kind", choices=DURATION_KINDS, default="context",
                        help="duration model: per-unit mean, or (prev, unit, next) context "
                             "means with back-off (measured best)")
    parser.add_argument("--spectra-kind", choices=DURATION_KINDS, default="context",
                        help="log-mel per (prev, unit, next) context with back-off (default; "
                             "+7.5 ASR-BLEU over per-unit log-mel on the full corpus) or per "
                             "unit")
    parser.add_argument("--min-count", type=int, default=2,
                        help="fewest examples for a context duration to be used")
    parser.add_argument("--spectra-min-count", type=int, default=SPECTRA_MIN_COUNT,
                        help="fewest examples for a context spectrum to be used")
    parser.add_argument("--spectra-rank", type=int, default=SPECTRA_RANK,
                        help="principal directions kept of the context spectra residuals "
                             "(float16); 0 keeps full float32 tables")
    parser.add_argument("--output", "--out", dest="output", type=Path, default=None,
                        help="output file (default: <data-dir>/units/vocoder.npz; --out: "
                             "deprecated spelling)")
    add_num_threads_argument(parser, "torch CPU threads for the log-mel analysis")
    add_log_level_argument(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    return run_main(lambda: _fit(args), (OSError,))


def _fit(args: argparse.Namespace) -> None:
    from echostream_fairseq.data.manifests import PIPER_PHONEMES, vocoder_type

    if vocoder_type(args.data_dir) == PIPER_PHONEMES:
        print(f"{args.data_dir}: the units are piper phoneme ids, spoken by piper itself; "
              "there is no vocoder to fit")
        return
    torch.set_num_threads(args.num_threads)
    out = args.output or args.data_dir / EMBEDDED_VOCODER_FILE
    start = time.perf_counter()
    vocoder = fit_centroid_vocoder(args.data_dir, kind=args.kind, spectra_kind=args.spectra_kind,
                                   min_count=args.min_count,
                                   spectra_min_count=args.spectra_min_count,
                                   spectra_rank=args.spectra_rank or None)
    vocoder.save(out)
    logger.info("wrote %s (K = %d, %s durations, %s spectra) in %.1f s", out, vocoder.num_units,
                args.kind, args.spectra_kind, time.perf_counter() - start)


if __name__ == "__main__":
    raise SystemExit(main())
