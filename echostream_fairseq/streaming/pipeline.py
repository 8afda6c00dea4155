"""One reusable, truly incremental speech-to-speech pipeline; agents, bench/ and tests drive it.

Per :meth:`StreamingS2STPipeline.push` only the new work is done:

1. fbank over the new samples only (:class:`StreamingFbank` keeps the leftover samples);
2. the Emformer encoder on the new frames, its state carried (constant cost per segment);
3. greedy ASR-CTC and ST-CTC prefixes extended over the new encoder frames only;
4. the CTC policy (:class:`CtcPolicy`) decides how many MT subwords may be written;
5. the MT decoder writes them greedily with fairseq's incremental state (self-attention cache
   kept; keys/values of new encoder frames are appended to the cross-attention cache);
6. T2U + unit CTC decoder over the new subwords only (:class:`IncrementalUnits`: causal T2U
   and the unit decoder's training mask keep earlier units fixed), and only the new units go
   through the vocoder (whose own state joins chunks).

``PipelineConfig(reencode=True)`` is StreamSpeech's method, kept as the baseline that
``bench/streaming_cost.py`` measures: fbank, the encoder and both CTC heads over the whole
received prefix at every step, the MT decoder without incremental state (the whole prefix again
for every subword, as StreamSpeech's ``use_incremental_states=False`` generator), and T2U + unit
decoder over the whole translation at every write (the vocoder keeps its streaming state).
It writes the same text and units (tested). It imports no SimulEval. Dimension legend: T encoder
frames, B batch (always 1), D dims, V vocabulary, U unit steps.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from fairseq.data import Dictionary
from torch import Tensor

from echostream_fairseq.streaming.config import PipelineConfig
from echostream_fairseq.streaming.features import StreamingFbank
from echostream_fairseq.streaming.policy import WRITE_TO_END, CtcPolicy, PolicyCounts
from echostream_fairseq.checkpoints import load_model_and_task as load_checkpoint  # old name
from echostream_fairseq.decoding.ctc import CtcCollapser
from echostream_fairseq.decoding.text import WORD_START, complete_words, detokenize
from echostream_fairseq.models.echostream import ASR_TASK, ST_TASK
from echostream_fairseq.streaming.units import FullRecomputeUnits, IncrementalUnits

logger = logging.getLogger(__name__)

__all__ = ["PipelineConfig", "StepOutput", "StreamingS2STPipeline", "load_checkpoint"]

# StreamSpeech's agents write whole words from this source segment size on.
WHOLE_WORD_FROM_MS = 640


@dataclass
class StepOutput:
    """What one push made final (everything is new since the previous step).

    Attributes:
        asr_text: new complete source words of the streaming ASR (CTC greedy).
        target_text: new complete target words (MT decoder).
        units: new speech units (ids ``0..K-1``).
        speech: new output samples at ``speech_sample_rate``, (S,) float32.
        speech_sample_rate: rate of ``speech`` (0 when there is no vocoder).
        finished: the utterance is complete (after :meth:`StreamingS2STPipeline.finish`).
        compute_s: wall time this step took.
    """

    asr_text: str = ""
    target_text: str = ""
    units: List[int] = field(default_factory=list)
    speech: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    speech_sample_rate: int = 0
    finished: bool = False
    compute_s: float = 0.0


class _GreedyCtc:
    """Greedy CTC prefix extended frame by frame; blank is the dictionary's ``<s>`` (index 0)."""

    def __init__(self, head: torch.nn.Module, dictionary: Dictionary) -> None:
        self.head = head
        self.tokens: List[int] = []
        self._collapse = CtcCollapser(dictionary.bos())

    def restart(self) -> None:
        """Forget the prefix (the re-encoding baseline recomputes it from all frames)."""
        self.tokens = []
        self._collapse.reset()

    def extend(self, frames: Tensor) -> None:
        """frames: new encoder frames (T', 1, D)."""
        if frames.size(0) == 0:
            return
        self.tokens += self._collapse(self.head(frames)["encoder_out"][:, 0].argmax(-1).tolist())


class _WordStream:
    """Turns a growing subword list into newly completed words."""

    def __init__(self, dictionary: Dictionary) -> None:
        self.dictionary, self.emitted = dictionary, 0

    def new_words(self, tokens: Sequence[int], final: bool) -> str:
        words = complete_words(detokenize(tokens, self.dictionary), final)
        new = words[self.emitted:]
        self.emitted = len(words)
        return " ".join(new)


