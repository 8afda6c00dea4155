"""Sentence after sentence: where a stream is cut, what each sentence is decoded from, what
the single-sentence flag keeps, and that the caches stay bounded by a sentence."""

from __future__ import annotations

import copy
import math
from typing import List, Tuple

import numpy as np
import pytest
import torch

from _fairseq_cli import corpus_dir
from echostream_fairseq.data.audio import read_wav
from echostream_fairseq.streaming import PipelineConfig, StreamingS2STPipeline, StreamingFbank
from echostream_fairseq.streaming.pipeline import SentenceEnd, StreamingS2ST, _pause_end
from test_streaming_pipeline import WHOLE_UTTERANCE_SEGMENT, corpus_wavs, joined, stream

GAP_SECONDS = 0.3


@pytest.fixture(scope="module")
def pipeline(tiny_corpus, talkative_checkpoint) -> StreamingS2STPipeline:
    torch.set_num_threads(1)
    return StreamingS2STPipeline.from_checkpoint(str(talkative_checkpoint),
                                                 str(corpus_dir(tiny_corpus)),
                                                 PipelineConfig(speech=False))


@pytest.fixture(scope="module")
def joined_wavs(tiny_corpus) -> Tuple[np.ndarray, int]:
    """The tiny corpus' two source wavs, twice, joined with short silences (16 kHz)."""
    pieces = []
    for wav in corpus_wavs(corpus_dir(tiny_corpus)) * 2:
        samples, rate = read_wav(wav)
        assert rate == 16000
        pieces += [samples, np.zeros(int(GAP_SECONDS * rate), dtype=np.float32)]
    return np.concatenate(pieces), 16000


def _engine(pipe: StreamingS2STPipeline, model=None, **config) -> StreamingS2STPipeline:
    return StreamingS2STPipeline(model or pipe.model, pipe.dicts, pipe.features.cmvn, None,
                                 PipelineConfig(speech=False, **config))


def _encoder_frames(pipe: StreamingS2STPipeline, samples: np.ndarray, rate: int) -> torch.Tensor:
    """The whole stream's encoder output (T, 1, D), from ``forward`` with the pipe's segments."""
    fbank = StreamingFbank(16000, *pipe.features.cmvn).push(samples, rate, final=True)
    with torch.inference_mode():
        return pipe.model.encoder(fbank.unsqueeze(0), torch.tensor([fbank.size(0)]),
                                  segment_length=pipe.geometry.segment_frames)["encoder_out"][0]


def _greedy_text(pipe: StreamingS2STPipeline, frames: torch.Tensor) -> str:
    """Greedy MT over exactly ``frames``, written independently of the pipeline (the whole
    prefix again per subword, capped at a * frames + b)."""
    from echostream_fairseq.decoding.text import complete_words, detokenize

    encoder_out = {"encoder_out": [frames], "encoder_padding_mask": []}
    eos, tokens = pipe.mt_dict.eos(), []
    with torch.inference_mode():
        for _ in range(int(pipe.config.max_len_a * frames.size(0) + pipe.config.max_len_b)):
            logits = pipe.mt_decoder(torch.tensor([[eos] + tokens]),
                                     encoder_out=encoder_out)[0][0, -1]
            logits[pipe.mt_dict.pad()] = -float("inf")
            if int(logits.argmax()) == eos:
                break
            tokens.append(int(logits.argmax()))
    return " ".join(complete_words(detokenize(tokens, pipe.mt_dict), final=True))


def _sentences(outputs) -> List[SentenceEnd]:
    return [sentence for output in outputs for sentence in output.sentences]


def _check_sentences_tile_the_stream(sentences: List[SentenceEnd], frames: int,
                                     frame_ms: int) -> None:
    assert [s.index for s in sentences] == list(range(len(sentences)))
    assert sentences[0].start_ms == 0 and sentences[-1].end_ms == frames * frame_ms
    for before, after in zip(sentences, sentences[1:]):
        assert after.start_ms == before.end_ms


