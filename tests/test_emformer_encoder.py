"""EchoStreamEncoder: streaming equals training, padding does not leak, state stays bounded."""

import argparse
import math
from typing import Iterator, List

import pytest
import torch
import torch.nn.functional as F

from echostream_fairseq.models.emformer import _SegmentConvolution
from echostream_fairseq.models.emformer_encoder import EchoStreamEncoder
from echostream_fairseq.models.state import StreamingGeometry, state_numel

FEATURES = 80
# infer == forward: 1.6e-6 measured at most (float32 sums in another order); 6x margin
TOLERANCE = 1e-5


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny tensors: intra-op threads only add spin-wait overhead on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _args(**overrides) -> argparse.Namespace:
    """Tiny encoder so every test runs in seconds on a shared 2-core CPU."""
    values = dict(
        input_feat_per_channel=FEATURES,
        input_channels=1,
        conv_channels=64,
        conv_kernel_sizes="5,5",
        encoder_embed_dim=32,
        encoder_layers=2,
        encoder_attention_heads=4,
        encoder_ffn_embed_dim=64,
        dropout=0.1,
        attention_dropout=0.1,
        activation_dropout=0.1,
        segment_length=8,
        right_context_length=0,
        left_context_length=16,
        max_memory_size=4,
    )
    values.update(overrides)
    return argparse.Namespace(**values)


def _encoder(**overrides) -> EchoStreamEncoder:
    torch.manual_seed(0)
    return EchoStreamEncoder(_args(**overrides)).eval()


def _irregular_pieces(total: int) -> Iterator[slice]:
    """Slices covering ``range(total)`` with awkward sizes (0 and 1 included)."""
    sizes = [1, 0, 37, 5, 64, 2, 129, 11, 3, 250]
    start, i = 0, 0
    while start < total:
        stop = min(total, start + sizes[i % len(sizes)])
        yield slice(start, stop)
        start, i = stop, i + 1


def _stream(encoder: EchoStreamEncoder, fbank: torch.Tensor, segment_length: int) -> torch.Tensor:
    state = encoder.init_state(fbank.size(0), segment_length=segment_length)
    outputs: List[torch.Tensor] = []
    for piece in _irregular_pieces(fbank.size(1)):
        out, state = encoder.infer(fbank[:, piece], state)
        outputs.append(out)
    out, state = encoder.infer(fbank[:, :0], state, final=True)
    outputs.append(out)
    return torch.cat(outputs, dim=0)


def _ctc_greedy(logits: torch.Tensor) -> List[int]:
    """Greedy CTC over ``(T, V)`` logits: argmax, collapse repeats, drop blank 0."""
    best = logits.argmax(dim=-1).tolist()
    return [token for i, token in enumerate(best)
            if token != 0 and (i == 0 or token != best[i - 1])]


# the layer variants: torchaudio's, ALiBi, the convolution module (its window, 15 frames back,
# spans several 4-frame segments)
LAYER_OPTIONS = {
    "plain": {},
    "alibi": {"position_bias": "alibi"},
    "conv31": {"emformer_conv_kernel_size": 31},
}


@pytest.mark.parametrize("layer_options", LAYER_OPTIONS)
@pytest.mark.parametrize("right_context", [0, 2])
@pytest.mark.parametrize("segment_length", [4, 8, 16])
def test_streaming_in_irregular_pieces_equals_training_forward(segment_length: int,
                                                               right_context: int,
                                                               layer_options: str):
    encoder = _encoder(right_context_length=right_context, **LAYER_OPTIONS[layer_options])
    torch.manual_seed(1)
    fbank = torch.randn(1, 2000, FEATURES)  # 20 s of 10 ms frames
    ctc_head = torch.nn.Linear(32, 12)
    with torch.no_grad():
        offline = encoder(fbank, torch.tensor([2000]),
                          segment_length=segment_length)["encoder_out"][0]
        streamed = _stream(encoder, fbank, segment_length)
        assert streamed.shape == offline.shape == (500, 1, 32)
        assert (streamed - offline).abs().max().item() < TOLERANCE
        assert _ctc_greedy(ctc_head(streamed[:, 0])) == _ctc_greedy(ctc_head(offline[:, 0]))


