"""The incremental streaming pipeline: features, policy, offline agreement and bad input."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest
import torch

from _fairseq_cli import corpus_dir
from echostream_fairseq.data.audio import RESAMPLE_BLOCK_S, read_wav, resample
from echostream_fairseq.data.features import FRAME_LENGTH_MS, FRAME_SHIFT_MS, compute_fbank
from echostream_fairseq.streaming import (
    CtcPolicy,
    PipelineConfig,
    PolicyCounts,
    StepOutput,
    StreamingFbank,
    StreamingResampler,
    StreamingS2STPipeline,
    complete_words,
    detokenize,
)
from echostream_fairseq.streaming.mt import IncrementalMT, RecomputeMT
from echostream_fairseq.streaming.policy import WRITE_TO_END
from echostream_fairseq.streaming.units import (
    IncrementalUnits,
    best_unit_labels,
    collapse_unit_labels,
)

# Large enough that one Emformer segment covers any test utterance (encoder frames).
WHOLE_UTTERANCE_SEGMENT = 100000


def corpus_wavs(data: Path) -> List[Path]:
    """Source wavs of the tiny corpus' test and dev splits (SimulEval lists), 2 in all."""
    lists = [data / "simuleval" / split / "wav_list.txt" for split in ("test", "dev")]
    return [Path(line) for path in lists for line in path.read_text().split()]


@pytest.fixture(scope="module")
def pipeline(tiny_corpus, talkative_checkpoint) -> StreamingS2STPipeline:
    """Pipeline on the session's talkative 2-update tiny model (it writes on any input)."""
    torch.set_num_threads(1)
    return StreamingS2STPipeline.from_checkpoint(str(talkative_checkpoint),
                                                 str(corpus_dir(tiny_corpus)))


def stream(pipe: StreamingS2STPipeline, samples: np.ndarray, sample_rate: int,
           chunk: int) -> Tuple[List[StepOutput], StepOutput]:
    pipe.reset()
    steps = [pipe.push(samples[i:i + chunk], sample_rate) for i in range(0, len(samples), chunk)]
    return steps, pipe.finish()


def joined(outputs: List[StepOutput], attr: str) -> str:
    return " ".join(getattr(o, attr) for o in outputs if getattr(o, attr))


# ----------------------------------------------------------------------------- features
def _synthetic(seconds: float, rate: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)
    return wave.astype(np.float32)


def test_incremental_fbank_equals_offline_fbank():
    rate = 16000
    samples = _synthetic(1.37, rate)
    fbank = StreamingFbank(rate)
    rng = np.random.default_rng(1)
    frames, start = [], 0
    while start < len(samples):
        size = int(rng.integers(1, 3000))
        final = start + size >= len(samples)
        frames.append(fbank.push(samples[start:start + size], rate, final=final))
        start += size
    offline = compute_fbank(samples, rate)
    online = torch.cat(frames).numpy()
    assert online.shape == offline.shape
    np.testing.assert_allclose(online, offline, atol=1e-4)


def test_fbank_lead_in_frames_end_on_the_shift_grid_and_equal_the_padded_offline_fbank():
    rate = 16000
    samples = _synthetic(0.96, rate)
    lead = int(rate * (FRAME_LENGTH_MS - FRAME_SHIFT_MS) / 1000)  # 240 samples
    shift = int(rate * FRAME_SHIFT_MS / 1000)
    fbank = StreamingFbank(rate, lead_in=True)
    chunk = 32 * shift  # one 320 ms segment of the mini model: 32 frames
    frames = []
    for start in range(0, len(samples), chunk):
        frames.append(fbank.push(samples[start:start + chunk], rate))
        assert sum(f.size(0) for f in frames) == (start + chunk) // shift
    plain = StreamingFbank(rate)
    assert plain.push(samples[:chunk], rate).size(0) == 32 - 2  # its last two wait for 15 ms
    padded = compute_fbank(np.concatenate([np.zeros(lead, np.float32), samples]), rate)
    np.testing.assert_allclose(torch.cat(frames).numpy(), padded, atol=1e-4)
    fbank.reset()  # every utterance starts with the lead-in
    np.testing.assert_allclose(fbank.push(samples, rate, final=True).numpy(), padded, atol=1e-4)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_streaming_resampler_equals_offline_resample(rate):
    samples = _synthetic(0.9, rate)
    resampler = StreamingResampler(rate, 16000)
    pieces = [resampler.push(samples[i:i + 777]) for i in range(0, len(samples), 777)]
    pieces.append(resampler.push(np.zeros(0, dtype=np.float32), final=True))
    online = np.concatenate(pieces)
    offline = resample(samples, rate, 16000)
    assert online.shape == offline.shape
    np.testing.assert_allclose(online, offline, atol=1e-5)



