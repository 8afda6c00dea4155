"""Collect the unit-inventory comparison that ``unit_inventories.sh`` measured into one results
summary (``results/unit_inventories.json``, rendered into RESULTS.md by ``make results``).

Reads, for each inventory under ``--work-dir``: ``<kind>/data/report.json`` (units per second,
learnability statistics, build time of the units), ``<kind>/vocoder.json``
(``echostream-measure-vocoder``), ``<kind>/train/train.log`` (the dev losses at ``--updates``)
and ``<kind>/t2u.json`` (``echostream-measure-t2u``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Dict, Optional

from echostream_fairseq.cli.results import dump_summary
from echostream_fairseq.provenance import provenance
from echostream_fairseq.training_logs import log_records

KINDS = ("logmel", "whisper", "piper-phonemes")
LABELS = {"logmel": "log-mel k-means (the published figures')",
          "whisper": "Whisper-encoder k-means", "piper-phonemes": "piper phoneme ids"}
VOCODERS = {"logmel": "embedded (centroid)", "whisper": "embedded (centroid)",
            "piper-phonemes": "piper itself"}
DEV_SUBSET = "dev_sampled.units"
FIRST_VALIDATION = 100  # unit_inventories.sh validates every 100 updates


def _json(path: Path) -> Dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _dev_record(log: Path, updates: int) -> Optional[Dict[str, float]]:
    """The dev validation record written at ``updates`` (fairseq's loss in bits; ``None`` when
    the run did not get there)."""
    records = [r for r in log_records(log.read_text(encoding="utf-8"), DEV_SUBSET, str(log))
               if int(r.get("num_updates", -1)) == updates]
    return records[-1] if records else None


def _row(work_dir: Path, kind: str, updates: int) -> Dict[str, Any]:
    report = _json(work_dir / kind / "data" / "report.json")
    learn = report["learnability"]
    vocoder = _json(work_dir / kind / "vocoder.json")["variants"]
    streamed = "default_stream8"
    row: Dict[str, Any] = {
        "units": LABELS[kind], "vocoder": VOCODERS[kind], "k": report["units"]["num_units"],
        "units_per_s": report["splits"]["all"]["units_per_second"],
        "entropy": learn["unigram_entropy_nats"], "entropy_prev": learn["bigram_entropy_nats"],
        "per_subword": learn["units_per_subword"]["median"],
        "alignable_x10": 100.0 * learn["alignable"]["10"],
        "resynth": vocoder["default"]["bleu"], "resynth_streamed": vocoder[streamed]["bleu"],
    }
    log = work_dir / kind / "train" / "train.log"
    for key, at in (("dev_unit_ctc_first", FIRST_VALIDATION), ("dev_unit_ctc", updates)):
        dev = _dev_record(log, at)
        if dev is not None:
            row[key] = dev["unit_ctc_loss"] * math.log(2)  # fairseq logs bits per unit
    t2u = work_dir / kind / "t2u.json"
    if t2u.is_file():
        spoken = _json(t2u)["t2u_reference_text"]
        row["t2u_asr_bleu"], row["t2u_wer"] = spoken["bleu"], spoken["wer"]
        row["t2u_heard_nothing"] = spoken["num_empty"]
        row["t2u_sentences"] = spoken["num_sentences"]
    return row


COLUMNS = [
    {"key": "units", "header": "units"}, {"key": "vocoder", "header": "vocoder"},
    {"key": "k", "header": "K"},
    {"key": "units_per_s", "header": "units/s", "digits": 1},
    {"key": "entropy", "header": "unigram entropy (nats)", "digits": 2},
    {"key": "entropy_prev", "header": "given the previous unit", "digits": 2},
    {"key": "per_subword", "header": "units per subword", "digits": 1},
    {"key": "alignable_x10", "header": "CTC-alignable at x10 (%)", "digits": 1},
    {"key": "resynth", "header": "resynthesis ASR-BLEU", "digits": 1},
    {"key": "resynth_streamed", "header": "streamed, 8 units a chunk", "digits": 1},
    {"key": "dev_unit_ctc_first", "header": "dev unit CTC at update 100 (nats/unit)",
     "digits": 2},
    {"key": "dev_unit_ctc", "header": "at the last update", "digits": 2},
    {"key": "t2u_asr_bleu", "header": "reference text -> T2U ASR-BLEU", "digits": 2},
    {"key": "t2u_wer", "header": "its WER %", "digits": 1},
    {"key": "t2u_heard_nothing", "header": "Whisper hears nothing"},
]


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--updates", type=int, required=True, help="the training budget")
    parser.add_argument("--output", type=Path, required=True)
    opts = parser.parse_args(argv)
    try:
        rows = [_row(opts.work_dir, kind, opts.updates) for kind in KINDS]
        logmel = _json(opts.work_dir / "logmel" / "vocoder.json")
        ceiling = logmel["ceiling_piper"]
        report = _json(opts.work_dir / "logmel" / "data" / "report.json")
    except (OSError, KeyError, ValueError) as error:
        print(f"unit_inventories: {error}", file=sys.stderr)
        return 2
    sentences = logmel["sentences"]
    phonemes = _json(opts.work_dir / "piper-phonemes" / "vocoder.json")["variants"]
    longer = phonemes.get("phrase24_stream8")
    longer_phrases = (f" Phonemes streamed in phrases of 24 units instead of the default 12 "
                      f"score {longer['bleu']:.1f} (fewer joins, more wait)." if longer else "")
    splits = report["splits"]
    made = provenance(argv)
    summary = {
        "provenance": {
            "source": f"measured by recipes/deen_mini/unit_inventories.sh, collected at "
                      f"{(made['git_commit'] or 'an unknown commit')[:7]}",
            "command": f"recipes/deen_mini/unit_inventories.sh --updates {opts.updates}",
            **made,
        },
        "title": "Unit inventories side by side",
        "description": (
            f"One corpus of {report['max_pairs']:,} pairs ({splits['train']['pairs']:,} train, "
            f"{splits['test']['pairs']} test sentences; the same speech for all three), its "
            "target units made three ways. Resynthesis: the ground-truth units of the first "
            f"{sentences} test sentences through the inventory's vocoder, heard by Whisper "
            f"tiny.en; the piper target speech of the same sentences scores "
            f"{ceiling['bleu']:.1f}.{longer_phrases} Learnability: echostream_mini trained "
            f"{opts.updates} updates on each (batches of 8, one CPU thread, the same seed and "
            "schedule): the dev unit CTC loss at updates 100 and at the end (it counts the "
            "blank frames between units too, so it is not comparable across inventories, only "
            "its fall within one), and the reference text teacher-forced through its T2U + "
            "unit decoder (`echostream-measure-t2u` on the "
            f"{rows[0].get('t2u_sentences', 'dev')} dev sentences, mini decoding)."),
        "tables": [{"kind": "table", "columns": COLUMNS, "rows": rows}],
    }
    opts.output.write_text(dump_summary(summary), encoding="utf-8")  # the generator's layout
    print(f"wrote {opts.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