class StreamingS2STPipeline:
    """Incremental speech -> (ASR text, target text, units, speech) for one utterance at a time.

    Args:
        model: an ``echostream`` model (eval mode is set here).
        dictionaries: ``{"source_unigram", "ctc_target_unigram", <mt task>, "units"}`` dictionaries;
            ``units`` has ``blank_index``.
        cmvn: ``(mean, std)`` global CMVN stats, each (80,), or None.
        vocoder: a :class:`~echostream_fairseq.vocoder.base.UnitVocoder`, or None (no speech).
        config: :class:`PipelineConfig`.

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
        self.model = model.eval()
        self.config = config
        self.geometry = model.encoder.geometry(config.segment_length)
        self.mt_decoder = getattr(model, f"{model.mt_task_name}_decoder")
        self.dicts = dictionaries
        self.mt_dict = dictionaries[model.mt_task_name]
        self.unit_dict = dictionaries["units"]
        self.vocoder = vocoder if config.speech else None
        self.whole_word = (config.whole_word if config.whole_word is not None
                           else self.geometry.segment_ms >= WHOLE_WORD_FROM_MS)
        self.policy = CtcPolicy(config.stride_n, config.lagging_k1, self.whole_word)
        mean, std = cmvn if cmvn is not None else (None, None)
        self.features = StreamingFbank(self.geometry.sample_rate, mean, std)
        self.reset()

    # ------------------------------------------------------------------------------ building
    @classmethod
    def from_checkpoint(cls, checkpoint: str, data_dir: Optional[str] = None,
                        config: PipelineConfig = PipelineConfig(),
                        vocoder_config: Optional[str] = None) -> "StreamingS2STPipeline":
        """Load a checkpoint (and its task's dictionaries, CMVN stats and vocoder)."""
        model, task = load_checkpoint(checkpoint, data_dir)
        return cls.from_task(model, task, config, vocoder_config)

    @classmethod
    def from_task(cls, model: Any, task: Any, config: PipelineConfig = PipelineConfig(),
                  vocoder_config: Optional[str] = None) -> "StreamingS2STPipeline":
        """Build from a loaded model and its ``speech_to_speech_ctc`` task."""
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
        return cls(model, dicts, cmvn, vocoder, config)

    # ------------------------------------------------------------------------------ streaming
    def reset(self) -> None:
        """Start a new utterance."""
        self.features.reset()
        self._state = self.model.encoder.init_state(1, segment_length=self.geometry.segment_frames)
        self._encoder_chunks: List[Tensor] = []
        self._encoder_frames = 0
        self._asr = _GreedyCtc(self.model.source_unigram_decoder, self.dicts[ASR_TASK])
        self._st = _GreedyCtc(self.model.ctc_target_unigram_decoder, self.dicts[ST_TASK])
        self._input_rate: Optional[int] = None
        self._source_samples: List[np.ndarray] = []  # re-encoding baseline only
        self._marks = (0, 0)
        self._mt_tokens: List[int] = []
        self._mt_states: List[Tensor] = []
        t2u = self.model.synthesizer_encoder
        recompute = self.config.reencode or (t2u is not None and not t2u.causal)
        units = FullRecomputeUnits if recompute else IncrementalUnits
        self._units = units(self.model, self.unit_dict, self.config.unit_k2,
                            self.config.unit_n2, self.config.unit_blank_penalty)
        self._mt_done = False
        self._incremental_state: Dict[str, Dict[str, Optional[Tensor]]] = {}
        self._cross_attn_frames = 0  # encoder frames the cached cross-attention keys cover
        self._asr_words = _WordStream(self.dicts[ASR_TASK])
        self._mt_words = _WordStream(self.mt_dict)
        self._vocoder_state = None
        self._finished = False

    def push(self, samples: np.ndarray, sample_rate: int) -> StepOutput:
        """Consume new source samples ((T,) or channels-last (T, C), any rate) -> new output."""
        return self._step(samples, sample_rate, final=False)

    def finish(self, samples: Optional[np.ndarray] = None,
               sample_rate: Optional[int] = None) -> StepOutput:
        """The source ended (optionally with a last chunk): flush every stage."""
        if samples is None:
            samples = np.zeros(0, dtype=np.float32)
        rate = sample_rate or self._input_rate or self.geometry.sample_rate
        return self._step(samples, rate, final=True)

    def _step(self, samples: np.ndarray, sample_rate: int, final: bool) -> StepOutput:
        if self._finished:
            raise RuntimeError("the utterance is finished: call reset() before pushing more audio")
        start = time.perf_counter()
        with torch.inference_mode():
            out = self._run(samples, sample_rate, final)
        out.compute_s = time.perf_counter() - start
        return out

    def _run(self, samples: np.ndarray, sample_rate: int, final: bool) -> StepOutput:
        self._input_rate = self._input_rate or sample_rate
        if self.config.reencode:
            self._reencode(samples, sample_rate, final)
        else:
            self._encode_new(samples, sample_rate, final)
        written_before = len(self._mt_tokens)
        decision = self.policy.decide(PolicyCounts(
            len(self._asr.tokens), len(self._st.tokens), *self._marks, len(self._mt_tokens), final))
        if decision.mark:
            self._marks = (len(self._asr.tokens), len(self._st.tokens))
        if not decision.is_read and self._encoder_frames > 0 and not self._mt_done:
            self._decode_mt(decision.new_tokens, final)
        out = StepOutput(asr_text=self._asr_words.new_words(self._asr.tokens, final),
                         # whole-word mode commits complete words only: none is held back
                         target_text=self._mt_words.new_words(self._mt_tokens,
                                                              final or self.whole_word),
                         finished=final)
        if self.vocoder is not None:
            out.speech_sample_rate = self.vocoder.sample_rate
            if len(self._mt_tokens) > written_before or final:
                out.units = self._units.extend(self._mt_states[written_before:], final)
                out.speech = self._vocode(out.units, final)
        self._finished = final
        return out

    def _encode_new(self, samples: np.ndarray, sample_rate: int, final: bool) -> None:
        """fbank over the new samples, the encoder with its state, CTC over the new frames."""
        fbank = self.features.push(samples, sample_rate, final)
        frames = torch.zeros(0, 1, self.model.encoder.embed_dim)
        if fbank.size(0) > 0 or (final and self._has_encoder_input()):
            frames, self._state = self.model.encoder.infer(fbank.unsqueeze(0), self._state, final)
        if frames.size(0) > 0:
            self._encoder_chunks.append(frames)
            self._encoder_frames += frames.size(0)
            self._asr.extend(frames)
            self._st.extend(frames)

    def _reencode(self, samples: np.ndarray, sample_rate: int, final: bool) -> None:
        """Baseline: fbank, encoder and CTC heads over the whole prefix; frames are kept up to
        where the streaming encoder would have emitted them, so decisions match it exactly."""
        if np.asarray(samples).size:
            self._source_samples.append(np.asarray(samples, dtype=np.float32))
        if not self._source_samples:
            return
        features = StreamingFbank(self.geometry.sample_rate, *self.features.cmvn)
        fbank = features.push(np.concatenate(self._source_samples), sample_rate, final)
        if final:
            keep = int(self.model.encoder.output_lengths(torch.tensor([fbank.size(0)])))
        else:
            keep = self.geometry.streamed_encoder_frames(fbank.size(0))
        if fbank.size(0) == 0 or keep == 0:
            return
        encoder_out = self.model.encoder(fbank.unsqueeze(0), torch.tensor([fbank.size(0)]),
                                         segment_length=self.geometry.segment_frames)
        frames = encoder_out["encoder_out"][0][:keep]
        self._encoder_chunks = [frames]
        self._encoder_frames = frames.size(0)
        for ctc in (self._asr, self._st):
            ctc.restart()
            ctc.extend(frames)

    def _has_encoder_input(self) -> bool:
        """Whether any fbank frame reached the encoder (an empty utterance never runs it)."""
        return (self._state.emformer.num_pending > 0 or self._state.subsampler.num_pending > 0
                or self._encoder_frames > 0)

    # -------------------------------------------------------------------------------- MT
    def _encoder_out(self) -> Dict[str, List[Tensor]]:
        if len(self._encoder_chunks) > 1:  # keep one tensor, so each write round concatenates once
            self._encoder_chunks = [torch.cat(self._encoder_chunks, dim=0)]
        return {"encoder_out": [self._encoder_chunks[0]], "encoder_padding_mask": []}

    def _max_len(self) -> int:
        return int(self.config.max_len_a * self._encoder_frames + self.config.max_len_b)

    def _decode_mt(self, budget: int, final: bool) -> None:
        """Greedy MT decoding of up to ``budget`` subwords (all, to ``</s>``, when final)."""
        encoder_out = self._encoder_out()
        if self._cross_attn_frames != self._encoder_frames:
            self._extend_cross_attention_cache(encoder_out["encoder_out"][0])
        eos = self.mt_dict.eos()
        committed = len(self._mt_tokens)
        limit = self._max_len()
        if budget != WRITE_TO_END:
            limit = min(len(self._mt_tokens) + budget, limit)
        while len(self._mt_tokens) < limit:
            prev = torch.tensor([[eos] + self._mt_tokens], dtype=torch.long)
            # the baseline runs StreamSpeech's MT generator as it does (use_incremental_states
            # False): the whole prefix again for every subword
            cache = None if self.config.reencode else self._incremental_state
            feats, _ = self.mt_decoder.extract_features(prev, encoder_out, incremental_state=cache)
            feats = feats[:, -1:]
            logits = self.mt_decoder.output_layer(feats)[0, -1]  # (V,)
            logits[self.mt_dict.pad()] = -float("inf")  # as fairseq's generator: never pad
            token = int(logits.argmax())
            if token == eos:
                if final:
                    self._mt_done = True
                    # training feeds T2U the states of [</s>, t1..tn]: the last one is the
                    # state that predicted </s>, so it belongs to the units too
                    self._mt_states.append(feats[0, -1])
                else:
                    # too early to end: forget this position, it is recomputed with more source
                    self._truncate_self_attention(len(self._mt_tokens))
                break
            self._mt_tokens.append(token)
            self._mt_states.append(feats[0, -1])
        if final:
            self._mt_done = True
        elif self.whole_word:
            self._drop_trailing_word(committed)

    def _drop_trailing_word(self, committed: int) -> None:
        """Whole-word mode: forget the new subwords from the last word start on (the word may
        continue); they are decoded again with more source. Committed subwords stay."""
        starts = [i for i in range(committed, len(self._mt_tokens))
                  if self.mt_dict[self._mt_tokens[i]].startswith(WORD_START)]
        keep = starts[-1] if starts else committed
        if keep < len(self._mt_tokens):
            del self._mt_tokens[keep:], self._mt_states[keep:]
            self._truncate_self_attention(keep)

    def _attention_buffers(self, attr: str):
        for layer in self.mt_decoder.layers:
            module = getattr(layer, attr)
            yield module, module._get_input_buffer(self._incremental_state)

    def _extend_cross_attention_cache(self, encoder: Tensor) -> None:
        """Append keys/values of the new encoder frames (T_new, 1, D) to every layer's
        cross-attention cache, so that a write round projects only what is new."""
        new = encoder[self._cross_attn_frames:]
        for module, buffer in self._attention_buffers("encoder_attn"):
            if buffer.get("prev_key") is None:
                continue  # nothing cached yet: fairseq projects the whole encoder output once
            for key, proj in (("prev_key", module.k_proj), ("prev_value", module.v_proj)):
                # fairseq's layout (B, H, S, head_dim); keys are not pre-scaled (queries are)
                heads = proj(new).view(new.size(0), module.num_heads, module.head_dim)
                heads = heads.transpose(0, 1)
                buffer[key] = torch.cat([buffer[key], heads.unsqueeze(0)], dim=2)
            module._set_input_buffer(self._incremental_state, buffer)
        self._cross_attn_frames = self._encoder_frames

    def _truncate_self_attention(self, positions: int) -> None:
        for module, buffer in self._attention_buffers("self_attn"):
            for key in ("prev_key", "prev_value"):
                if buffer.get(key) is not None:
                    buffer[key] = buffer[key][:, :, :positions]
            if buffer.get("prev_key_padding_mask") is not None:
                buffer["prev_key_padding_mask"] = buffer["prev_key_padding_mask"][:, :positions]
            module._set_input_buffer(self._incremental_state, buffer)

    # ---------------------------------------------------------------------------- units, speech
    def _vocode(self, units: List[int], final: bool) -> np.ndarray:
        if not units and not final:
            return np.zeros(0, dtype=np.float32)
        speech, self._vocoder_state = self.vocoder.synthesize_chunk(
            units, self._vocoder_state, final)
        return speech

    # ------------------------------------------------------------------------------ results
    @property
    def asr_tokens(self) -> List[int]:
        return list(self._asr.tokens)

    @property
    def st_ctc_tokens(self) -> List[int]:
        return list(self._st.tokens)

    @property
    def target_tokens(self) -> List[int]:
        return list(self._mt_tokens)

    @property
    def encoder_frames(self) -> int:
        return self._encoder_frames