@pytest.mark.parametrize("rate", [8000, 22050, 48000])
def test_resample_pads_to_whole_blocks_without_changing_the_output(rate):
    """resample() pads its input with zeros so that oneDNN sees few lengths (its cache keeps a
    primitive per length); the output is torchaudio's for the unpadded input, every length."""
    import torchaudio.functional as taf

    rng = np.random.default_rng(rate)
    block = round(rate * RESAMPLE_BLOCK_S)
    lengths = [1, 2, block - 1, block, block + 1, 3 * block] + list(rng.integers(3, 4 * block, 20))
    for length in lengths:
        samples = rng.standard_normal(length).astype(np.float32)
        ours = resample(samples, rate, 16000)
        theirs = taf.resample(torch.from_numpy(samples), rate, 16000).numpy()
        assert ours.shape == theirs.shape, length
        np.testing.assert_allclose(ours, theirs, atol=2e-6, err_msg=f"{length} samples")

# ------------------------------------------------------------------------------- policy
def test_ctc_policy_reads_until_both_prefixes_grow_then_writes_the_budget():
    policy = CtcPolicy(stride_n=2, lagging_k1=1)
    counts = dict(asr_len_at_write=0, st_len_at_write=0, written=0, source_finished=False)
    assert policy.decide(PolicyCounts(asr_len=5, st_len=1, **counts)).is_read  # ST grew by 1 < 2
    assert not policy.decide(PolicyCounts(asr_len=1, st_len=5, **counts)).mark  # ASR too short
    decision = policy.decide(PolicyCounts(asr_len=2, st_len=5, **counts))
    assert decision.mark and decision.new_tokens == 4  # (5 - 1) // 2 * 2
    written = dict(counts, written=4)
    assert policy.decide(PolicyCounts(asr_len=2, st_len=5, **written)).is_read
    finished = dict(counts, source_finished=True)
    assert policy.decide(PolicyCounts(asr_len=0, st_len=0, **finished)).new_tokens == WRITE_TO_END
    with pytest.raises(ValueError):
        CtcPolicy(stride_n=0)


def test_complete_words_holds_back_the_last_word_until_final():
    assert complete_words("we ha", final=False) == ["we"]
    assert complete_words("we ha", final=True) == ["we", "ha"]
    assert complete_words("", final=False) == []


def test_detokenize_collapses_the_double_space_of_a_lone_word_start_piece():
    from fairseq.data import Dictionary

    dictionary = Dictionary()
    ids = [dictionary.add_symbol(piece) for piece in ("\u2581a", "\u2581", "\u2581b", "c")]
    assert detokenize(ids, dictionary) == "a bc"
    # so that streamed complete words joined by spaces equal the whole-utterance text
    assert " ".join(complete_words(detokenize(ids, dictionary), final=True)) == "a bc"