@pytest.mark.parametrize("layer_options", LAYER_OPTIONS)
def test_batched_forward_with_padding_equals_each_utterance_alone(layer_options: str):
    encoder = _encoder(segment_length=4, right_context_length=2, **LAYER_OPTIONS[layer_options])
    lengths = [150, 77, 1, 33, 16]
    torch.manual_seed(2)
    fbank = torch.randn(len(lengths), max(lengths), FEATURES)
    for i, length in enumerate(lengths):
        fbank[i, length:] = 1e3  # loud padding: any leak would show
    with torch.no_grad():
        batched = encoder(fbank, torch.tensor(lengths))
        out_lengths = batched["src_lengths"][0].tolist()
        assert out_lengths == [math.ceil(n / 4) for n in lengths]
        assert (batched["encoder_padding_mask"][0].sum(dim=1).tolist()
                == [38 - n for n in out_lengths])
        for i, length in enumerate(lengths):
            alone = encoder(fbank[i : i + 1, :length], torch.tensor([length]))["encoder_out"][0]
            together = batched["encoder_out"][0][: out_lengths[i], i : i + 1]
            assert (alone - together).abs().max().item() < TOLERANCE


def test_state_size_after_one_minute_equals_after_ten_minutes():
    encoder = _encoder(encoder_embed_dim=16, encoder_ffn_embed_dim=32, conv_channels=32,
                       right_context_length=2, emformer_conv_kernel_size=7)
    geometry = encoder.geometry()
    chunk = 40  # fbank frames per call (400 ms): the segment phase moves from call to call
    one_minute = geometry.seconds_to_fbank_frames(60)
    ten_minutes = geometry.seconds_to_fbank_frames(600)
    state = encoder.init_state(1)
    sizes_seen = {state_numel(state)}
    sizes = {}
    torch.manual_seed(3)
    with torch.no_grad():
        for fed in range(chunk, ten_minutes + 1, chunk):
            _, state = encoder.infer(torch.randn(1, chunk, FEATURES), state)
            sizes_seen.add(state_numel(state))
            if fed in (one_minute, ten_minutes):
                sizes[fed] = state_numel(state)
    assert set(sizes) == {one_minute, ten_minutes}
    assert sizes[one_minute] == sizes[ten_minutes]
    assert len(sizes_seen) == 1  # not only bounded: constant from the first call on
    # 15,000 frames arrived; 8 wait because their segment's 2 look-ahead frames have not.
    assert (int(state.emformer.processed_frames)
            == geometry.encoder_frames_for_fbank(ten_minutes) - 8)


@pytest.mark.parametrize("fbank_frames", [1, 2, 3, 4, 5, 9, 31])
def test_utterance_shorter_than_one_segment_works_offline_and_streaming(fbank_frames: int):
    encoder = _encoder(segment_length=8, right_context_length=2)
    torch.manual_seed(4)
    fbank = torch.randn(1, fbank_frames, FEATURES)
    with torch.no_grad():
        offline = encoder(fbank, torch.tensor([fbank_frames]))
        state = encoder.init_state(1)
        early, state = encoder.infer(fbank, state)
        tail, _ = encoder.infer(fbank[:, :0], state, final=True)
    expected_frames = math.ceil(fbank_frames / 4)
    assert offline["encoder_out"][0].shape == (expected_frames, 1, 32)
    assert early.size(0) == 0  # nothing is emitted before the segment (or the utterance) ends
    assert (tail - offline["encoder_out"][0]).abs().max().item() < TOLERANCE


@pytest.mark.parametrize(
    "shape, message",
    [
        ((1, 10), "rank 3"),
        ((1, 10, 40), "expected 80 features per frame, got 40"),
        ((2, 1, 10, 80), "rank 3"),
    ],
)
def test_bad_input_shape_raises_value_error_with_expected_and_actual(shape, message):
    encoder = _encoder()
    with pytest.raises(ValueError, match=message):
        encoder(torch.randn(*shape), torch.tensor([10]))
    with pytest.raises(ValueError, match=message):
        encoder.infer(torch.randn(*shape), encoder.init_state(1))


def test_empty_utterance_and_mismatched_lengths_raise_value_error():
    encoder = _encoder()
    with pytest.raises(ValueError, match=">= 1 fbank frame"):
        encoder(torch.randn(2, 10, FEATURES), torch.tensor([10, 0]))
    with pytest.raises(ValueError, match=r"src_lengths of shape \(2,\)"):
        encoder(torch.randn(2, 10, FEATURES), torch.tensor([10]))
    with pytest.raises(ValueError, match="exceeds"):
        encoder(torch.randn(1, 10, FEATURES), torch.tensor([11]))
    with pytest.raises(ValueError, match="expected batch size 2"):
        encoder.infer(torch.randn(1, 10, FEATURES), encoder.init_state(2))


