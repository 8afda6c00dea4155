"""``echostream-prepare``: build the German->English mini corpus in StreamSpeech's layout.

Examples::

    echostream-prepare --data-dir data                 # the full corpus, about 10,000 pairs
    echostream-prepare --data-dir /tmp/tiny --max-pairs 20
    echostream-prepare --data-dir data_ding --extra-pairs ding ding-phrases   # + Ding's pairs

Re-running resumes: finished stages and utterances are skipped. The stages are described in
``echostream_fairseq/corpus/build.py`` (docs/corpus.md).
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Optional, Sequence

from echostream_fairseq.cli.common import (add_log_level_argument, positive_int, run_main,
                                           setup_logging)

# the corpus stages (echostream_fairseq/corpus/build.py: STAGES); a test keeps the two equal
STAGE_NUMBERS = range(1, 9)
EXTRA_PAIR_SOURCES = ("ding", "ding-phrases")  # corpus/build.py: EXTRA_PAIR_ORIGINS
UNIT_TYPES = ("logmel", "whisper", "piper-phonemes")  # corpus/build.py: UNIT_TYPES

logger = logging.getLogger("echostream.prepare")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    a = parser.add_argument
    a("--data-dir", type=Path, default=Path("data"),
      help="output folder (created; everything is written under it)")
    a("--max-pairs", type=positive_int, default=None,
      help="keep only this many sentence pairs (default: all, about 10,000)")
    a("--extra-pairs", nargs="+", choices=EXTRA_PAIR_SOURCES, default=[], metavar="SOURCE",
      help="more training pairs from Debian's trans-de-en (Ding): 'ding' (sentences), "
           "'ding-phrases' (multi-word phrases, each its own utterance); de-duplicated on both "
           "sides against every FreeDict pair, so dev and test stay as they are")
    a("--max-extra-pairs", type=positive_int, default=None,
      help="keep only this many of the --extra-pairs (a seeded sample; default: all)")
    a("--unit-type", choices=UNIT_TYPES, default=None,
      help="target units: 'piper-phonemes' (the voice's phoneme ids of the English text, "
           "spoken by piper itself), 'logmel' (k-means of the target speech's log-mel) or "
           "'whisper' (k-means of Whisper tiny.en's encoder states), both spoken by the "
           "embedded vocoder; docs/corpus.md compares them (default: the units of the corpus "
           "already in --data-dir, else piper-phonemes)")
    a("--seed", type=int, default=1, help="seed of the pair sampling, the split and k-means")
    a("--num-units", type=positive_int, default=500,
      help="k-means unit vocabulary K (shrunk automatically on tiny corpora)")
    a("--num-workers", "--jobs", dest="num_workers", type=positive_int,
      default=min(2, os.cpu_count() or 1),
      help="parallel workers for speech synthesis and features (--jobs: deprecated spelling)")
    a("--vocab-size", type=positive_int, default=None,
      help="sentencepiece vocabulary (default: chosen from the corpus size)")
    a("--kmeans-utts", type=positive_int, default=500,
      help="train utterances sampled to fit k-means")
    a("--skip-asr", action="store_true", help="do not measure the ASR-BLEU ceiling in the report")
    a("--test-only", type=positive_int, metavar="N",
      help="build only the first N test sentences of the full corpus (German speech and a "
           "manifest, no training data): what a shipped model is streamed on (make demo)")
    a("--stage", type=int, default=1, choices=STAGE_NUMBERS, metavar="N",
      help="first stage to run (1-8)")
    a("--stop-stage", type=int, default=8, choices=STAGE_NUMBERS, metavar="N",
      help="last stage to run (1-8)")
    add_log_level_argument(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.stage > args.stop_stage:
        parser.error(f"--stage {args.stage} is after --stop-stage {args.stop_stage}: "
                     "nothing would run")
    setup_logging(args.log_level)
    # faster-whisper logs every segment at DEBUG/INFO; the progress bar says enough
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    from echostream_fairseq.corpus.build import (DEFAULT_UNIT_TYPE, BuildConfig, build_corpus,
                                                 build_test_only, built_unit_type)

    if args.test_only is not None:
        return run_main(lambda: print(build_test_only(args.data_dir, args.test_only, args.seed,
                                                      args.num_workers)), (OSError,))

    built = built_unit_type(args.data_dir)
    unit_type = args.unit_type or built or DEFAULT_UNIT_TYPE
    if args.unit_type is None and built is not None:
        # resuming must not turn a corpus (and the checkpoints trained on it) into another
        logger.info("%s holds %s units: kept (pass --unit-type to change them)",
                    args.data_dir, built)
    config = BuildConfig(data_dir=args.data_dir, max_pairs=args.max_pairs, seed=args.seed,
                         extra_pairs=tuple(sorted(set(args.extra_pairs))),
                         max_extra_pairs=args.max_extra_pairs, unit_type=unit_type,
                         num_units=args.num_units, jobs=args.num_workers,
                         vocab_size=args.vocab_size, kmeans_utts=args.kmeans_utts,
                         skip_asr=args.skip_asr, first_stage=args.stage,
                         last_stage=args.stop_stage)

    def body() -> None:
        build_corpus(config)

    return run_main(body, (OSError,))


if __name__ == "__main__":
    raise SystemExit(main())