# ----------------------------------------------------------------------------- pipeline
def _offline_greedy(pipe: StreamingS2STPipeline, samples: np.ndarray, rate: int) -> Tuple[str, str]:
    """Whole-utterance decoding, written independently of the pipeline: encoder ``forward`` with
    one segment, CTC argmax over every frame, MT decoder re-run over the whole prefix per step."""
    features = StreamingFbank(16000, *pipe.features.cmvn)
    fbank = features.push(samples, rate, final=True).unsqueeze(0)
    model, mt = pipe.model, pipe.mt_decoder
    with torch.inference_mode():
        encoder_out = model.encoder(fbank, torch.tensor([fbank.size(1)]),
                                    segment_length=WHOLE_UTTERANCE_SEGMENT)
        enc = encoder_out["encoder_out"][0]
        labels = model.source_unigram_decoder(enc)["encoder_out"][:, 0].argmax(-1).tolist()
        asr = [b for a, b in zip([0] + labels, labels) if b != a and b != 0]
        eos, tokens = pipe.mt_dict.eos(), []
        for _ in range(int(pipe.config.max_len_a * enc.size(0) + pipe.config.max_len_b)):
            logits = mt(torch.tensor([[eos] + tokens]), encoder_out=encoder_out)[0][0, -1]
            logits[pipe.mt_dict.pad()] = -float("inf")
            if int(logits.argmax()) == eos:
                break
            tokens.append(int(logits.argmax()))
    asr_dict = pipe.dicts["source_unigram"]
    return detokenize(asr, asr_dict), detokenize(tokens, pipe.mt_dict)


def test_pipeline_on_a_real_wav_gives_text_units_and_speech(pipeline, tiny_corpus):
    samples, rate = read_wav(corpus_wavs(corpus_dir(tiny_corpus))[0])
    steps, last = stream(pipeline, samples, rate, pipeline.geometry.segment_samples)
    outputs = steps + [last]
    assert last.finished
    assert joined(outputs, "target_text")
    assert sum(len(o.units) for o in outputs) > 0
    speech = np.concatenate([o.speech for o in outputs])
    assert speech.size > 0 and np.isfinite(speech).all()
    assert last.speech_sample_rate == pipeline.vocoder.sample_rate
    # the encoder's per-step cost does not grow: every push before the end ran one segment
    assert pipeline.encoder_frames == pipeline.model.encoder.output_lengths(
        torch.tensor([len(compute_fbank(samples, rate))])).item()


def test_speech_to_text_with_one_segment_equals_offline_greedy_decoding(pipeline, tiny_corpus):
    config = PipelineConfig(segment_length=WHOLE_UTTERANCE_SEGMENT, speech=False)
    whole = StreamingS2STPipeline(pipeline.model, pipeline.dicts, pipeline.features.cmvn, None,
                                  config)
    chunk = pipeline.geometry.segment_samples
    for wav in corpus_wavs(corpus_dir(tiny_corpus)):
        samples, rate = read_wav(wav)
        steps, last = stream(whole, samples, rate, chunk)
        asr, text = _offline_greedy(pipeline, samples, rate)
        assert text, "the randomised model should write something"
        assert joined(steps + [last], "target_text") == text
        assert joined(steps + [last], "asr_text") == asr


def test_streaming_asr_prefix_is_exactly_the_offline_ctc_of_the_same_segments(pipeline,
                                                                              tiny_corpus):
    samples, rate = read_wav(corpus_wavs(corpus_dir(tiny_corpus))[0])
    stream(pipeline, samples, rate, 1234)  # chunks unaligned with segments
    features = StreamingFbank(16000, *pipeline.features.cmvn)
    fbank = features.push(samples, rate, final=True).unsqueeze(0)
    with torch.inference_mode():
        enc = pipeline.model.encoder(fbank, torch.tensor([fbank.size(1)]))["encoder_out"][0]
        labels = pipeline.model.source_unigram_decoder(enc)["encoder_out"][:, 0].argmax(-1).tolist()
    assert pipeline.asr_tokens == [b for a, b in zip([0] + labels, labels) if b != a and b != 0]


