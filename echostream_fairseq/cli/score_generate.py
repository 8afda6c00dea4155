"""``echostream-score-generate``: score a ``fairseq-generate`` output of an echostream model
against the test manifest.

Examples::

    # text (--gen-output text): BLEU of the D- lines
    echostream-score-generate exp/gen/generate-test_sampled.txt --manifest data/test_sampled.tsv

    # units (--gen-output units): vocode the D- lines, transcribe, ASR-BLEU
    echostream-score-generate exp/gen/generate-test_sampled.txt --manifest data/test_sampled.tsv \\
        --units --wav-dir exp/gen/wavs

Sentence ids of fairseq-generate are row numbers of the manifest (one split in ``--gen-subset``);
every row must have a hypothesis (fairseq silently skips the last sentences unless it ran with
``--required-batch-size-multiple 1``). References are the manifest's ``tgt_text``.

* Text: hypotheses are scored as written; references get the MT targets' normalisation
  (``normalize_for_spm``: lowercase, punctuation removed), since the MT decoder writes that form.
  sacrebleu BLEU, 13a tokenisation.
* Units: each unit sequence goes through the corpus's vocoder (``build_vocoder`` on
  ``--config-yaml``), Whisper tiny.en transcribes it, and ``asr_bleu``'s normalisation and scoring
  apply (an empty unit sequence counts as an empty transcript).

Prints one JSON object (also written to ``--output``).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from echostream_fairseq.cli.common import UserError, add_log_level_argument, run_main, setup_logging
from echostream_fairseq.data.manifests import read_tsv
from echostream_fairseq.data.text import normalize_for_spm, parse_units
from echostream_fairseq.generation import read_generate_output

logger = logging.getLogger("echostream.score_generate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("generate_output", type=Path,
                        help="fairseq-generate's stdout or its --results-path generate-<split>.txt")
    parser.add_argument("--manifest", type=Path, required=True,
                        help="the --gen-subset manifest (e.g. DATA/test_sampled.tsv)")
    parser.add_argument("--units", action="store_true",
                        help="the output holds units (--gen-output units): report ASR-BLEU")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="corpus folder for the vocoder (default: the manifest's folder)")
    parser.add_argument("--config-yaml", default="config_gcmvn.yaml",
                        help="data config naming the vocoder, under --data-dir")
    parser.add_argument("--wav-dir", type=Path, default=None,
                        help="keep the vocoded wavs here (<manifest id>.wav); default: a temp dir")
    parser.add_argument("--output", type=Path, default=None, help="also write the JSON here")
    add_log_level_argument(parser)
    return parser


def hypotheses(generate_output: Path, manifest_rows: Sequence[Dict[str, str]]) -> List[str]:
    """D- texts in manifest order; raises if a row has none or an id is outside the manifest."""
    with open(generate_output, encoding="utf-8") as handle:
        texts = read_generate_output(handle, "D")
    missing = sorted(set(range(len(manifest_rows))) - set(texts))
    extra = sorted(set(texts) - set(range(len(manifest_rows))))
    if missing or extra:
        raise UserError(
            f"{generate_output}: {len(texts)} hypotheses for {len(manifest_rows)} manifest rows "
            f"(missing ids {missing[:10]}, unknown ids {extra[:10]}); was it generated from this "
            "manifest alone, with --required-batch-size-multiple 1?")
    return [texts[i] for i in range(len(manifest_rows))]


def score_text(hyps: Sequence[str], rows: Sequence[Dict[str, str]]) -> Dict[str, Any]:
    import sacrebleu

    refs = [normalize_for_spm(row["tgt_text"]) for row in rows]
    bleu = sacrebleu.metrics.BLEU(tokenize="13a")
    score = bleu.corpus_score(list(hyps), [refs])
    return {"mode": "text", "sentences": len(refs), "bleu": round(float(score.score), 2),
            "bleu_signature": str(bleu.get_signature()),
            "empty_hypotheses": sum(1 for h in hyps if not h.strip())}


def score_units(hyps: Sequence[str], rows: Sequence[Dict[str, str]], data_dir: Path,
                config_yaml: str, wav_dir: Optional[Path]) -> Dict[str, Any]:
    from echostream_fairseq.data.audio import write_wav
    from echostream_fairseq.scoring.asr_bleu import (load_whisper_tiny_en, score_texts,
                                                     transcribe_all)
    from echostream_fairseq.vocoder import build_vocoder

    vocoder = build_vocoder(data_dir / config_yaml, data_dir)
    asr = load_whisper_tiny_en()
    units = [parse_units(h) for h in hyps]
    with tempfile.TemporaryDirectory() as scratch:
        folder = wav_dir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        wavs: List[Optional[Path]] = []
        for row, sequence in zip(rows, units):
            wav = folder / f"{row['id']}.wav" if sequence else None  # None: an empty transcript
            if wav is not None:
                write_wav(wav, vocoder.synthesize(sequence), vocoder.sample_rate)
            wavs.append(wav)
        transcripts = transcribe_all(asr, wavs)
    empty = sum(1 for t in transcripts if not t.strip())
    result = score_texts(transcripts, [row["tgt_text"] for row in rows], num_empty=empty)
    out = {"mode": "units", "sentences": result.num_sentences,
           "asr_bleu": round(result.bleu, 2), "asr_wer": round(result.wer, 2),
           "bleu_signature": result.bleu_signature, "empty_transcripts": result.num_empty,
           "empty_unit_sequences": sum(1 for u in units if not u),
           "mean_units": round(sum(map(len, units)) / max(1, len(units)), 1)}
    if wav_dir is not None:
        out["wav_dir"] = str(wav_dir)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    return run_main(lambda: _score(args), (OSError,))


def _score(args: argparse.Namespace) -> None:
    rows = read_tsv(args.manifest)
    hyps = hypotheses(args.generate_output, rows)
    if args.units:
        result = score_units(hyps, rows, args.data_dir or args.manifest.parent, args.config_yaml,
                             args.wav_dir)
    else:
        result = score_text(hyps, rows)
    text = json.dumps(result, indent=2)
    print(text)
    if args.output is not None:
        args.output.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
