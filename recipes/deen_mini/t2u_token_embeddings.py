"""Collect what ``t2u_token_embeddings.sh`` measured into one results summary
(``results/t2u_token_embeddings.json``, rendered into RESULTS.md by ``make results``).

Reads, for each arm under ``--work-dir`` (``states``: the T2U hears the MT decoder's states, as
StreamSpeech's; ``tokens``: ``--t2u-token-embeddings``): ``<arm>/train.log`` (the dev losses at
the fork point and at its end) and ``<arm>/t2u.json`` (``echostream-measure-t2u``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from echostream_fairseq.cli.results import dump_summary
from echostream_fairseq.provenance import provenance
from echostream_fairseq.training_logs import log_records

ARMS = (("states", "MT decoder states (StreamSpeech's T2U input)"),
        ("tokens", "states + the embedding of the subword each predicts "
                   "(`--t2u-token-embeddings`)"))
DEV_SUBSET = "dev_sampled.units"
LOSSES = (("unit_ctc_loss", "dev_unit_ctc"), ("multitask_target_unigram_loss", "dev_mt"),
          ("multitask_source_unigram_loss", "dev_asr"))  # fairseq's log keys, our columns


def _dev_record(log: Path, updates: int) -> Optional[Dict[str, float]]:
    """The dev validation record at ``updates`` (fairseq's losses in bits), or None."""
    records = [r for r in log_records(log.read_text(encoding="utf-8"), DEV_SUBSET, str(log))
               if int(r.get("num_updates", -1)) == updates]
    return records[-1] if records else None


def _row(work_dir: Path, arm: str, label: str, end: int) -> Dict[str, Any]:
    row: Dict[str, Any] = {"t2u_input": label}
    dev = _dev_record(work_dir / arm / "train.log", end)
    if dev is None:
        raise SystemExit(f"{work_dir / arm / 'train.log'}: no dev validation at update {end}")
    # unit CTC in nats per unit, as the corpus report's unit entropies; the text heads' losses
    # as fairseq logs them
    row["dev_unit_ctc"] = round(dev["unit_ctc_loss"] * math.log(2), 3)
    for key, column in LOSSES[1:]:
        row[column] = round(dev[key], 2)
    spoken = json.loads((work_dir / arm / "t2u.json").read_text(encoding="utf-8"))
    score = spoken["t2u_reference_text"]
    row.update(t2u_asr_bleu=round(score["bleu"], 2), t2u_wer=round(score["wer"], 1),
               unit_ratio=round(score["unit_ratio"], 2), sentences=score["num_sentences"])
    return row


COLUMNS = [
    {"key": "t2u_input", "header": "T2U input"},
    {"key": "dev_unit_ctc", "header": "dev unit CTC (nats/unit)", "digits": 2},
    {"key": "dev_mt", "header": "dev MT loss (fairseq's)", "digits": 1},
    {"key": "dev_asr", "header": "dev ASR CTC (fairseq's)", "digits": 1},
    {"key": "sentences", "header": "dev sentences"},
    {"key": "t2u_asr_bleu", "header": "reference text -> T2U -> piper ASR-BLEU", "digits": 2},
    {"key": "t2u_wer", "header": "its WER %", "digits": 1},
    {"key": "unit_ratio", "header": "units / reference units", "digits": 2},
]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--fork-at", type=int, required=True)
    parser.add_argument("--updates", type=int, required=True)
    parser.add_argument("--output", type=Path, required=True)
    opts = parser.parse_args(argv)
    end = opts.fork_at + opts.updates
    rows = [_row(opts.work_dir, arm, label, end) for arm, label in ARMS]
    origin = provenance(argv if argv is not None else sys.argv[1:])
    summary = {
        "provenance": {"source": f"measured by recipes/deen_mini/t2u_token_embeddings.sh, "
                                 f"collected at {origin['git_commit'][:7]}",
                       "command": f"recipes/deen_mini/t2u_token_embeddings.sh --fork-at "
                                  f"{opts.fork_at} --updates {opts.updates}"},
        "title": "What the T2U hears: MT decoder states, or states and the predicted subword",
        "description": (
            f"The shipped model's recipe trained {opts.fork_at:,} updates with StreamSpeech's "
            "T2U input, then two arms continued from that checkpoint for "
            f"{opts.updates:,} more updates each (batches of 16, one thread): without and with "
            "the embedding of the subword each MT decoder state predicts added to the T2U's "
            "input (the reference subword in training, the written one when streaming; no new "
            "parameters). A teacher-forced MT state that predicts the wrong subword leaves "
            "StreamSpeech's T2U nothing to pronounce, so while the MT decoder is weak its unit "
            "CTC barely learns; with the subword in its input the T2U learns to say the text. "
            "Dev losses at the last update; the reference text through each arm's T2U "
            "and piper, heard by Whisper tiny.en, on the first dev sentences."),
        "tables": [{"kind": "table", "title": f"At update {end:,}", "columns": COLUMNS,
                    "rows": rows}],
    }
    tmp = opts.output.with_name(opts.output.name + ".tmp")
    tmp.write_text(dump_summary(summary), encoding="utf-8")
    tmp.replace(opts.output)
    print(f"wrote {opts.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