def test_cross_attention_store_holds_the_keys_of_every_encoder_frame_after_streaming(
        pipeline, tiny_corpus):
    samples, rate = read_wav(corpus_wavs(corpus_dir(tiny_corpus))[1])
    pipe = StreamingS2STPipeline(pipeline.model, pipeline.dicts, pipeline.features.cmvn, None,
                                 PipelineConfig(speech=False, single_sentence=True))
    for start in range(0, len(samples), pipe.geometry.segment_samples):
        pipe.push(samples[start:start + pipe.geometry.segment_samples], rate)
    written_while_reading = len(pipe.target_tokens)
    pipe.finish()
    assert 0 < written_while_reading < len(pipe.target_tokens)  # the store grew in between
    features = StreamingFbank(16000, *pipe.features.cmvn)
    fbank = features.push(samples, rate, final=True).unsqueeze(0)
    with torch.inference_mode():
        encoder = pipe.model.encoder(fbank, torch.tensor([fbank.size(1)]),
                                     segment_length=pipe.geometry.segment_frames
                                     )["encoder_out"][0]
    mt = pipe.state.sentence.mt
    assert mt.num_frames == encoder.size(0) == pipe.encoder_frames
    for layer, store in zip(pipe.mt_decoder.layers, mt.cross_stores):
        module = layer.encoder_attn
        with torch.inference_mode():
            expected = module.k_proj(encoder).view(encoder.size(0), module.num_heads,
                                                    module.head_dim)
        keys, _ = store.view()
        torch.testing.assert_close(keys[0], expected.transpose(0, 1), atol=1e-5, rtol=1e-4)
        # grown by doubling: never more than twice what it holds (or the first allocation)
        assert store.length <= store.capacity <= max(64, 2 * store.length)


def test_key_value_store_appends_without_copying_what_it_holds():
    from echostream_fairseq.streaming.mt import KeyValueStore

    store, chunks = KeyValueStore(), []
    generator = torch.Generator().manual_seed(0)
    grown = 0
    for size in (5, 60, 1, 100, 7):
        keys = torch.randn(1, 2, size, 3, generator=generator)
        before = store.keys
        store.append(keys, -keys)
        grown += store.keys is not before
        chunks.append(keys)
    keys, values = store.view()
    torch.testing.assert_close(keys, torch.cat(chunks, dim=2), rtol=0, atol=0)
    torch.testing.assert_close(values, -keys, rtol=0, atol=0)
    assert store.length == 173 and store.capacity == 256 and grown == 3  # 64, 128, 256
    assert keys.data_ptr() == store.keys.data_ptr()  # a view, not a copy


@pytest.mark.parametrize("wait_k2,stride_n2,blank_bonus",
                         [(0, 1, False), (2, 3, False), (2, 3, True)])
def test_incremental_units_equal_the_unit_decoder_over_the_whole_text(pipeline, wait_k2,
                                                                      stride_n2, blank_bonus):
    model, unit_dict = pipeline.model, pipeline.unit_dict
    dim = pipeline.mt_decoder.embed_dim
    states = list(torch.randn(13, dim, generator=torch.Generator().manual_seed(3)))
    with torch.inference_mode():
        t2u_out = model.synthesizer_encoder(torch.stack(states).unsqueeze(1), None)
        logits, _ = model.decoder(None, encoder_out=t2u_out, k2=wait_k2, n2=stride_n2)
    penalty = 0.0
    if blank_bonus:  # the talkative model's blank never wins: a bonus makes about half blank
        margins = (logits[0].max(-1).values - logits[0, :, unit_dict.blank_index]).sort().values
        middle = margins.numel() // 2  # halfway between two margins: no step ties with blank
        penalty = -float(margins[middle - 1:middle + 1].mean())
    offline = collapse_unit_labels(best_unit_labels(logits[0], unit_dict, penalty).tolist(),
                                   unit_dict)
    # a precondition, not the property: the random model writes a few alternating units on some
    # corpus builds (5 seen), enough for the incremental decode to have something to get wrong
    assert len(offline) >= 3, "the randomised model should write units"
    if not blank_bonus:
        assert len(set(offline)) >= 2, "the randomised model should write different units"
    else:  # repeats split by blanks (one unit 5 times, seen) are what the bonus case exercises
        assert offline != collapse_unit_labels(logits[0].argmax(-1).tolist(), unit_dict)
    units = IncrementalUnits(model, unit_dict, wait_k2, stride_n2, penalty)
    streamed, start = [], 0
    with torch.inference_mode():
        for size in (3, 1, 0, 5):  # 0: a write round that added no subword
            streamed += units.extend(states[start:start + size], final=False)
            start += size
        streamed += units.extend(states[start:], final=True)
    assert streamed == offline