# ------------------------------------------------------------------------------ pause rule
def test_a_pause_is_enough_blanks_after_a_token_counting_the_blanks_already_trailing():
    blank = 0
    assert _pause_end([0, 0, 0, 5, 0, 0, 0, 7], blank, False, 0, 3) == 7  # leading ones: no token
    assert _pause_end([5, 0, 0, 6, 0], blank, False, 0, 3) is None
    assert _pause_end([0, 4], blank, True, 2, 3) == 1   # two were trailing before this step
    assert _pause_end([0, 0], blank, False, 5, 2) is None  # blanks without a token are no pause
    assert _pause_end([], blank, True, 9, 1) is None


def test_sentences_are_cut_at_the_length_bound_and_each_decoded_over_its_own_frames(
        pipeline, joined_wavs):
    """One Emformer segment = the bound (32 frames): every sentence's frames arrive in one step,
    so its translation must be greedy MT over exactly those frames (the next sentence's
    cross-attention starts after the last one, the MT state starts afresh)."""
    samples, rate = joined_wavs
    bound = 32
    pipe = _engine(pipeline, segment_length=bound,
                   max_sentence_ms=bound * pipeline.geometry.encoder_frame_ms)
    steps, last = stream(pipe, samples, rate, pipe.geometry.segment_samples)
    frames = _encoder_frames(pipe, samples, rate)
    sentences = _sentences(steps + [last])
    assert len(sentences) == math.ceil(frames.size(0) / bound) >= 4
    frame_ms = pipe.geometry.encoder_frame_ms
    _check_sentences_tile_the_stream(sentences, frames.size(0), frame_ms)
    for sentence in sentences:
        span = frames[sentence.start_ms // frame_ms:sentence.end_ms // frame_ms]
        assert sentence.target_text == _greedy_text(pipe, span), sentence.index
    assert joined(steps + [last], "target_text") == " ".join(s.target_text for s in sentences)
    # the last sentence's MT holds its own frames only
    assert pipe.state.sentence.mt.num_frames == frames.size(0) - (len(sentences) - 1) * bound


def _pausing_model(pipe: StreamingS2STPipeline, frames: torch.Tensor, blank_share: float):
    """A copy of the talkative model whose ASR-CTC blank wins on about ``blank_share`` of the
    frames (its bias set at that quantile of the margins), so that its ASR pauses now and then."""
    model = copy.deepcopy(pipe.model)
    head = model.source_unigram_decoder.proj
    with torch.inference_mode():
        logits = head(frames[:, 0])
        margins = logits[:, 1:].max(-1).values - (logits[:, 0] - head.bias[0])
    with torch.no_grad():
        head.bias[0] = float(torch.quantile(margins, blank_share)) + 1e-3
    return model


def _reference_cuts(labels: List[int], pause_frames: int) -> List[int]:
    """Frame indices after which a sentence ends: ``pause_frames`` blanks after a token."""
    cuts, has_token, blanks = [], False, 0
    for position, label in enumerate(labels):
        if label != 0:
            has_token, blanks = True, 0
            continue
        blanks += 1
        if has_token and blanks == pause_frames:
            cuts.append(position + 1)
            has_token, blanks = False, 0
    return cuts


def test_sentences_end_at_asr_pauses_and_each_is_decoded_over_its_own_frames(pipeline,
                                                                              joined_wavs):
    samples, rate = joined_wavs
    whole = _engine(pipeline, segment_length=WHOLE_UTTERANCE_SEGMENT)
    frames = _encoder_frames(whole, samples, rate)
    model = _pausing_model(pipeline, frames, blank_share=0.7)
    pause_ms = 3 * pipeline.geometry.encoder_frame_ms
    pipe = _engine(pipeline, model, segment_length=WHOLE_UTTERANCE_SEGMENT,
                   sentence_pause_ms=pause_ms)
    with torch.inference_mode():
        labels = model.source_unigram_decoder(frames)["encoder_out"][:, 0].argmax(-1).tolist()
    cuts = _reference_cuts(labels, 3)
    assert len(cuts) >= 2, "the pausing model should pause a few times"
    # all frames arrive in the final step: every cut falls inside one step
    steps, last = stream(pipe, samples, rate, len(samples) + 1)
    sentences = _sentences(steps + [last])
    frame_ms = pipe.geometry.encoder_frame_ms
    ends = [s.end_ms // frame_ms for s in sentences]
    assert ends == cuts + ([frames.size(0)] if cuts[-1] < frames.size(0) else [])
    _check_sentences_tile_the_stream(sentences, frames.size(0), frame_ms)
    for sentence in sentences:
        span = frames[sentence.start_ms // frame_ms:sentence.end_ms // frame_ms]
        if any(labels[sentence.start_ms // frame_ms:sentence.end_ms // frame_ms]):
            assert sentence.target_text == _greedy_text(pipe, span), sentence.index
    # the same stream in one sentence: nothing is cut
    single = _engine(pipeline, model, segment_length=WHOLE_UTTERANCE_SEGMENT,
                     sentence_pause_ms=pause_ms, single_sentence=True)
    steps, last = stream(single, samples, rate, len(samples) + 1)
    [only] = _sentences(steps + [last])
    assert only.end_ms == frames.size(0) * frame_ms
    assert only.target_text == _greedy_text(single, frames)


def test_caches_are_bounded_by_the_longest_sentence_not_the_stream(pipeline, joined_wavs):
    samples, rate = joined_wavs
    long_stream = np.concatenate([samples] * 3)
    bound_frames = 25
    pipe = _engine(pipeline, max_sentence_ms=bound_frames * pipeline.geometry.encoder_frame_ms)
    pipe.reset()
    chunk = pipe.geometry.segment_samples
    biggest = {}
    for start in range(0, len(long_stream), chunk):
        pipe.push(long_stream[start:start + chunk], rate)
        mt = pipe.state.sentence.mt
        assert mt.num_frames <= bound_frames
        for name, size in mt.state_bytes().items():
            biggest[name] = max(biggest.get(name, 0), size)
    sizes = pipe.state.sentence.mt.state_bytes()
    assert pipe.encoder_frames > 10 * bound_frames
    # the cross-attention store never outgrew its first allocation (64 frames > the bound)
    layers, heads = len(pipe.mt_decoder.layers), pipe.mt_decoder.layers[0].encoder_attn
    first_allocation = 2 * layers * 64 * heads.num_heads * heads.head_dim * 4
    assert biggest["mt_cross_attn_cache"] == first_allocation == sizes["mt_cross_attn_cache"]
    assert biggest["mt_decoder_states"] <= (pipe.config.max_len_a * bound_frames
                                            + pipe.config.max_len_b + 1) * 4 * \
        pipe.mt_decoder.embed_dim


def test_the_engine_steps_an_explicit_state_like_the_wrapper(pipeline, joined_wavs):
    samples, rate = joined_wavs
    config = PipelineConfig(speech=False, max_sentence_ms=1000)
    engine = StreamingS2ST(pipeline.model, pipeline.dicts, pipeline.features.cmvn, None, config)
    wrapper = _engine(pipeline, max_sentence_ms=1000)
    chunk = engine.geometry.segment_samples
    state = engine.init()
    ours = []
    for start in range(0, len(samples), chunk):
        out, state = engine.step(state, samples[start:start + chunk], rate)
        ours.append(out)
    out, state = engine.step(state, None, rate, final=True)
    steps, last = stream(wrapper, samples, rate, chunk)
    assert [o.target_text for o in ours + [out]] == [o.target_text for o in steps + [last]]
    assert _sentences(ours + [out]) == _sentences(steps + [last])
    with pytest.raises(RuntimeError, match="finished"):
        engine.step(state, samples[:100], rate)


# ------------------------------------------------------------------------------ batching
def _solo(engine: StreamingS2ST, samples: np.ndarray, rate: int, chunk: int):
    state, outs = engine.init(), []
    starts = list(range(0, len(samples), chunk))
    for start in starts:
        out, state = engine.step(state, samples[start:start + chunk], rate,
                                 final=start == starts[-1])
        outs.append(out)
    return outs


def _same_outputs(batched, solo, stream: int) -> None:
    assert len(batched) == len(solo), stream
    for step, (ours, theirs) in enumerate(zip(batched, solo)):
        where = f"stream {stream} step {step}"
        assert (ours.asr_text, ours.target_text, ours.units, ours.finished) == \
            (theirs.asr_text, theirs.target_text, theirs.units, theirs.finished), where
        assert ours.sentences == theirs.sentences, where
        np.testing.assert_allclose(ours.speech, theirs.speech, atol=1e-4, err_msg=where)


def test_batched_steps_give_every_stream_its_solo_output(tiny_corpus, talkative_checkpoint,
                                                         joined_wavs):
    """Streams that start at different rounds, have different lengths, chunk sizes and sentence
    counts, and finish at different times: each one's outputs equal its solo run, their speech
    synthesised on three vocoder threads."""
    torch.set_num_threads(1)
    engine = StreamingS2ST.from_checkpoint(str(talkative_checkpoint),
                                           str(corpus_dir(tiny_corpus)),
                                           PipelineConfig(max_sentence_ms=1200))
    samples, rate = joined_wavs
    segment = engine.geometry.segment_samples
    first, second = (read_wav(w)[0] for w in corpus_wavs(corpus_dir(tiny_corpus)))
    # (samples, chunk, first round)
    streams = [(samples, segment, 0), (first, segment, 0), (second, segment, 3),
               (samples[:len(samples) // 2], segment, 5), (first, 1234, 1), (second, segment, 0)]
    solo = [_solo(engine, audio, rate, chunk) for audio, chunk, _ in streams]
    assert max(len(_sentences(outs)) for outs in solo) >= 3
    assert engine.vocoder_workers == 1
    engine.vocoder_workers = 3
    states = [engine.init() for _ in streams]
    positions = [0] * len(streams)
    batched: List[list] = [[] for _ in streams]
    widest, round_ = 0, 0
    while any(not state.finished for state in states):
        members = [i for i, (_, _, begin) in enumerate(streams)
                   if begin <= round_ and not states[i].finished]
        chunks, finals = [], []
        for i in members:
            audio, chunk, _ = streams[i]
            chunks.append(audio[positions[i]:positions[i] + chunk])
            positions[i] += chunk
            finals.append(positions[i] >= len(audio))
        if members:
            outs, new_states = engine.step_batch([states[i] for i in members], chunks, rate,
                                                 finals)
            for i, out, state in zip(members, outs, new_states):
                batched[i].append(out)
                states[i] = state
            widest = max(widest, len(members))
        round_ += 1
    assert widest == len(streams)
    for index, (ours, theirs) in enumerate(zip(batched, solo)):
        _same_outputs(ours, theirs, index)
    with pytest.raises(RuntimeError, match="finished"):
        engine.step_batch(states[:1], [samples[:100]], rate)
    with pytest.raises(ValueError, match="vocoder_workers"):
        engine.vocoder_workers = 0


def test_batched_evaluation_streams_every_utterance_as_it_streams_alone(
        tiny_corpus, talkative_checkpoint, joined_wavs):
    from echostream_fairseq.evaluation.streaming_eval import (stream_utterance,
                                                              stream_utterances_batched)

    pipe = StreamingS2STPipeline.from_checkpoint(str(talkative_checkpoint),
                                                 str(corpus_dir(tiny_corpus)),
                                                 PipelineConfig(segment_length=8))
    wavs = [read_wav(w) for w in corpus_wavs(corpus_dir(tiny_corpus))]
    samples, rate = joined_wavs
    audio = [wavs[0], (samples, rate), wavs[1], wavs[0], (samples[:rate], rate)]
    for chunk_ms in (320, None):
        batched = stream_utterances_batched(pipe.engine, audio, chunk_ms, batch_size=3)
        for index, (wav, wav_rate) in enumerate(audio):
            alone = stream_utterance(pipe, wav, wav_rate, chunk_ms)
            ours = batched[index]
            assert [(r.source_ms, r.target_words, r.asr_words, r.sentences) for r in ours] == \
                [(r.source_ms, r.target_words, r.asr_words, r.sentences) for r in alone], index
            for mine, theirs in zip(ours, alone):
                np.testing.assert_allclose(mine.speech, theirs.speech, atol=1e-4)
