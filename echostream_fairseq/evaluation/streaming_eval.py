"""Streaming and offline evaluation of a checkpoint: drive the pipeline, time it, score it.

For each chunk size C (ms) every test wav is fed to
:class:`~echostream_fairseq.streaming.StreamingS2STPipeline` as SimulEval feeds an agent:
chunks of ``ceil(C / 1000 * rate)`` samples, the last one through ``finish`` (the Emformer
segment is :func:`~echostream_fairseq.streaming.config.segment_length_for_chunk`, the agents'
rule). For each step we record what it wrote and:

* its *delay*: milliseconds of source consumed when the step's output was written;
* its *elapsed* time (SimulEval's computation-aware timestamp): the delay plus the pipeline's
  compute time of every step so far, this one included (``StepOutput.compute_s``).

Text gets one delay per written word; speech one per written segment with its duration, exactly
as SimulEval 1.1.4's ``TextOutputInstance`` / ``SpeechOutputInstance`` record them. The recorded
runs become SimulEval instances (speech through SimulEval's own ``SpeechOutputInstance.summarize``,
which places the segments, inserts the silence while waiting for source and writes the wav) and
are re-read as ``LogInstance`` s, as ``simuleval --score-only`` does; the latency numbers then
come from SimulEval's own scorer classes, plain and computation-aware (``*_CA``).

The offline condition is the same pipeline with one Emformer segment longer than the longest
utterance, fed the whole wav in one ``finish`` call: greedy whole-utterance decoding.

Quality: ASR-BLEU of the output speech (Whisper tiny.en, :mod:`echostream_fairseq.scoring`
normalisation, and raw), BLEU of the written text (same normalisation, and raw), WER/CER of the
streaming source ASR against ``src_text`` (both normalised with
:func:`~echostream_fairseq.scoring.asr_bleu.normalize_text`), and BLEU of the streamed text against
the offline text of the same utterance.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from argparse import Namespace
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import editdistance
import numpy as np
from simuleval.evaluator.instance import LogInstance, SpeechOutputInstance
from simuleval.evaluator.scorers import get_scorer_class

# imported for its SimulEval fixes too (speech-output summaries keep their compute timestamps)
from echostream_fairseq.scoring.simuleval_scorers import raw_bleu, transcribe_instances
from echostream_fairseq.data.audio import SAMPLE_RATE, read_wav, resample
from echostream_fairseq.evaluation.testset import TestUtterance
from echostream_fairseq.scoring.asr_bleu import (normalize_text, score_texts, transcribe_all,
                                                 word_error_rate)
from echostream_fairseq.streaming.config import segment_length_for_chunk
from echostream_fairseq.streaming.pipeline import (
    PipelineConfig,
    SentenceEnd,
    StepOutput,
    StreamingS2ST,
    StreamingS2STPipeline,
)
from echostream_fairseq.errors import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "SPEECH_LATENCY_METRICS", "TEXT_LATENCY_METRICS", "EvaluationSettings", "StepRecord",
    "UtteranceRun", "character_error_rate", "evaluate", "latency_scores", "speech_instance",
    "stream_utterance", "stream_utterances_batched", "text_instance",
]

#: SimulEval latency scorers reported for text output (each also computation-aware, ``*_CA``).
TEXT_LATENCY_METRICS = ("AL", "LAAL", "ATD", "StartOffset", "EndOffset", "RTF")
#: The same for speech output. SimulEval 1.1.4's ATD treats a re-read speech log as text, so it
#: is left out rather than reported under a wrong meaning.
SPEECH_LATENCY_METRICS = ("AL", "LAAL", "StartOffset", "EndOffset", "RTF")
OFFLINE = "offline"


@dataclass
class StepRecord:
    """What one pipeline step wrote, and when.

    Attributes:
        source_ms: source consumed when the output was written (SimulEval's delay), ms.
        compute_s: the step's compute time, seconds.
        target_words: new target words.
        asr_words: new source-language ASR words.
        speech: new output samples, (S,) float32.
        sentences: the sentences the step finished.
    """

    source_ms: float
    compute_s: float
    target_words: List[str] = field(default_factory=list)
    asr_words: List[str] = field(default_factory=list)
    speech: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    sentences: List[SentenceEnd] = field(default_factory=list)

    @classmethod
    def from_output(cls, source_ms: float, output: StepOutput) -> "StepRecord":
        return cls(source_ms, output.compute_s, output.target_text.split(),
                   output.asr_text.split(), np.asarray(output.speech, dtype=np.float32),
                   list(output.sentences))


@dataclass
class UtteranceRun:
    """One utterance under one condition: its steps and the output sample rate."""

    utterance: TestUtterance
    steps: List[StepRecord]
    speech_rate: int = 0

    @property
    def sentences(self) -> List[SentenceEnd]:
        return [sentence for step in self.steps for sentence in step.sentences]

    @property
    def st_ctc_text(self) -> str:
        """The ST-CTC head's greedy text (what the policy reads), for analysis."""
        return " ".join(s.st_ctc_text for s in self.sentences if s.st_ctc_text)

    @property
    def target_text(self) -> str:
        return " ".join(w for step in self.steps for w in step.target_words)

    @property
    def asr_text(self) -> str:
        return " ".join(w for step in self.steps for w in step.asr_words)

    @property
    def compute_s(self) -> float:
        return sum(step.compute_s for step in self.steps)

    def elapsed_ms(self) -> List[float]:
        """Per step: its delay plus the compute time of every step so far (ms)."""
        cumulative = np.cumsum([step.compute_s for step in self.steps]) * 1000.0
        return [step.source_ms + float(c) for step, c in zip(self.steps, cumulative)]

    def word_timestamps(self) -> Tuple[List[float], List[float]]:
        """``(delays, elapsed)`` in ms, one entry per written target word."""
        delays, elapsed = [], []
        for step, step_elapsed in zip(self.steps, self.elapsed_ms()):
            delays += [step.source_ms] * len(step.target_words)
            elapsed += [step_elapsed] * len(step.target_words)
        return delays, elapsed

    def speech_segments(self) -> List[Tuple[float, float, np.ndarray]]:
        """``(delay ms, elapsed ms, samples)`` per step that wrote speech."""
        return [(step.source_ms, elapsed, step.speech)
                for step, elapsed in zip(self.steps, self.elapsed_ms()) if step.speech.size]


def _chunk_bounds(num_samples: int, sample_rate: int, chunk_ms: Optional[float]
                  ) -> List[Tuple[int, int]]:
    """SimulEval's chunks ``(start, end)``: ``ceil(chunk_ms / 1000 * rate)`` samples each (one
    chunk of everything when ``chunk_ms`` is None)."""
    if chunk_ms is None:
        return [(0, num_samples)]
    size = math.ceil(chunk_ms / 1000.0 * sample_rate)
    return [(start, min(start + size, num_samples)) for start in range(0, num_samples, size)]


def stream_utterance(pipeline: StreamingS2STPipeline, samples: np.ndarray, sample_rate: int,
                     chunk_ms: Optional[float]) -> List[StepRecord]:
    """Run one utterance; ``chunk_ms`` None feeds the whole wav in one ``finish`` call.

    Chunks are SimulEval's: ``ceil(chunk_ms / 1000 * rate)`` samples, the one that reaches the
    end of the source goes through ``finish`` (as the agents do with SimulEval's finished
    segment), so the last outputs have the whole source as their delay.
    """
    pipeline.reset()
    records = []
    for start, end in _chunk_bounds(len(samples), sample_rate, chunk_ms):
        step = pipeline.finish if end == len(samples) else pipeline.push
        output = step(samples[start:end], sample_rate)
        records.append(StepRecord.from_output(1000.0 * end / sample_rate, output))
    return records


def stream_utterances_batched(engine: StreamingS2ST, audio: Sequence[Tuple[np.ndarray, int]],
                              chunk_ms: Optional[float], batch_size: int
                              ) -> List[List[StepRecord]]:
    """:func:`stream_utterance` for every utterance, ``batch_size`` streams stepped together
    (:meth:`StreamingS2ST.step_batch`); a stream that finishes makes room for the next one, so
    streams stand at different positions. Each utterance's texts and units are those of its
    own run; its steps' compute time is the batch's."""
    rates = {rate for _, rate in audio}
    if len(rates) > 1:
        raise InputError(f"batched streaming needs one sample rate, got {sorted(rates)}")
    records: List[List[StepRecord]] = [[] for _ in audio]
    waiting = iter(range(len(audio)))
    active: List[Tuple[int, Any, List[Tuple[int, int]]]] = []  # (index, state, chunks left)
    while True:
        while len(active) < batch_size:
            index = next(waiting, None)
            if index is None:
                break
            samples, rate = audio[index]
            bounds = _chunk_bounds(len(samples), rate, chunk_ms)
            if bounds:
                active.append((index, engine.init(), bounds))
        if not active:
            return records
        rate = audio[active[0][0]][1]
        chunks = [audio[index][0][bounds[0][0]:bounds[0][1]] for index, _, bounds in active]
        finals = [len(bounds) == 1 for _, _, bounds in active]
        outputs, states = engine.step_batch([state for _, state, _ in active], chunks, rate,
                                            finals)
        still = []
        for (index, _, bounds), output, state in zip(active, outputs, states):
            records[index].append(StepRecord.from_output(1000.0 * bounds[0][1] / rate, output))
            if len(bounds) > 1:
                still.append((index, state, bounds[1:]))
        active = still


# ------------------------------------------------------------------------- SimulEval instances
def text_instance(index: int, run: UtteranceRun) -> LogInstance:
    """The run's text output as SimulEval logs a ``TextOutputInstance`` (word latency unit)."""
    delays, elapsed = run.word_timestamps()
    summary = {"index": index, "prediction": run.target_text, "delays": delays,
               "elapsed": elapsed, "prediction_length": len(delays),
               "reference": run.utterance.reference, "source": str(run.utterance.wav),
               "source_length": run.utterance.source_ms}
    return LogInstance(json.dumps(summary))


class _RecordedSpeechOutput(SpeechOutputInstance):
    """SimulEval's speech-output instance filled with a recorded run, so that its own
    ``summarize`` lays the segments out and writes ``<output>/wavs/<index>_pred.wav``."""

    def __init__(self, index: int, run: UtteranceRun, output_dir: Path) -> None:
        super().__init__(index, None, Namespace(output=str(output_dir), eval_latency_unit="word"))
        self.reference = run.utterance.reference
        self._source_ms = run.utterance.source_ms
        self.dataloader = SimpleNamespace(get_source_audio_path=lambda _: str(run.utterance.wav))
        self.target_sample_rate = run.speech_rate
        for delay, elapsed, samples in run.speech_segments():
            self.delays.append(delay)
            self.elapsed.append(elapsed)
            self.durations.append(1000.0 * samples.size / run.speech_rate)
            self.prediction_list.append(samples.tolist())

    @property
    def source_length(self) -> float:
        return self._source_ms


def speech_instance(index: int, run: UtteranceRun, output_dir: Path) -> LogInstance:
    """The run's speech output as SimulEval logs it (writes its wav under ``output_dir``)."""
    summary = _RecordedSpeechOutput(index, run, output_dir).summarize()
    return LogInstance(json.dumps(summary))


def latency_scores(instances: Sequence[LogInstance], metrics: Sequence[str]
                   ) -> Dict[str, Optional[float]]:
    """Mean of SimulEval's scorers over the instances that wrote something, plain and ``_CA``.

    Instances without output are left out (as SimulEval skips them); with none left every score
    is None. Delays, elapsed times and source lengths are in ms, so are the scores (RTF: ratio).
    Each instance's ``metrics`` gets its own scores under the same names.
    """
    # SimulEval's ATD looks its input type up at key 0, so the kept instances are renumbered
    scored = dict(enumerate(ins for ins in instances if ins.delays))
    scores: Dict[str, Optional[float]] = {}
    for name in metrics:
        for computation_aware, suffix in ((False, ""), (True, "_CA")):
            scorer = get_scorer_class("latency", name)(computation_aware=computation_aware,
                                                       use_ref_len=True)
            scores[name + suffix] = float(scorer(scored)) if scored else None
            for ins in scored.values():  # the scorer files both variants under the plain name
                if name in ins.metrics:
                    ins.metrics[name + suffix] = ins.metrics.pop(name)
    return scores


# ----------------------------------------------------------------------------------- quality
def character_error_rate(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus CER in percent on already-normalised texts (spaces count as characters)."""
    errors = sum(editdistance.eval(h, r) for h, r in zip(hypotheses, references))
    return 100.0 * errors / max(1, sum(len(r) for r in references))


def _normalised_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """BLEU after :func:`normalize_text` on both sides (empty references allowed)."""
    return raw_bleu([normalize_text(h) for h in hypotheses],
                    [normalize_text(r) for r in references])


def _text_scores(runs: Sequence[UtteranceRun], offline: Optional[Sequence[str]]) -> Dict[str, Any]:
    texts = [run.target_text for run in runs]
    references = [run.utterance.reference for run in runs]
    result = score_texts(texts, references, num_empty=sum(not t for t in texts))
    scores: Dict[str, Any] = {"bleu": result.bleu, "bleu_raw": raw_bleu(texts, references),
                              "wer": result.wer, "num_empty": result.num_empty,
                              "bleu_signature": result.bleu_signature}
    if offline is not None:
        scores["bleu_vs_offline"] = _normalised_bleu(texts, offline)
        scores["identical_to_offline"] = sum(t == o for t, o in zip(texts, offline)) / len(texts)
    return scores


def _asr_scores(runs: Sequence[UtteranceRun]) -> Dict[str, float]:
    hypotheses = [normalize_text(run.asr_text) for run in runs]
    references = [normalize_text(run.utterance.source_text) for run in runs]
    return {"wer": word_error_rate(hypotheses, references),
            "cer": character_error_rate(hypotheses, references)}


def _joined_speech_scores(runs: Sequence[UtteranceRun], asr_model: Any
                          ) -> Tuple[Dict[str, Any], List[str]]:
    """ASR-BLEU of each run's speech pieces concatenated without silences (a run without speech
    scores as an empty transcript)."""
    joined_speech = []
    for run in runs:
        pieces = [samples for _, _, samples in run.speech_segments()]
        joined_speech.append(resample(np.concatenate(pieces), run.speech_rate, SAMPLE_RATE)
                             if pieces else None)
    transcripts = transcribe_all(asr_model, joined_speech)
    # empty as _speech_scores counts it, so the two columns compare
    result = score_texts(transcripts, [run.utterance.reference for run in runs],
                         num_empty=sum(not t for t in transcripts))
    return {"asr_bleu_joined": result.bleu, "num_empty_joined": result.num_empty}, transcripts


def _speech_scores(instances: Sequence[LogInstance], asr_model: Any,
                   progress: bool) -> Tuple[Dict[str, Any], List[str]]:
    transcripts = transcribe_instances(asr_model, dict(enumerate(instances)), progress=progress)
    references = [ins.reference for ins in instances]
    result = score_texts(transcripts, references, num_empty=sum(not t for t in transcripts))
    return ({"asr_bleu": result.bleu, "asr_bleu_raw": raw_bleu(transcripts, references),
             "asr_wer": result.wer, "num_empty": result.num_empty,
             "bleu_signature": result.bleu_signature}, transcripts)


# -------------------------------------------------------------------------------- evaluation
@dataclass(frozen=True)
class EvaluationSettings:
    """What :func:`evaluate` runs.

    Attributes:
        chunk_sizes_ms: source chunk sizes of the streaming conditions.
        offline: also run the whole-utterance condition (and compare streaming text to it).
        speech: run T2U + vocoder, score ASR-BLEU and speech latency.
        save_wavs: keep the output wavs of the first N utterances per condition.
        progress: show tqdm bars.
        pipeline: the decoding options of every condition (``--decode-config`` and the
            agents' options); its ``segment_length`` (None: derived from each chunk size, as the
            agents do) and ``reencode`` apply to the streaming conditions only, ``speech`` is
            this object's own.
        joined_speech_asr: also transcribe each streamed output with its pieces joined, without
            the silences SimulEval's layout puts between them (``asr_bleu_joined``): what the
            units say, apart from what the layout costs the recogniser.
        batch_size: streams stepped together (:func:`stream_utterances_batched`); the texts
            and units are those of 1, the computation-aware latencies count each batched
            step's whole time for every stream in it.
        vocoder_workers: streams whose speech a batched step synthesises at once
            (:attr:`StreamingS2ST.vocoder_workers`).
    """

    chunk_sizes_ms: Tuple[int, ...] = (160, 320, 640, 1280)
    offline: bool = True
    speech: bool = True
    save_wavs: int = 0
    progress: bool = True
    pipeline: PipelineConfig = PipelineConfig()
    joined_speech_asr: bool = False
    batch_size: int = 1
    vocoder_workers: int = 1


def _condition_name(chunk_ms: Optional[int]) -> str:
    return OFFLINE if chunk_ms is None else f"chunk_{chunk_ms}ms"


def _offline_segment(model: Any, utterances: Sequence[TestUtterance]) -> int:
    """One Emformer segment longer than the longest utterance (two frames spare: the fbank
    window and the floor of the frame count must never split it)."""
    geometry = model.encoder.geometry()
    longest_ms = max(u.source_ms for u in utterances)
    return segment_length_for_chunk(model, longest_ms + 2 * geometry.encoder_frame_ms)


def condition_config(model: Any, utterances: Sequence[TestUtterance], chunk_ms: Optional[int],
                     settings: EvaluationSettings) -> PipelineConfig:
    """The pipeline options of one condition (``chunk_ms`` None: offline)."""
    if chunk_ms is None:
        return settings.pipeline.replace(segment_length=_offline_segment(model, utterances),
                                         speech=settings.speech, reencode=False,
                                         single_sentence=True)
    return settings.pipeline.for_chunk(model, chunk_ms).replace(speech=settings.speech)


def _run_condition(model: Any, task: Any, utterances: Sequence[TestUtterance],
                   chunk_ms: Optional[int], settings: EvaluationSettings,
                   audio: Dict[int, Tuple[np.ndarray, int]]
                   ) -> Tuple[List[UtteranceRun], StreamingS2STPipeline]:
    pipeline = StreamingS2STPipeline.from_task(
        model, task, condition_config(model, utterances, chunk_ms, settings))
    rate = pipeline.vocoder.sample_rate if pipeline.vocoder is not None else 0
    iterator: Sequence[TestUtterance] = utterances
    if settings.progress:
        from tqdm import tqdm

        iterator = tqdm(utterances, desc=_condition_name(chunk_ms), unit="utt")
    if settings.batch_size > 1:
        pipeline.engine.vocoder_workers = settings.vocoder_workers
        try:
            batched = stream_utterances_batched(
                pipeline.engine, [audio[u.index] for u in utterances], chunk_ms,
                settings.batch_size)
        finally:
            pipeline.engine.vocoder_workers = 1  # the pool's threads end with the condition
        return [UtteranceRun(u, steps, rate) for u, steps in zip(utterances, batched)], pipeline
    runs = []
    for utterance in iterator:
        samples, sample_rate = audio[utterance.index]
        steps = stream_utterance(pipeline, samples, sample_rate, chunk_ms)
        runs.append(UtteranceRun(utterance, steps, rate))
    return runs, pipeline


def _keep_first_wavs(wav_dir: Path, instances: Sequence[LogInstance], keep: int) -> None:
    """Delete all but the first ``keep`` output wavs; put each kept one next to its reference."""
    for position, ins in enumerate(instances):
        wav = Path(str(ins.prediction))
        if position < keep:
            if wav.is_file():
                wav.with_name(wav.stem.replace("_pred", "_ref") + ".txt").write_text(
                    ins.reference + "\n", encoding="utf-8")
        else:
            wav.unlink(missing_ok=True)
    if wav_dir.is_dir() and not any(wav_dir.iterdir()):
        wav_dir.rmdir()


def _utterance_record(position: int, run: UtteranceRun, text_ins: LogInstance,
                      speech_ins: Optional[LogInstance], transcript: Optional[str],
                      offline_text: Optional[str]) -> Dict[str, Any]:
    utterance = run.utterance
    record: Dict[str, Any] = {
        "index": position, "id": utterance.utt_id, "wav": str(utterance.wav),
        "source_ms": utterance.source_ms, "source_text": utterance.source_text,
        "reference": utterance.reference, "asr_text": run.asr_text,
        "st_ctc_text": run.st_ctc_text, "sentences": len(run.sentences),
        "target_text": run.target_text, "compute_s": run.compute_s,
        "steps": len(run.steps),
        "text": {"delays": text_ins.delays, "elapsed": text_ins.elapsed,
                 "latency": dict(text_ins.metrics)},
    }
    if offline_text is not None:
        record["offline_text"] = offline_text
    if speech_ins is not None:
        wav = Path(str(speech_ins.prediction))
        record["speech"] = {
            "transcript": transcript, "wav": str(wav) if wav.is_file() else None,
            "delays": speech_ins.delays, "elapsed": speech_ins.elapsed,
            "durations": speech_ins.durations, "intervals": speech_ins.intervals,
            "seconds": speech_ins.prediction_length, "latency": dict(speech_ins.metrics)}
    return record


def _score_condition(runs: List[UtteranceRun], pipeline: StreamingS2STPipeline,
                     chunk_ms: Optional[int],
                     settings: EvaluationSettings, output_dir: Path,
                     asr_model: Callable[[], Any], offline: Optional[Sequence[str]],
                     stream_wall_s: float) -> Dict[str, Any]:
    name = _condition_name(chunk_ms)
    folder = output_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    source_s = sum(run.utterance.source_ms for run in runs) / 1000.0
    compute_s = sum(run.compute_s for run in runs)
    streaming = chunk_ms is not None
    text_instances = [text_instance(i, run) for i, run in enumerate(runs)]
    result: Dict[str, Any] = {
        "name": name, "chunk_ms": chunk_ms, "segment_frames": pipeline.geometry.segment_frames,
        "segment_ms": pipeline.geometry.segment_ms, "num_utterances": len(runs),
        "pipeline": dataclasses.asdict(pipeline.config),
        # the pipeline decides whole-word mode from the segment when the config leaves it open
        "whole_word": getattr(pipeline, "whole_word", None),
        "text": _text_scores(runs, offline if streaming else None),
        "asr": _asr_scores(runs),
        "compute": {"source_s": source_s, "compute_s": compute_s, "rtf": compute_s / source_s,
                    "stream_wall_s": stream_wall_s},
    }
    if streaming:
        result["text"]["latency"] = latency_scores(text_instances, TEXT_LATENCY_METRICS)
    result["text"]["num_without_output"] = sum(not ins.delays for ins in text_instances)
    speech_instances: List[Optional[LogInstance]] = [None] * len(runs)
    transcripts: List[Optional[str]] = [None] * len(runs)
    joined: Optional[List[str]] = None
    if settings.speech:
        start = time.perf_counter()
        speech_instances = [speech_instance(i, run, folder) for i, run in enumerate(runs)]
        result["speech"], transcripts = _speech_scores(speech_instances, asr_model(),
                                                        settings.progress)
        if streaming:
            result["speech"]["latency"] = latency_scores(speech_instances,
                                                         SPEECH_LATENCY_METRICS)
        result["speech"]["num_without_output"] = sum(not ins.delays for ins in speech_instances)
        result["speech"]["output_s"] = sum(ins.prediction_length for ins in speech_instances)
        if streaming and settings.joined_speech_asr:
            joined_scores, joined = _joined_speech_scores(runs, asr_model())
            result["speech"].update(joined_scores)
        result["compute"]["asr_wall_s"] = time.perf_counter() - start
        _keep_first_wavs(folder / "wavs", speech_instances, settings.save_wavs)
    with open(folder / "utterances.jsonl", "w", encoding="utf-8") as handle:
        for i, run in enumerate(runs):
            record = _utterance_record(i, run, text_instances[i], speech_instances[i],
                                       transcripts[i], offline[i] if offline else None)
            if joined is not None:
                record["speech"]["transcript_joined"] = joined[i]
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return result


def evaluate(model: Any, task: Any, utterances: Sequence[TestUtterance],
             settings: EvaluationSettings, output_dir: Path,
             asr_model: Callable[[], Any]) -> Dict[str, Any]:
    """Run every condition and score it.

    Args:
        model, task: a loaded EchoStream model and its ``speech_to_speech_ctc`` task.
        utterances: the validated test set (:func:`~echostream_fairseq.evaluation.testset.
            load_test_set`).
        settings: :class:`EvaluationSettings`.
        output_dir: per condition, ``<name>/utterances.jsonl`` (texts, delays, elapsed times,
            transcripts, per-utterance latencies) and ``<name>/wavs/`` (``--save-wavs``).
        asr_model: returns the Whisper model (called only when speech is scored; cache it).

    Returns:
        ``{"offline": {...} or None, "streaming": [{...} per chunk size]}``; every latency in ms.
    """
    if not utterances:
        raise InputError("no utterances to evaluate")
    audio = {u.index: read_wav(u.wav) for u in utterances}
    conditions: List[Optional[int]] = ([None] if settings.offline else [])
    conditions += list(settings.chunk_sizes_ms)
    results: Dict[str, Any] = {"offline": None, "streaming": []}
    offline_texts: Optional[List[str]] = None
    for chunk_ms in conditions:
        start = time.perf_counter()
        runs, pipeline = _run_condition(model, task, utterances, chunk_ms, settings, audio)
        wall = time.perf_counter() - start
        scored = _score_condition(runs, pipeline, chunk_ms, settings, output_dir, asr_model,
                                  offline_texts, wall)
        scored["wall_s"] = time.perf_counter() - start
        if chunk_ms is None:
            offline_texts = [run.target_text for run in runs]
            results["offline"] = scored
        else:
            results["streaming"].append(scored)
    return results