def _streamed_and_forward_units(pipe, samples: np.ndarray, rate: int) -> Tuple[list, list]:
    """The units one whole-utterance segment streams, and those of the training forward
    teacher-forced on the text it wrote (plain greedy unit CTC, the same k2=0 n2=1 mask)."""
    config = PipelineConfig(segment_length=WHOLE_UTTERANCE_SEGMENT)
    whole = StreamingS2STPipeline(pipe.model, pipe.dicts, pipe.features.cmvn, pipe.vocoder,
                                  config)
    steps, last = stream(whole, samples, rate, pipe.geometry.segment_samples)
    streamed = [u for o in steps + [last] for u in o.units]
    fbank = StreamingFbank(16000, *pipe.features.cmvn).push(samples, rate, final=True)
    prev = torch.tensor([[pipe.mt_dict.eos()] + whole.target_tokens])
    with torch.inference_mode():
        logits, _ = pipe.model(fbank.unsqueeze(0), torch.tensor([fbank.size(0)]), None, prev,
                               streaming_config={"segment_length": WHOLE_UTTERANCE_SEGMENT,
                                                 "k2": 0, "n2": 1})
    labels = best_unit_labels(logits[0], pipe.unit_dict, 0.0).tolist()
    return streamed, collapse_unit_labels(labels, pipe.unit_dict)


def test_t2u_token_embeddings_feed_the_written_subwords_as_training_feeds_the_reference(
        pipeline, tiny_corpus):
    samples, rate = read_wav(corpus_wavs(corpus_dir(tiny_corpus))[0])
    model = pipeline.model
    plain = _streamed_and_forward_units(pipeline, samples, rate)
    try:
        model.t2u_token_embeddings = True
        with_tokens = _streamed_and_forward_units(pipeline, samples, rate)
    finally:
        model.t2u_token_embeddings = False
    assert plain[0] == plain[1] and with_tokens[0] == with_tokens[1]
    assert with_tokens[0] != plain[0], "the token embeddings should change what T2U hears"


def test_unit_labels_follow_streamspeechs_rule_and_the_blank_penalty():
    """<pad>/<unk> never win, </s> may and then separates repeats like a blank; the penalty
    turns exactly the steps whose blank leads by less into units; offline decoding
    (fairseq-generate's greedy_unit_ctc) applies the same rule."""
    from fairseq.data import Dictionary

    from echostream_fairseq.generation import greedy_unit_ctc

    unit_dict = Dictionary()  # <s> 0, <pad> 1, </s> 2, <unk> 3, units "0".."2" at 4..6, blank 7
    for unit in range(3):
        unit_dict.add_symbol(str(unit))
    unit_dict.blank_index = unit_dict.add_symbol("<blank>")
    logits = torch.zeros(5, len(unit_dict))
    logits[0, [5, 7]] = torch.tensor([1.0, 2.0])       # blank by 1.0
    logits[1, [6, 7]] = torch.tensor([3.0, 6.0])       # blank by 3.0
    logits[2, 6] = 5.0                                 # a unit already
    logits[3, [1, 3, 2, 4]] = torch.tensor([9.0, 8.0, 4.0, 1.0])  # pad, unk, then </s>
    logits[4, 6] = 5.0                                 # unit "2" again, after </s>
    before = logits.clone()
    expected = {0.0: ([7, 7, 6, 2, 6], [2, 2]), 1.5: ([5, 7, 6, 2, 6], [1, 2, 2]),
                3.5: ([5, 6, 6, 2, 6], [1, 2, 2])}
    for penalty, (labels, units) in expected.items():
        assert best_unit_labels(logits, unit_dict, penalty).tolist() == labels, penalty
        assert collapse_unit_labels(labels, unit_dict) == units, penalty
        [(offline, scores)] = greedy_unit_ctc(logits.unsqueeze(0), None, unit_dict, penalty)
        assert [int(unit_dict[i]) for i in offline] == units, penalty
        lprobs = torch.log_softmax(logits, -1)  # the chosen labels' own scores, no penalty
        assert torch.allclose(scores, lprobs[torch.arange(5), torch.tensor(labels)])
    assert torch.equal(logits, before), "the caller's logits must not change"