def _plain_transformer(encoder: EchoStreamEncoder, fbank: torch.Tensor) -> torch.Tensor:
    """Reference: the same weights as an ordinary pre-LN Transformer with full attention."""
    frames, _ = encoder.subsample(fbank, torch.tensor([fbank.size(1)]))
    x = encoder._embed(frames)
    for layer in encoder.emformer.layers:
        attn = layer.self_attn
        h = layer.self_attn_layer_norm(x)
        q, k, v = (
            p(h).view(1, -1, attn.num_heads, 32 // attn.num_heads).transpose(1, 2)
            for p in (attn.q_proj, attn.k_proj, attn.v_proj)
        )
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(1, -1, 32)
        x = x + attn.out_proj(a)
        x = x + layer.fc2(F.relu(layer.fc1(layer.final_layer_norm(x))))
    return encoder.emformer.layer_norm(x).transpose(0, 1)


def test_huge_segment_length_is_plain_full_attention_whatever_the_value():
    encoder = _encoder(right_context_length=2, left_context_length=4)
    torch.manual_seed(5)
    fbank = torch.randn(1, 203, FEATURES)  # 51 encoder frames
    with torch.no_grad():
        reference = _plain_transformer(encoder, fbank)
        for segment_length in (51, 52, 99999, 10**9):
            out = encoder(fbank, torch.tensor([203]),
                          segment_length=segment_length)["encoder_out"][0]
            assert (out - reference).abs().max().item() < TOLERANCE


def test_multichunk_training_backward_is_finite_for_every_segment_length():
    encoder = _encoder(right_context_length=2).train()
    fbank = torch.randn(3, 130, FEATURES)
    lengths = torch.tensor([130, 61, 7])
    for segment_length in (8, 16, 24, 32, 99999):
        encoder.zero_grad()
        out = encoder(fbank, lengths, segment_length=segment_length)
        valid = ~out["encoder_padding_mask"][0].t().unsqueeze(-1)
        (out["encoder_out"][0] * valid).pow(2).mean().backward()
        grads = [p.grad for p in encoder.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)


def test_stacked_streams_equal_separate_streams_and_unstack_round_trips():
    encoder = _encoder(segment_length=4, right_context_length=2, emformer_conv_kernel_size=7)
    torch.manual_seed(6)
    fbank = torch.randn(2, 120, FEATURES)
    with torch.no_grad():
        separate = [encoder.infer(fbank[i : i + 1, :70], encoder.init_state(1)) for i in range(2)]
        stacked = encoder.stack_states([state for _, state in separate])
        out, stacked = encoder.infer(fbank[:, 70:], stacked, final=True)
        for i, (first, state) in enumerate(separate):
            rest, _ = encoder.infer(fbank[i : i + 1, 70:], state, final=True)
            assert (out[:, i : i + 1] - rest).abs().max().item() < TOLERANCE
        parts = encoder.unstack_states(stacked)
        restacked = encoder.stack_states(parts)
    assert len(parts) == 2
    assert all(torch.equal(a, b) for a, b in zip(_tensors(stacked), _tensors(restacked)))


def test_alibi_streams_at_different_positions_batched_equal_each_alone():
    # the bias depends on each stream's own frame count: a batch of streams that started at
    # different times must give each stream what it gets alone
    encoder = _encoder(segment_length=4, right_context_length=2, position_bias="alibi")
    torch.manual_seed(7)
    fbank = torch.randn(2, 300, FEATURES)
    starts = (40, 168)  # fbank frames before the batched step (pending buffers alike)
    with torch.no_grad():
        separate = [encoder.infer(fbank[i : i + 1, :start], encoder.init_state(1))[1]
                    for i, start in enumerate(starts)]
        chunks = torch.stack([fbank[i, start : start + 64] for i, start in enumerate(starts)])
        out, _ = encoder.infer(chunks, encoder.stack_states(separate))
        for i, state in enumerate(separate):
            alone, _ = encoder.infer(chunks[i : i + 1], state)
            assert alone.size(0) > 0
            assert (out[:, i : i + 1] - alone).abs().max().item() < TOLERANCE


def test_alibi_changes_the_output_and_loads_weights_trained_without_it():
    plain = _encoder()
    biased = EchoStreamEncoder(_args(position_bias="alibi")).eval()
    biased.load_state_dict(plain.state_dict(), strict=True)  # the bias has no parameters
    assert plain.state_dict().keys() == biased.state_dict().keys()
    torch.manual_seed(8)
    fbank = torch.randn(1, 200, FEATURES)
    with torch.no_grad():
        a = plain(fbank, torch.tensor([200]))["encoder_out"][0]
        b = biased(fbank, torch.tensor([200]))["encoder_out"][0]
    assert (a - b).abs().max().item() > 1e-2
    with pytest.raises(ValueError, match="position_bias"):
        EchoStreamEncoder(_args(position_bias="rope"))


@pytest.mark.parametrize("segment_length, kernel", [(8, 7), (4, 11), (8, 1)])
def test_convolution_sees_half_a_kernel_back_and_ahead_only_inside_its_segment(segment_length,
                                                                                kernel):
    torch.manual_seed(9)
    conv = _SegmentConvolution(16, kernel, dropout=0.0)
    frames, context = 21, kernel // 2
    for frame in range(frames):
        utterance = torch.randn(1, frames, 16, requires_grad=True)
        _, out, _ = conv(utterance[:, :0], utterance, torch.zeros(1, context, 16),
                         torch.ones(1, frames, dtype=torch.bool), segment_length, 1)
        out[0, frame].sum().backward()
        seen = utterance.grad[0].abs().sum(-1).nonzero().flatten().tolist()
        segment_end = (frame // segment_length + 1) * segment_length
        assert seen == list(range(max(0, frame - context),
                                  min(frame + context + 1, segment_end, frames)))


def test_right_context_sees_the_frames_before_it_and_its_own_block_only():
    torch.manual_seed(10)
    segment, block, kernel = 4, 3, 7
    conv = _SegmentConvolution(16, kernel, dropout=0.0)
    context, frames = kernel // 2, 3 * segment  # blocks after segments 0 and 1
    for row in range(2 * block):
        utterance = torch.randn(1, frames, 16, requires_grad=True)
        right = torch.randn(1, 2 * block, 16, requires_grad=True)
        right_out, _, _ = conv(right, utterance, torch.randn(1, context, 16),
                               torch.ones(1, 2 * block + frames, dtype=torch.bool), segment,
                               block)
        right_out[0, row].sum().backward()
        seen_frames = utterance.grad[0].abs().sum(-1).nonzero().flatten().tolist()
        seen_right = right.grad[0].abs().sum(-1).nonzero().flatten().tolist()
        index, start = row % block, row // block * block
        before = (row // block + 1) * segment  # the block's first frame in the utterance
        assert seen_frames == list(range(before - (context - index), before))
        assert seen_right == list(range(max(start, row - context),
                                        min(row + context + 1, start + block)))


def test_convolution_module_is_optional_and_its_kernel_checked():
    plain, conv = _encoder(), _encoder(emformer_conv_kernel_size=5)
    extra = set(conv.state_dict()) - set(plain.state_dict())
    assert extra and all(".conv_module." in key for key in extra)
    assert set(plain.state_dict()) <= set(conv.state_dict())
    for kernel in (4, -1):
        with pytest.raises(ValueError, match="emformer-conv-kernel-size. must be 0"):
            _encoder(emformer_conv_kernel_size=kernel)


def _tensors(state) -> List[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, tuple):
        return [t for item in state for t in _tensors(item)]
    return []


def test_geometry_derives_every_time_unit():
    geometry = StreamingGeometry(segment_frames=8, right_context_frames=2)
    assert geometry.encoder_frame_ms == 40
    assert geometry.segment_ms == 320
    assert geometry.segment_fbank_frames == 32
    assert geometry.segment_samples == 5120
    assert geometry.algorithmic_latency_ms == 400
    assert geometry.encoder_frames_for_fbank(1) == 1
    assert geometry.encoder_frames_for_fbank(2000) == 500
    assert _encoder().geometry(16).segment_ms == 640
    with pytest.raises(ValueError, match="segment_frames"):
        StreamingGeometry(segment_frames=0)


def test_encoder_out_follows_fairseq_contract_and_reorders():
    encoder = _encoder()
    with torch.no_grad():
        out = encoder(torch.randn(2, 50, FEATURES), torch.tensor([50, 30]), return_all_hiddens=True)
        reordered = encoder.reorder_encoder_out(out, torch.tensor([1, 1, 0]))
    assert out["encoder_out"][0].shape == (13, 2, 32)
    assert out["encoder_padding_mask"][0].dtype == torch.bool
    assert out["encoder_padding_mask"][0].sum(dim=1).tolist() == [0, 5]
    assert out["src_lengths"][0].tolist() == [13, 8]
    assert [h.shape for h in out["encoder_states"]] == [(13, 2, 32)] * 2
    assert out["encoder_embedding"] == [] and out["src_tokens"] == []
    assert torch.equal(reordered["encoder_out"][0][:, 2], out["encoder_out"][0][:, 0])
    assert reordered["src_lengths"][0].tolist() == [8, 8, 13]


def test_state_built_for_another_segment_length_is_refused():
    encoder = _encoder(segment_length=8)
    state = encoder.init_state(1, segment_length=4)
    with pytest.raises(ValueError, match="another segment length"):
        encoder.emformer.infer(torch.randn(1, 3, 32), state.emformer, segment_length=8)
