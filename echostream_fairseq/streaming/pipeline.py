"""One reusable, truly incremental speech-to-speech pipeline; agents, bench/ and tests drive it.

:class:`StreamingS2ST` holds the model and the options; everything about one stream is an
:class:`UtteranceState` passed in and returned: ``state = engine.init()``, then
``output, state = engine.step(state, samples, rate)``. Per step only the new work is done:

1. fbank over the new samples only (:class:`StreamingFbank` keeps the leftover samples);
2. the Emformer encoder on the new frames, its state carried (constant cost per segment);
3. greedy ASR-CTC and ST-CTC prefixes extended over the new encoder frames only;
4. the CTC policy (:class:`CtcPolicy`) decides how many MT subwords may be written;
5. the MT decoder writes them greedily (:class:`~echostream_fairseq.streaming.mt.IncrementalMT`:
   self-attention cache kept, cross-attention keys/values of new frames appended to storage that
   grows by doubling);
6. T2U + unit CTC decoder over the new subwords only (:class:`IncrementalUnits`: causal T2U
   and the unit decoder's training mask keep earlier units fixed), and only the new units go
   through the vocoder (whose own state joins chunks).

**Sentence after sentence.** The models are trained on single sentences, so a stream is cut
into sentences: a sentence ends where the streaming ASR has written at least one token and then
only CTC blanks for ``sentence_pause_ms`` (a pause), or after ``max_sentence_ms`` of source (a
bound on memory). At the cut the sentence is finished as if its source had ended (the MT
decoder writes to ``</s>``, the units and the vocoder are flushed) and a new sentence starts at
the next encoder frame: MT, T2U, unit and CTC-prefix states start afresh, the Emformer state
continues. ``PipelineConfig(single_sentence=True)`` keeps one sentence per stream (SimulEval's
per-sentence evaluation; the output is then exactly the earlier single-sentence pipeline's).

:class:`ReencodingS2ST` (``PipelineConfig(reencode=True)``) is StreamSpeech's method, kept as the
baseline that ``bench/streaming_cost.py`` measures: fbank, the encoder and both CTC heads over
the whole received prefix at every step, the MT decoder without incremental state, and T2U +
unit decoder over the whole translation at every write (the vocoder keeps its streaming state).
It writes the same text and units (tested); like StreamSpeech it knows one sentence per stream.

:class:`StreamingS2STPipeline` is the stateful wrapper (``reset``/``push``/``finish``) that
existing callers use. Nothing here imports SimulEval. Dimension legend: T encoder frames,
B batch (always 1), D dims, V vocabulary, U unit steps.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from fairseq.data import Dictionary
from torch import Tensor

from echostream_fairseq.checkpoints import load_model_and_task as load_checkpoint  # old name
from echostream_fairseq.decoding.ctc import CtcCollapser
from echostream_fairseq.decoding.text import complete_words, detokenize
from echostream_fairseq.models.echostream import ASR_TASK, ST_TASK
from echostream_fairseq.models.state import EncoderState, stack_states, unstack_states
from echostream_fairseq.streaming.config import PipelineConfig
from echostream_fairseq.streaming.features import StreamingFbank
from echostream_fairseq.streaming.mt import (IncrementalMT, MTStepper, RecomputeMT,
                                             RecomputeStepper)
from echostream_fairseq.streaming.policy import CtcPolicy, PolicyCounts
from echostream_fairseq.streaming.units import FullRecomputeUnits, IncrementalUnits

logger = logging.getLogger(__name__)

__all__ = ["PipelineConfig", "ReencodingS2ST", "SentenceEnd", "SentenceState", "StepOutput",
           "StreamingS2ST", "StreamingS2STPipeline", "UtteranceState", "load_checkpoint"]

# StreamSpeech's agents write whole words from this source segment size on.
WHOLE_WORD_FROM_MS = 640


@dataclass(frozen=True)
class SentenceEnd:
    """A sentence the pipeline finished (at a pause, at the length bound, or at the end).

    Attributes:
        index: 0 for the stream's first sentence.
        source_text: its streaming ASR text.
        st_ctc_text: its ST-CTC head's greedy text (what the policy read).
        target_text: its whole translation.
        start_ms, end_ms: its source span in the stream (encoder frames, in ms).
    """

    index: int
    source_text: str
    st_ctc_text: str
    target_text: str
    start_ms: int
    end_ms: int


@dataclass
class StepOutput:
    """What one step made final (everything is new since the previous step).

    Attributes:
        asr_text: new complete source words of the streaming ASR (CTC greedy).
        target_text: new complete target words (MT decoder).
        units: new speech units (ids ``0..K-1``).
        speech: new output samples at ``speech_sample_rate``, (S,) float32.
        speech_sample_rate: rate of ``speech`` (0 when there is no vocoder).
        sentences: the sentences this step finished, in order (their words are in
            ``target_text`` too, from this step or earlier ones).
        finished: the stream is complete (after a final step).
        compute_s: wall time this step took.
    """

    asr_text: str = ""
    target_text: str = ""
    units: List[int] = field(default_factory=list)
    speech: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    speech_sample_rate: int = 0
    sentences: List[SentenceEnd] = field(default_factory=list)
    finished: bool = False
    compute_s: float = 0.0

    def extend(self, later: "StepOutput") -> None:
        """Append what ``later`` (the rest of the same step) made final."""
        self.asr_text = " ".join(t for t in (self.asr_text, later.asr_text) if t)
        self.target_text = " ".join(t for t in (self.target_text, later.target_text) if t)
        self.units = self.units + later.units
        self.speech = np.concatenate([self.speech, later.speech]) if later.speech.size \
            else self.speech
        self.speech_sample_rate = later.speech_sample_rate or self.speech_sample_rate
        self.sentences = self.sentences + later.sentences
        self.finished = later.finished


class _GreedyCtc:
    """Greedy CTC prefix of one sentence, extended frame by frame; blank is the dictionary's
    ``<s>`` (index 0). It also counts the blank frames since its last token (for pauses)."""

    def __init__(self, head: torch.nn.Module, dictionary: Dictionary) -> None:
        self.head = head
        self.blank = dictionary.bos()
        self.tokens: List[int] = []
        self.trailing_blanks = 0
        self._collapse = CtcCollapser(self.blank)

    def labels(self, frames: Tensor) -> List[int]:
        """Best label of each new encoder frame (T', 1, D)."""
        if frames.size(0) == 0:
            return []
        return self.head(frames)["encoder_out"][:, 0].argmax(-1).tolist()

    def extend(self, labels: Sequence[int]) -> None:
        self.tokens += self._collapse(labels)
        for label in labels:
            self.trailing_blanks = self.trailing_blanks + 1 if label == self.blank else 0

    def restart(self) -> None:
        """Forget the prefix (the re-encoding baseline recomputes it from all frames)."""
        self.tokens, self.trailing_blanks = [], 0
        self._collapse.reset()


def _pause_end(labels: Sequence[int], blank: int, has_token: bool, blanks: int,
               pause_frames: int) -> Optional[int]:
    """Frames of ``labels`` up to the end of the first pause: ``pause_frames`` blank frames
    after a token (``has_token``: the sentence has one already; ``blanks``: blank frames already
    trailing it); None when there is none."""
    for position, label in enumerate(labels):
        if label == blank:
            blanks += 1
            if has_token and blanks >= pause_frames:
                return position + 1
        else:
            has_token, blanks = True, 0
    return None


class _WordStream:
    """Turns a growing subword list into newly completed words."""

    def __init__(self, dictionary: Dictionary) -> None:
        self.dictionary = dictionary
        self.words: List[str] = []

    def new_words(self, tokens: Sequence[int], final: bool) -> str:
        words = complete_words(detokenize(tokens, self.dictionary), final)
        new = words[len(self.words):]
        self.words = words
        return " ".join(new)

    @property
    def text(self) -> str:
        return " ".join(self.words)


@dataclass
class SentenceState:
    """Everything of the current sentence; a new one starts at every sentence end.

    Attributes:
        index: the sentence's number in the stream (0 first).
        start_frame: the stream's encoder frame it starts at.
        asr, st: its greedy ASR-CTC and ST-CTC prefixes.
        marks: ``(asr_len, st_len)`` when the policy last allowed a write.
        mt: its MT decoder state.
        units: its T2U + unit decoder state.
        asr_words, mt_words: words already emitted.
    """

    index: int
    start_frame: int
    asr: _GreedyCtc
    st: _GreedyCtc
    mt: IncrementalMT
    units: Any
    asr_words: _WordStream
    mt_words: _WordStream
    marks: Tuple[int, int] = (0, 0)

    @property
    def num_frames(self) -> int:
        return self.mt.num_frames


@dataclass
class UtteranceState:
    """One stream's state; :meth:`StreamingS2ST.init` makes it, :meth:`StreamingS2ST.step`
    returns the next one (do not step an older one again: parts are updated in place).

    Attributes:
        features: the stream's fbank (and resampler) buffers.
        encoder: the Emformer encoder's :class:`~echostream_fairseq.models.state.EncoderState`.
        encoder_frames: encoder frames of the whole stream so far.
        sentence: the current sentence.
        vocoder: the vocoder's streaming state of the current sentence (None at its start).
        input_rate: the sample rate of the first step's samples.
        finished: a final step was run.
        source_samples: every received sample (the re-encoding baseline only).
    """

    features: StreamingFbank
    encoder: EncoderState
    sentence: SentenceState
    encoder_frames: int = 0
    vocoder: Any = None
    input_rate: Optional[int] = None
    finished: bool = False
    source_samples: List[np.ndarray] = field(default_factory=list)


class StreamingS2ST:
    """Incremental speech -> (ASR text, target text, units, speech), for any number of streams.

    Args:
        model: an ``echostream`` model (eval mode is set here).
        dictionaries: ``{"source_unigram", "ctc_target_unigram", <mt task>, "units"}`` dictionaries;
            ``units`` has ``blank_index``.
        cmvn: ``(mean, std)`` global CMVN stats, each (80,), or None.
        vocoder: a :class:`~echostream_fairseq.vocoder.base.UnitVocoder`, or None (no speech).
        config: :class:`PipelineConfig`.

    Example:
        >>> engine = StreamingS2ST.from_checkpoint("checkpoint_best.pt", "data/demo")
        >>> state = engine.init()
        >>> for chunk in chunks:
        ...     out, state = engine.step(state, chunk, 48000)   # StepOutput of what is new
        >>> out, state = engine.step(state, None, 48000, final=True)
    """

    def __init__(self, model: Any, dictionaries: Dict[str, Dictionary],
                 cmvn: Optional[tuple] = None, vocoder: Any = None,
                 config: PipelineConfig = PipelineConfig()) -> None:
        self.model = model.eval()
        self.config = config
        self.geometry = model.encoder.geometry(config.segment_length)
        self.mt_decoder = getattr(model, f"{model.mt_task_name}_decoder")
        self.dicts = dictionaries
        self.mt_dict = dictionaries[model.mt_task_name]
        self.mt_stepper = self._stepper_class(self.mt_decoder, self.mt_dict, model.t2u_input)
        self.unit_dict = dictionaries["units"]
        self.vocoder = vocoder if config.speech else None
        self.whole_word = (config.whole_word if config.whole_word is not None
                           else self.geometry.segment_ms >= WHOLE_WORD_FROM_MS)
        self.policy = CtcPolicy(config.stride_n, config.lagging_k1, self.whole_word)
        mean, std = cmvn if cmvn is not None else (None, None)
        self.cmvn = (mean, std)
        frame_ms = self.geometry.encoder_frame_ms
        self.pause_frames = max(1, -(-config.sentence_pause_ms // frame_ms))
        self.max_sentence_frames = max(1, config.max_sentence_ms // frame_ms)
        self._vocoder_pool: Optional[ThreadPoolExecutor] = None
        self._vocoder_workers = 1

    # ------------------------------------------------------------------------------ building
    @classmethod
    def from_checkpoint(cls, checkpoint: str, data_dir: Optional[str] = None,
                        config: PipelineConfig = PipelineConfig(),
                        vocoder_config: Optional[str] = None) -> Any:
        """Load a checkpoint (and its task's dictionaries, CMVN stats and vocoder)."""
        model, task = load_checkpoint(checkpoint, data_dir)
        return cls.from_task(model, task, config, vocoder_config)

    @classmethod
    def from_task(cls, model: Any, task: Any, config: PipelineConfig = PipelineConfig(),
                  vocoder_config: Optional[str] = None) -> Any:
        """Build from a loaded model and its ``speech_to_speech_ctc`` task."""
        return cls(model, *_task_parts(task, config, vocoder_config), config)

    # ------------------------------------------------------------------------------ state
    @property
    def single_sentence(self) -> bool:
        return self.config.single_sentence

    def init(self) -> UtteranceState:
        """The state of a new stream."""
        return UtteranceState(
            features=StreamingFbank(self.geometry.sample_rate, *self.cmvn,
                                    lead_in=self.config.frame_lead_in),
            encoder=self.model.encoder.init_state(1, segment_length=self.geometry.segment_frames),
            sentence=self._new_sentence(0, 0))

    def _new_sentence(self, index: int, start_frame: int) -> SentenceState:
        t2u = self.model.synthesizer_encoder
        recompute = self.config.reencode or (t2u is not None and not t2u.causal)
        units = FullRecomputeUnits if recompute else IncrementalUnits
        return SentenceState(
            index=index, start_frame=start_frame,
            asr=_GreedyCtc(self.model.source_unigram_decoder, self.dicts[ASR_TASK]),
            st=_GreedyCtc(self.model.ctc_target_unigram_decoder, self.dicts[ST_TASK]),
            mt=self._new_mt(),
            units=units(self.model, self.unit_dict, self.config.unit_k2, self.config.unit_n2,
                        self.config.unit_blank_penalty),
            asr_words=_WordStream(self.dicts[ASR_TASK]), mt_words=_WordStream(self.mt_dict))

    #: one greedy MT step for many sentences (the baseline's recomputes the whole prefix)
    _stepper_class = MTStepper

    def _new_mt(self) -> IncrementalMT:
        return IncrementalMT(self.mt_stepper, self.whole_word)

    # ------------------------------------------------------------------------------ stepping
    def step(self, state: UtteranceState, samples: Optional[np.ndarray], sample_rate: int,
             final: bool = False) -> Tuple[StepOutput, UtteranceState]:
        """Consume new source samples ((T,) or channels-last (T, C), any rate; None = none);
        ``final``: the source ends after them, flush every stage."""
        outs, states = self.step_batch([state], [samples], sample_rate, [final])
        return outs[0], states[0]

    def step_batch(self, states: Sequence[UtteranceState],
                   chunks: Sequence[Optional[np.ndarray]], sample_rate: int,
                   finals: Optional[Sequence[bool]] = None
                   ) -> Tuple[List[StepOutput], List[UtteranceState]]:
        """:meth:`step` for many streams at once; each stream's output equals its own
        :meth:`step` (text and units exactly, speech within float rounding).

        Streams may stand anywhere (different positions and sentence counts; a finished one is
        an error, as in :meth:`step`). The encoder runs once per group of streams whose states
        stack (equal pending buffers and new fbank frames: all streams in the steady state of
        equal chunks), each CTC head once over the new frames of all streams, the MT decoder
        one batched step per subword position over every sentence that writes (sentences ended
        at a cut included); fbank, sentence cuts, units and the vocoder run per stream. Every
        output's ``compute_s`` is the whole batch's time (what each stream waited).
        """
        finals = [False] * len(states) if finals is None else list(finals)
        if not len(states) == len(chunks) == len(finals):
            raise ValueError(f"step_batch: {len(states)} states, {len(chunks)} chunks and "
                             f"{len(finals)} final flags")
        for state in states:
            if state.finished:
                raise RuntimeError("the stream is finished: start a new one (init/reset) "
                                   "before pushing more audio")
        start = time.perf_counter()
        with torch.inference_mode():
            outs = self._run_batch(list(states), [np.zeros(0, dtype=np.float32) if c is None
                                                  else c for c in chunks], sample_rate, finals)
        elapsed = time.perf_counter() - start
        for out in outs:
            out.compute_s = elapsed
        return outs, list(states)

    def _run_batch(self, states: List[UtteranceState], chunks: List[np.ndarray],
                   sample_rate: int, finals: List[bool]) -> List[StepOutput]:
        for state in states:
            state.input_rate = state.input_rate or sample_rate
        frames = self._encode_batch(states, chunks, sample_rate, finals)
        # every sentence that may write now, in each stream's order: those ended at a cut in
        # these frames, then the current one (ended too when the stream is)
        jobs: List[_WriteJob] = []
        for index, (state, new, labels) in enumerate(zip(states, frames,
                                                         self._ctc_labels(frames))):
            jobs += [_WriteJob(index, ended, True, True)
                     for ended in self._cut_sentences(state, new, labels)]
            jobs.append(_WriteJob(index, state.sentence, finals[index], False))
        writing = []
        for job in jobs:
            job.written_before = len(job.sentence.mt.states)
            job.silent = self._silent(job.sentence, job.source_finished, job.cut)
            if not job.silent:
                job.budget = self._decide(job.sentence, job.source_finished)
                if job.budget is not None:
                    writing.append(job)
        self.mt_stepper.write([job.sentence.mt for job in writing],
                              [job.budget for job in writing],
                              [self._max_len(job.sentence) for job in writing],
                              [job.source_finished for job in writing])
        jobs = [job for job in jobs if not job.silent]
        for job in jobs:
            self._emit(job)
        self._speak(states, jobs)
        outs = [StepOutput() for _ in states]
        for job in jobs:  # each stream's sentences in order
            outs[job.stream].extend(job.output)
        for out, state, final in zip(outs, states, finals):
            out.finished = state.finished = final
        return outs

    def _encode_batch(self, states: List[UtteranceState], chunks: List[np.ndarray],
                      sample_rate: int, finals: List[bool]) -> List[Tensor]:
        """fbank over each stream's new samples, then the encoder with its state, run once per
        group of stackable states: the new frames (T', 1, D) of each stream."""
        empty = torch.zeros(0, 1, self.model.encoder.embed_dim)
        frames: List[Tensor] = [empty] * len(states)
        groups: Dict[Tuple[int, int, int, bool], List[int]] = {}
        fbanks = []
        for index, (state, samples, final) in enumerate(zip(states, chunks, finals)):
            fbank = state.features.push(samples, sample_rate, final)
            fbanks.append(fbank)
            if fbank.size(0) > 0 or (final and self._has_encoder_input(state)):
                key = (fbank.size(0), state.encoder.subsampler.num_pending,
                       state.encoder.emformer.num_pending, final)
                groups.setdefault(key, []).append(index)
        for (_, _, _, final), members in groups.items():
            if len(members) == 1:  # one stream: no stacking
                index = members[0]
                frames[index], states[index].encoder = self.model.encoder.infer(
                    fbanks[index].unsqueeze(0), states[index].encoder, final)
                continue
            stacked = stack_states([states[i].encoder for i in members])
            out, stacked = self.model.encoder.infer(
                torch.stack([fbanks[i] for i in members]), stacked, final)
            for row, (index, encoder) in enumerate(zip(members, unstack_states(stacked))):
                states[index].encoder = encoder
                frames[index] = out[:, row:row + 1]
        for state, new in zip(states, frames):
            state.encoder_frames += new.size(0)
        return frames

    def _ctc_labels(self, frames: Sequence[Tensor]) -> List[Tuple[Any, Any]]:
        """Best ASR-CTC and ST-CTC label of every new frame, per stream; each head runs once
        over the frames of all streams."""
        sizes = [f.size(0) for f in frames]
        if not sum(sizes):
            return [([], []) for _ in frames]
        joined = torch.cat([f for f in frames if f.size(0)], dim=0)
        heads = (self.model.source_unigram_decoder, self.model.ctc_target_unigram_decoder)
        labels = [head(joined)["encoder_out"][:, 0].argmax(-1).tolist() for head in heads]
        out, start = [], 0
        for size in sizes:
            out.append((labels[0][start:start + size], labels[1][start:start + size]))
            start += size
        return out

    def _cut_sentences(self, state: UtteranceState, frames: Tensor,
                       labels: Tuple[Any, Any]) -> List[SentenceState]:
        """Feed the new frames (and their ASR and ST labels) to the current sentence, ending
        and starting sentences where they pause (or reach the bound): the sentences ended."""
        ended = []
        for piece, asr_labels, st_labels, ends in self._sentence_pieces(state.sentence, frames,
                                                                       *labels):
            self._feed(state.sentence, piece, asr_labels, st_labels)
            if ends:
                done = state.sentence
                ended.append(done)
                state.sentence = self._new_sentence(done.index + 1,
                                                    done.start_frame + done.num_frames)
        return ended

    def _sentence_pieces(self, sentence: SentenceState, frames: Tensor, asr_labels: Any,
                         st_labels: Any) -> List[Tuple[Tensor, Any, Any, bool]]:
        """Split new encoder frames (T', 1, D) and their labels at sentence ends: ``(frames,
        ASR labels, ST labels, whether a sentence ends after them)`` in order; one piece when
        nothing ends."""
        if self.single_sentence or frames.size(0) == 0:
            return [(frames, asr_labels, st_labels, False)]
        has_token, blanks = bool(sentence.asr.tokens), sentence.asr.trailing_blanks
        in_sentence = sentence.num_frames
        pieces: List[Tuple[Tensor, Any, Any, bool]] = []
        start = 0
        while start < frames.size(0):
            rest = asr_labels[start:]
            cut = _pause_end(rest, sentence.asr.blank, has_token, blanks, self.pause_frames)
            room = max(1, self.max_sentence_frames - in_sentence)
            if cut is None or cut > room:
                cut = room if room <= len(rest) else None
            if cut is None:
                pieces.append((frames[start:], rest, st_labels[start:], False))
                break
            end = start + cut
            pieces.append((frames[start:end], rest[:cut], st_labels[start:end], True))
            start = end
            has_token, blanks, in_sentence = False, 0, 0
        return pieces

    def _feed(self, sentence: SentenceState, frames: Tensor, asr_labels: List[int],
              st_labels: List[int]) -> None:
        """New encoder frames of the sentence and their labels: CTC prefixes and the MT's
        source grow."""
        if frames.size(0) == 0:
            return
        sentence.mt.add_frames(frames)
        sentence.asr.extend(asr_labels)
        sentence.st.extend(st_labels)

    def _has_encoder_input(self, state: UtteranceState) -> bool:
        """Whether any fbank frame reached the encoder (an empty utterance never runs it)."""
        return (state.encoder.emformer.num_pending > 0
                or state.encoder.subsampler.num_pending > 0 or state.encoder_frames > 0)

    def _max_len(self, sentence: SentenceState) -> int:
        return int(self.config.max_len_a * sentence.num_frames + self.config.max_len_b)

    @staticmethod
    def _silent(sentence: SentenceState, source_finished: bool, cut: bool) -> bool:
        """A sentence that ends without a word of ASR or MT, after the first or at a cut:
        nothing was said (a long silence), nothing to translate."""
        return (source_finished and not sentence.asr.tokens and not sentence.mt.tokens
                and (cut or sentence.index > 0))

    def _decide(self, sentence: SentenceState, source_finished: bool) -> Optional[int]:
        """The policy's MT budget for the sentence now (None: READ)."""
        mt = sentence.mt
        decision = self.policy.decide(PolicyCounts(
            len(sentence.asr.tokens), len(sentence.st.tokens), *sentence.marks, len(mt.tokens),
            source_finished))
        if decision.mark:
            sentence.marks = (len(sentence.asr.tokens), len(sentence.st.tokens))
        return None if decision.is_read else decision.new_tokens

    def _emit(self, job: "_WriteJob") -> None:
        """The job's output: words and units of what its sentence's MT wrote since
        ``written_before`` states, its :class:`SentenceEnd` when the source is finished; and
        whether :meth:`_speak` is to voice the units."""
        sentence, source_finished, mt = job.sentence, job.source_finished, job.sentence.mt
        written_before = job.written_before
        out = job.output = StepOutput(
            asr_text=sentence.asr_words.new_words(sentence.asr.tokens, source_finished),
            # whole-word mode commits complete words only: none is held back
            target_text=sentence.mt_words.new_words(mt.tokens,
                                                    source_finished or self.whole_word))
        if self.vocoder is not None:
            out.speech_sample_rate = self.vocoder.sample_rate
            if len(mt.states) > written_before or source_finished:
                out.units = sentence.units.extend(mt.states[written_before:], source_finished)
                job.speaks = True
        if source_finished:
            frame_ms = self.geometry.encoder_frame_ms
            out.sentences.append(SentenceEnd(
                sentence.index, sentence.asr_words.text,
                detokenize(sentence.st.tokens, self.dicts[ST_TASK]), sentence.mt_words.text,
                sentence.start_frame * frame_ms,
                (sentence.start_frame + sentence.num_frames) * frame_ms))

    def _speak(self, states: List[UtteranceState], jobs: List["_WriteJob"]) -> None:
        """The vocoder over each stream's new units: in order within a stream (its state
        carries on), streams at once on :attr:`vocoder_workers` threads."""
        by_stream: Dict[int, List[_WriteJob]] = {}
        for job in jobs:
            if job.speaks:
                by_stream.setdefault(job.stream, []).append(job)

        def speak(stream: int) -> None:
            with torch.inference_mode():  # per thread: the pool's threads start without it
                for job in by_stream[stream]:
                    job.output.speech = self._vocode(states[stream], job.output.units,
                                                     job.source_finished)

        if self._vocoder_pool is None or len(by_stream) < 2:
            for stream in by_stream:
                speak(stream)
        else:
            for _ in self._vocoder_pool.map(speak, by_stream):  # raises the first error
                pass

    @property
    def vocoder_workers(self) -> int:
        """Streams whose speech :meth:`step_batch` synthesises at once (threads; default 1).
        A piper call runs on one thread and does not batch, so more workers spread a batch's
        speech over the cores; every stream's speech is the same with any number."""
        return self._vocoder_workers

    @vocoder_workers.setter
    def vocoder_workers(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"vocoder_workers must be at least 1, got {workers}")
        if self._vocoder_pool is not None:
            self._vocoder_pool.shutdown()
        self._vocoder_workers = workers
        self._vocoder_pool = (ThreadPoolExecutor(workers, thread_name_prefix="vocoder")
                              if workers > 1 else None)

    def _vocode(self, state: UtteranceState, units: List[int], final: bool) -> np.ndarray:
        if not units and not final:
            return np.zeros(0, dtype=np.float32)
        speech, state.vocoder = self.vocoder.synthesize_chunk(units, state.vocoder, final)
        if final:
            state.vocoder = None  # the next sentence's speech starts afresh
        return speech


def _task_parts(task: Any, config: PipelineConfig, vocoder_config: Optional[str]
                ) -> Tuple[Dict[str, Dictionary], Optional[tuple], Any]:
    """A task's dictionaries, CMVN stats and (when ``config.speech``) vocoder."""
    dicts = {name: sub.target_dictionary for name, sub in task.multitask_tasks.items()}
    dicts["units"] = task.target_dictionary
    cmvn = None
    stats_path = task.data_cfg.global_cmvn_stats_npz
    if stats_path:
        stats = np.load(stats_path)
        cmvn = (stats["mean"], stats["std"])
    vocoder = None
    if config.speech:
        from echostream_fairseq.vocoder import build_vocoder

        data_dir = Path(task.args.data)
        vocoder = build_vocoder(vocoder_config or data_dir / task.args.config_yaml, data_dir)
    return dicts, cmvn, vocoder


@dataclass
class _WriteJob:
    """One sentence that may write in a step (see :meth:`StreamingS2ST._run_batch`)."""

    stream: int
    sentence: SentenceState
    source_finished: bool
    cut: bool
    written_before: int = 0
    silent: bool = False
    budget: Optional[int] = None
    output: StepOutput = field(default_factory=StepOutput)
    speaks: bool = False  # new units (or the sentence's end) for the vocoder


class ReencodingS2ST(StreamingS2ST):
    """StreamSpeech's method, the baseline: fbank, encoder and CTC heads over the whole prefix
    at every step, MT without incremental state, units over the whole translation. Frames are
    kept up to where the streaming encoder would have emitted them, so decisions match it
    exactly. One sentence per stream, as StreamSpeech."""

    @property
    def single_sentence(self) -> bool:
        return True

    _stepper_class = RecomputeStepper

    def _new_mt(self) -> IncrementalMT:
        return RecomputeMT(self.mt_stepper, self.whole_word)

    def _encode_batch(self, states: List[UtteranceState], chunks: List[np.ndarray],
                      sample_rate: int, finals: List[bool]) -> List[Tensor]:
        # the baseline re-encodes each stream's own prefix: one stream after another
        return [self._encode(state, samples, sample_rate, final)
                for state, samples, final in zip(states, chunks, finals)]

    def _encode(self, state: UtteranceState, samples: np.ndarray, sample_rate: int,
                final: bool) -> Tensor:
        """All encoder frames so far (the whole prefix, re-encoded)."""
        if np.asarray(samples).size:
            state.source_samples.append(np.asarray(samples, dtype=np.float32))
        empty = torch.zeros(0, 1, self.model.encoder.embed_dim)
        if not state.source_samples:
            return empty
        features = StreamingFbank(self.geometry.sample_rate, *self.cmvn,
                                  lead_in=self.config.frame_lead_in)
        fbank = features.push(np.concatenate(state.source_samples), sample_rate, final)
        if final:
            keep = int(self.model.encoder.output_lengths(torch.tensor([fbank.size(0)])))
        else:
            keep = self.geometry.streamed_encoder_frames(fbank.size(0))
        if fbank.size(0) == 0 or keep == 0:
            return empty
        encoder_out = self.model.encoder(fbank.unsqueeze(0), torch.tensor([fbank.size(0)]),
                                         segment_length=self.geometry.segment_frames)
        state.encoder_frames = keep
        return encoder_out["encoder_out"][0][:keep]

    def _ctc_labels(self, frames: Sequence[Tensor]) -> List[Tuple[Any, Any]]:
        return [(None, None)] * len(frames)  # _feed runs the heads over the whole prefix

    def _feed(self, sentence: SentenceState, frames: Tensor, asr_labels: Any,
              st_labels: Any) -> None:
        if frames.size(0) == 0:
            return
        sentence.mt.replace_frames(frames)
        for ctc in (sentence.asr, sentence.st):
            ctc.restart()
            ctc.extend(ctc.labels(frames))


class StreamingS2STPipeline:
    """The stateful wrapper: one stream at a time through a :class:`StreamingS2ST` (or, with
    ``config.reencode``, a :class:`ReencodingS2ST`).

    Example:
        >>> pipe = StreamingS2STPipeline.from_checkpoint("checkpoint_best.pt", "data/demo")
        >>> pipe.reset()
        >>> for chunk in chunks:
        ...     out = pipe.push(chunk, 48000)        # StepOutput of what is new
        >>> out = pipe.finish()
    """

    def __init__(self, model: Any, dictionaries: Dict[str, Dictionary],
                 cmvn: Optional[tuple] = None, vocoder: Any = None,
                 config: PipelineConfig = PipelineConfig()) -> None:
        engine = ReencodingS2ST if config.reencode else StreamingS2ST
        self.engine = engine(model, dictionaries, cmvn, vocoder, config)
        self.reset()

    @classmethod
    def from_checkpoint(cls, checkpoint: str, data_dir: Optional[str] = None,
                        config: PipelineConfig = PipelineConfig(),
                        vocoder_config: Optional[str] = None) -> "StreamingS2STPipeline":
        model, task = load_checkpoint(checkpoint, data_dir)
        return cls.from_task(model, task, config, vocoder_config)

    @classmethod
    def from_task(cls, model: Any, task: Any, config: PipelineConfig = PipelineConfig(),
                  vocoder_config: Optional[str] = None) -> "StreamingS2STPipeline":
        return cls(model, *_task_parts(task, config, vocoder_config), config)

    def __getattr__(self, name: str) -> Any:
        # model, config, geometry, dicts, mt_dict, vocoder, whole_word ... are the engine's
        if name == "engine":
            raise AttributeError(name)
        return getattr(self.engine, name)

    def reset(self) -> None:
        """Start a new stream."""
        self.state = self.engine.init()

    def push(self, samples: np.ndarray, sample_rate: int) -> StepOutput:
        """Consume new source samples ((T,) or channels-last (T, C), any rate) -> new output."""
        out, self.state = self.engine.step(self.state, samples, sample_rate)
        return out

    def finish(self, samples: Optional[np.ndarray] = None,
               sample_rate: Optional[int] = None) -> StepOutput:
        """The source ended (optionally with a last chunk): flush every stage."""
        rate = sample_rate or self.state.input_rate or self.engine.geometry.sample_rate
        out, self.state = self.engine.step(self.state, samples, rate, final=True)
        return out

    # ------------------------------------------------------------------------------ results
    @property
    def features(self) -> StreamingFbank:
        return self.state.features

    @property
    def asr_tokens(self) -> List[int]:
        """The current sentence's streaming ASR subwords."""
        return list(self.state.sentence.asr.tokens)

    @property
    def st_ctc_tokens(self) -> List[int]:
        return list(self.state.sentence.st.tokens)

    @property
    def target_tokens(self) -> List[int]:
        """The current sentence's MT subwords."""
        return list(self.state.sentence.mt.tokens)

    @property
    def encoder_frames(self) -> int:
        return self.state.encoder_frames