def test_pipeline_passes_its_blank_penalty_to_the_unit_decoder(pipeline, tiny_corpus):
    """The talkative model's unit blank scores 0, below its best unit: a blank *bonus* (a
    negative penalty) larger than any logit silences the unit decoder and leaves the text."""
    samples, rate = read_wav(corpus_wavs(corpus_dir(tiny_corpus))[0])
    chunk = rate * 32 // 100
    plain, plain_last = stream(pipeline, samples, rate, chunk)
    silenced = StreamingS2STPipeline(pipeline.model, pipeline.dicts, pipeline.features.cmvn,
                                     pipeline.vocoder, PipelineConfig(unit_blank_penalty=-1e4))
    quiet, quiet_last = stream(silenced, samples, rate, chunk)
    assert [o.target_text for o in plain + [plain_last]] == \
        [o.target_text for o in quiet + [quiet_last]], "the penalty must not change the text"
    assert sum(len(o.units) for o in plain + [plain_last]) > 0
    assert sum(len(o.units) for o in quiet + [quiet_last]) == 0


@pytest.mark.parametrize("lead_in", [False, True])
def test_reencoding_baseline_writes_exactly_what_the_incremental_pipeline_writes(pipeline,
                                                                               tiny_corpus,
                                                                               lead_in):
    if lead_in:
        pipeline = StreamingS2STPipeline(pipeline.model, pipeline.dicts, pipeline.features.cmvn,
                                         pipeline.vocoder, PipelineConfig(frame_lead_in=True))
    baseline = StreamingS2STPipeline(pipeline.model, pipeline.dicts, pipeline.features.cmvn,
                                     pipeline.vocoder,
                                     PipelineConfig(reencode=True, frame_lead_in=lead_in))
    samples, rate = read_wav(corpus_wavs(corpus_dir(tiny_corpus))[0])
    samples = resample(samples, rate, 48000)  # any rate: both resample the same way
    chunk = 48000 * 32 // 100
    ours, ours_last = stream(pipeline, samples, 48000, chunk)
    theirs, theirs_last = stream(baseline, samples, 48000, chunk)
    assert joined(ours + [ours_last], "target_text")
    for attr in ("asr_text", "target_text", "units"):
        assert [getattr(o, attr) for o in ours + [ours_last]] == \
            [getattr(o, attr) for o in theirs + [theirs_last]], attr
    assert pipeline.encoder_frames == baseline.encoder_frames
    # the baseline's MT really is fairseq's decoder over the whole prefix: no store was used
    mt = baseline.state.sentence.mt
    assert isinstance(mt, RecomputeMT) and mt.tokens
    assert all(store.length == 0 for store in mt.self_stores + mt.cross_stores)


def test_frame_lead_in_encodes_each_segment_when_its_chunk_arrives(pipeline, tiny_corpus):
    samples, rate = read_wav(corpus_wavs(corpus_dir(tiny_corpus))[0])
    segment = pipeline.geometry.segment_samples
    led = StreamingS2STPipeline(pipeline.model, pipeline.dicts, pipeline.features.cmvn,
                                pipeline.vocoder, PipelineConfig(frame_lead_in=True))
    frames = {}
    for pipe in (pipeline, led):
        pipe.reset()
        frames[pipe] = []
        for start in range(0, 4 * segment, segment):
            pipe.push(samples[start:start + segment], rate)
            frames[pipe].append(pipe.encoder_frames)
    per_segment = pipeline.geometry.segment_frames
    assert frames[led] == [per_segment * k for k in range(1, 5)]
    assert frames[pipeline] == [per_segment * k for k in range(0, 4)]  # one segment late
    # the encoder hears the lead-in's zeros as its first 15 ms: the same frames as offline
    features = StreamingFbank(16000, *pipeline.features.cmvn, lead_in=True)
    fbank = features.push(samples, rate, final=True).unsqueeze(0)
    _, last = stream(led, samples, rate, segment)
    with torch.inference_mode():
        enc = led.model.encoder(fbank, torch.tensor([fbank.size(1)]))["encoder_out"][0]
        labels = led.model.source_unigram_decoder(enc)["encoder_out"][:, 0].argmax(-1).tolist()
    assert led.asr_tokens == [b for a, b in zip([0] + labels, labels) if b != a and b != 0]


def _prefers_word_starts(model, mt_dict, factor: float = 1.4):
    """A copy of the randomised model whose MT decoder writes a mix of word-start and
    continuation subwords (the random one almost never starts a word)."""
    model = copy.deepcopy(model)
    projection = getattr(model, f"{model.mt_task_name}_decoder").output_projection.weight
    with torch.no_grad():
        for index in range(mt_dict.nspecial, len(mt_dict)):
            if mt_dict[index].startswith("\u2581"):
                projection[index] *= factor
    return model


def test_whole_word_mode_commits_words_only_when_the_next_one_has_started(pipeline,
                                                                          tiny_corpus):
    segment_640ms = pipeline.geometry.segment_frames * 2  # the fixture's segment is 320 ms
    whole = StreamingS2STPipeline(_prefers_word_starts(pipeline.model, pipeline.mt_dict),
                                  pipeline.dicts, pipeline.features.cmvn, None,
                                  PipelineConfig(segment_length=segment_640ms, speech=False))
    assert whole.whole_word and not pipeline.whole_word
    word_start = [whole.mt_dict[t].startswith("\u2581") for t in range(len(whole.mt_dict))]
    cut_early = False
    for wav in corpus_wavs(corpus_dir(tiny_corpus)):
        samples, rate = read_wav(wav)
        whole.reset()
        committed, rounds = [], []
        mt = whole.state.sentence.mt
        original_drop = functools.partial(IncrementalMT.drop_trailing_word, mt)

        def record(start: int) -> None:  # a write round: decoded subwords, then the cut
            decoded = whole.target_tokens
            original_drop(start)
            rounds.append((start, decoded, len(whole.target_tokens)))

        mt.drop_trailing_word = record
        chunk = whole.geometry.segment_samples
        for start in range(0, len(samples), chunk):
            whole.push(samples[start:start + chunk], rate)
            assert whole.state.sentence.mt is mt, "the talkative model never pauses"
            committed.append(whole.target_tokens)
            assert mt.self_stores[0].length == len(committed[-1])
        whole.finish()
        final = whole.target_tokens
        cut_early |= any(0 < len(c) < len(final) for c in committed)
        for prefix in committed:
            assert final[:len(prefix)] == prefix  # never retracted
        for start, decoded, kept in rounds:  # kept: the new subwords before the last word start
            new_starts = [i for i in range(start, len(decoded)) if word_start[decoded[i]]]
            assert kept == (new_starts[-1] if new_starts else start)
    assert cut_early, "some words should be committed before the source ends"


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("case", ["empty", "silent", "8k", "48k", "stereo"])
def test_bad_input_gives_output_or_a_clear_error(pipeline, tiny_corpus, case):
    samples, rate = read_wav(corpus_wavs(corpus_dir(tiny_corpus))[0])
    if case == "empty":
        samples = np.zeros(0, dtype=np.float32)
    elif case == "silent":
        samples = np.zeros(rate, dtype=np.float32)
    elif case in ("8k", "48k"):
        new_rate = 8000 if case == "8k" else 48000
        samples, rate = resample(samples, rate, new_rate), new_rate
    else:
        samples = np.stack([samples, 0.5 * samples], axis=1)
    steps, last = stream(pipeline, samples, rate, rate * 3 // 10)
    assert last.finished
    if case == "empty":
        assert pipeline.encoder_frames == 0 and not joined(steps + [last], "target_text")
    else:
        assert pipeline.encoder_frames > 0
    with pytest.raises(RuntimeError, match="reset"):
        pipeline.push(samples[:10], rate)
    pipeline.reset()
    with pytest.raises(ValueError, match="shape"):
        pipeline.push(np.zeros((2, 2, 2), dtype=np.float32), rate)
