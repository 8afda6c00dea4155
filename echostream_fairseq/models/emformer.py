"""Emformer: segment-wise streaming Transformer with a left-context cache and a memory bank.

Follows torchaudio's design (Shi et al., 2021, "Emformer: Efficient Memory Transformer Based
Acoustic Model for Low Latency Streaming Speech Recognition"): the utterance is cut into segments
of ``S`` frames; every segment attends to itself, to ``R`` frames of right context (look-ahead,
recomputed per segment so stacking layers does not stack look-ahead), to the attention keys of the
``L`` frames before it, and to ``M`` memory-bank slots summarising earlier segments.

Differences from torchaudio, on purpose:

* The segment length is a per-call argument of :meth:`Emformer.forward` and nothing depends on it
  at construction time, so ``--multichunk`` training can draw it per batch. A segment length of at
  least the utterance length is plain full (offline) attention over one segment.
* The attention rule (who may see whom) is one function, :func:`_attention_mask`, fed with the
  absolute positions of queries and keys; the training forward and the streaming ``infer`` only
  describe their keys differently, so the two cannot drift.
* Padding is handled per utterance for every key (right-context copies included), and the
  layer-norm is applied to memory slots too (pre-LN throughout, a final LayerNorm at the end).
* Streaming state buffers are fixed-size; slots not yet filled are zeros and masked out.
* Optional relative position (``position_bias="alibi"``, Press et al., 2022): torchaudio's layers
  carry no positional information at all. ALiBi adds ``-slope_h * |i - j|`` to the score of query
  frame ``i`` and key frame ``j`` (memory slots and the summaries' queries get none); it depends
  only on frame distances, so the streaming state stays the same size and streaming stays exact,
  and it has no parameters, so checkpoints without it load unchanged.
* Optional convolution module (``conv_kernel_size``; Gulati et al., 2020, as in StreamSpeech's
  chunked Conformer): after the attention, a depthwise conv whose window reaches ``K // 2`` frames
  back across segments and forward only inside the frame's own segment (zeros after it), the
  rule of StreamSpeech's ``ChunkCausalConv1d``. A layer carries the last ``K // 2`` gated frames
  between segments, so streaming stays exact; right-context copies see the segment before them.
"""

import logging
import math
from typing import List, NamedTuple, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from echostream_fairseq.models.state import (
    EmformerLayerState,
    EmformerState,
    hold_pending,
    pending_frames,
)

__all__ = ["Emformer"]

logger = logging.getLogger(__name__)

_MEMORY, _RIGHT_CONTEXT, _UTTERANCE = 0, 1, 2  # kinds of attention keys
# memory slots are attention outputs fed back as keys; torchaudio clamps them too
_MEMORY_CLAMP = 10.0


class _Layout(NamedTuple):
    """Positions of the queries ``[right context, utterance, summaries]`` and of the keys
    ``[left context, memory, right context, utterance]`` seen by one attention call.

    ``*_segment`` / ``key_position`` hold absolute indices: a segment index for queries, and for
    keys a memory-slot index (memory), the segment the block belongs to (right context), or the
    absolute frame index (utterance and left context). ``query_frame`` / ``key_frame`` are the
    absolute frame index of every frame query and key (right-context copies included; anything
    for summaries and memory slots), for the position bias.
    """

    query_segment: Tensor  # (B or 1, Q) int64
    query_is_summary: Tensor  # (Q,) bool
    key_kind: Tensor  # (K,) int64
    key_position: Tensor  # (B or 1, K) int64
    key_valid: Tensor  # (B or 1, K) bool
    query_frame: Tensor  # (B or 1, Q) int64
    key_frame: Tensor  # (B or 1, K) int64


def _attention_mask(
    layout: _Layout, segment_length: int, left_context: int, memory_size: int
) -> Tensor:
    """The Emformer attention rule, as a boolean mask ``(B, 1, Q, K)`` (True = may attend).

    A query of segment ``i`` (a frame, a right-context copy, or the summary of segment ``i``) sees
    memory slots ``[i - M, i)`` (summaries excepted), the right-context block of segment ``i``, and
    utterance frames ``[i*S - L, (i+1)*S)``; keys must be valid (not padding, not an empty slot).
    """
    segment = layout.query_segment.unsqueeze(-1)
    position = layout.key_position.unsqueeze(1)
    start = segment * segment_length
    memory_ok = (
        (~layout.query_is_summary).unsqueeze(-1)
        & (position >= segment - memory_size)
        & (position < segment)
    )
    right_context_ok = position == segment
    utterance_ok = (position >= start - left_context) & (position < start + segment_length)
    kind = layout.key_kind
    allowed = torch.where(kind == _RIGHT_CONTEXT, right_context_ok, utterance_ok)
    allowed = torch.where(kind == _MEMORY, memory_ok, allowed)
    allowed = allowed & layout.key_valid.unsqueeze(1)
    # Queries on padding may have no valid key at all; letting them see everything keeps their
    # (discarded) outputs finite instead of NaN, which would poison 0-weighted sums downstream.
    allowed = allowed | ~allowed.any(dim=-1, keepdim=True)
    return allowed.unsqueeze(1)


POSITION_BIASES = ("none", "alibi")


def alibi_slopes(num_heads: int) -> Tensor:
    """ALiBi's per-head slopes ``2 ** (-8 (h + 1) / H)`` (a geometric series from 2^(-8/H))."""
    return torch.pow(2.0, -8.0 * torch.arange(1, num_heads + 1) / num_heads)


def _alibi_bias(layout: _Layout, slopes: Tensor) -> Tensor:
    """``-slope_h * |query frame - key frame|`` as ``(B or 1, H, Q, K)``; 0 where either side is no
    frame (a summary query, a memory key)."""
    distance = (layout.query_frame.unsqueeze(-1) - layout.key_frame.unsqueeze(1)).abs()
    has_frames = (~layout.query_is_summary).unsqueeze(-1) & (layout.key_kind != _MEMORY)
    distance = distance * has_frames
    return -slopes.view(1, -1, 1, 1) * distance.unsqueeze(1).to(slopes.dtype)


def _segment_means(x: Tensor, segment_length: int) -> Tensor:
    """Mean of every segment of ``x`` ``(B, T, D)`` -> ``(B, ceil(T / S), D)``; a short last
    segment is averaged over its own frames."""
    batch, frames, dim = x.shape
    segment_length = min(segment_length, frames)
    num_segments = math.ceil(frames / segment_length)
    padded = F.pad(x, (0, 0, 0, num_segments * segment_length - frames))
    sums = padded.view(batch, num_segments, segment_length, dim).sum(dim=2)
    starts = torch.arange(num_segments, device=x.device) * segment_length
    counts = (frames - starts).clamp(max=segment_length).to(x.dtype)
    return sums / counts.unsqueeze(-1)


def _keep_last(x: Tensor, size: int) -> Tensor:
    """Last ``size`` frames of ``x`` ``(B, T, D)`` (``size`` may be 0, unlike ``x[:, -0:]``)."""
    return x[:, x.size(1) - size :]


class _EmformerAttention(nn.Module):
    """Multi-head attention whose keys may be extended by cached left-context keys/values."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float):
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(
                f"embed_dim ({embed_dim}) must be a multiple of num_heads ({num_heads})"
            )
        self.num_heads = num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def _split_heads(self, x: Tensor) -> Tensor:
        batch, length, dim = x.shape
        return x.view(batch, length, self.num_heads, dim // self.num_heads).transpose(1, 2)

    def forward(
        self,
        query_input: Tensor,
        key_input: Tensor,
        left_key: Tensor,
        left_value: Tensor,
        mask: Tensor,
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """B: batch; Q: queries; K: new keys; L: cached keys; D: model dim.

        Args:
            query_input: ``(B, Q, D)``; key_input: ``(B, K, D)``;
            left_key, left_value: projected cached keys/values ``(B, L, D)``;
            mask: ``(B, 1, Q, L + K)`` bool, True = may attend; or with a position bias,
                additive scores ``(B or 1, H, Q, L + K)`` (-inf = may not attend).

        Returns:
            attention output ``(B, Q, D)``, and the projected new keys and values ``(B, K, D)``.
        """
        key = self.k_proj(key_input)
        value = self.v_proj(key_input)
        query = self._split_heads(self.q_proj(query_input))
        all_keys = self._split_heads(torch.cat([left_key, key], dim=1))
        all_values = self._split_heads(torch.cat([left_value, value], dim=1))
        dropout = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(
            query, all_keys, all_values, attn_mask=mask, dropout_p=dropout
        )
        batch, _, length, _ = out.shape
        out = out.transpose(1, 2).reshape(batch, length, -1)
        return self.out_proj(out), key, value


class _SegmentConvolution(nn.Module):
    """The Conformer convolution module (LN, pointwise + GLU, depthwise, norm, SiLU, pointwise)
    with the depthwise window cut at segment ends.

    The norm after the depthwise conv is a LayerNorm, not the Conformer's BatchNorm: a batch
    statistic would differ between padded training batches and one live stream.
    """

    def __init__(self, embed_dim: int, kernel_size: int, dropout: float):
        super().__init__()
        self.context = kernel_size // 2
        self.layer_norm = nn.LayerNorm(embed_dim)
        self.pointwise_in = nn.Linear(embed_dim, 2 * embed_dim)
        self.depthwise = nn.Conv1d(embed_dim, embed_dim, kernel_size, groups=embed_dim)
        self.depthwise_norm = nn.LayerNorm(embed_dim)
        self.pointwise_out = nn.Linear(embed_dim, embed_dim)
        self.dropout = nn.Dropout(dropout)

    def _depthwise(self, windows: Tensor) -> Tensor:
        """``(B, N, W, C)`` windows of ``context`` frames, ``W - 2 * context`` frames to convolve
        and ``context`` zeros -> ``(B, N * (W - 2 * context), C)``."""
        batch, count, width, channels = windows.shape
        out = self.depthwise(windows.reshape(batch * count, width, channels).transpose(1, 2))
        return out.transpose(1, 2).reshape(batch, -1, channels)

    def _finish(self, x: Tensor) -> Tensor:
        return self.dropout(self.pointwise_out(F.silu(self.depthwise_norm(x))))

    def forward(
        self,
        right_context: Tensor,
        utterance: Tensor,
        left: Tensor,
        valid: Tensor,
        segment_length: int,
        right_context_block: int,
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """B: batch; R: right-context frames (blocks of ``right_context_block``, block ``i``
        after segment ``i``); T: utterance frames; P: ``kernel // 2``; C: model dim.

        Args:
            right_context: ``(B, R, C)``; utterance: ``(B, T, C)``;
            left: gated frames before the utterance ``(B, P, C)`` (zeros at a stream's start);
            valid: ``(B, R + T)`` bool, False for padding (zeroed, so it never leaks in);
            segment_length: frames per segment of ``utterance``;
            right_context_block: frames per right-context block (ignored when ``R`` is 0).

        Returns:
            the module's output for the right context ``(B, R, C)`` and the utterance
            ``(B, T, C)``, and the last ``P`` gated utterance frames (the next ``left``).
        """
        context, num_right = self.context, right_context.size(1)
        x = torch.cat([right_context, utterance], dim=1)
        gated = F.glu(self.pointwise_in(self.layer_norm(x)), dim=-1) * valid.unsqueeze(-1)
        frames = utterance.size(1)
        sequence = torch.cat([left, gated[:, num_right:]], dim=1)  # (B, P + T, C)
        num_segments = math.ceil(frames / segment_length)
        padded = F.pad(sequence, (0, 0, 0, num_segments * segment_length - frames))
        # segment i: its P frames before, its own frames, then P zeros
        windows = padded.unfold(1, context + segment_length, segment_length).transpose(2, 3)
        windows = F.pad(windows, (0, 0, 0, context))
        utterance_out = self._depthwise(windows)[:, :frames]
        if num_right == 0:
            right_out = utterance_out[:, :0]
        else:
            blocks = num_right // right_context_block
            starts = torch.arange(1, blocks + 1, device=x.device) * segment_length
            before = sequence[:, starts.unsqueeze(1) + torch.arange(context, device=x.device)]
            block = gated[:, :num_right].reshape(x.size(0), blocks, right_context_block, -1)
            windows = F.pad(torch.cat([before, block], dim=2), (0, 0, 0, context))
            right_out = self._depthwise(windows)
        return self._finish(right_out), self._finish(utterance_out), _keep_last(sequence, context)


class _EmformerLayer(nn.Module):
    """Pre-LN Emformer layer: attention (with memory and right context), the optional
    convolution module, then a ReLU FFN."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        ffn_dim: int,
        dropout: float,
        attention_dropout: float,
        activation_dropout: float,
        use_memory: bool,
        conv_kernel_size: int = 0,
    ):
        super().__init__()
        self.use_memory = use_memory
        self.conv_module = (
            _SegmentConvolution(embed_dim, conv_kernel_size, dropout) if conv_kernel_size else None
        )
        self.self_attn = _EmformerAttention(embed_dim, num_heads, attention_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(embed_dim)
        self.fc1 = nn.Linear(embed_dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, embed_dim)
        self.final_layer_norm = nn.LayerNorm(embed_dim)
        self.dropout = nn.Dropout(dropout)
        self.activation_dropout = nn.Dropout(activation_dropout)

    def _feed_forward(self, x: Tensor) -> Tensor:
        hidden = self.activation_dropout(F.relu(self.fc1(self.final_layer_norm(x))))
        return self.dropout(self.fc2(hidden))

    def _forward_impl(
        self,
        right_context: Tensor,
        utterance: Tensor,
        memory: Tensor,
        left_key: Tensor,
        left_value: Tensor,
        conv_left: Tensor,
        mask: Tensor,
        frame_valid: Tensor,
        segment_length: int,
        right_context_block: int,
    ) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The one implementation behind training and streaming.

        B: batch; R: right-context frames; T: utterance frames; M: memory slots; L: cached
        left-context frames; N: summaries (segments, 0 without memory); P: the convolution's
        frames of left context; D: model dim.

        Args:
            right_context: ``(B, R, D)``; utterance: ``(B, T, D)``; memory: ``(B, M, D)``;
            left_key, left_value: ``(B, L, D)``; conv_left: ``(B, P, D)``;
            mask: ``(B, 1, R + T + N, L + M + R + T)`` (additive ``(B or 1, H, ...)`` with a
                position bias); frame_valid: ``(B, R + T)`` bool, False for padding;
            segment_length: frames per segment of ``utterance`` (summaries, convolution);
            right_context_block: right-context frames per segment (convolution).

        Returns:
            right context ``(B, R, D)``, utterance ``(B, T, D)``, next layer's memory ``(B, N, D)``,
            the utterance frames' keys and values ``(B, T, D)`` (the next left context), and the
            convolution's next ``conv_left`` ``(B, P, D)``.
        """
        num_memory, num_right = memory.size(1), right_context.size(1)
        x = torch.cat([right_context, utterance], dim=1)
        normed = self.self_attn_layer_norm(torch.cat([memory, x], dim=1))
        hidden = normed[:, num_memory:]
        if self.use_memory:
            summary = _segment_means(hidden[:, num_right:], segment_length)
        else:
            summary = hidden[:, :0]
        attended, key, value = self.self_attn(
            torch.cat([hidden, summary], dim=1), normed, left_key, left_value, mask
        )
        x = x + self.dropout(attended[:, : x.size(1)])
        if self.conv_module is not None:
            right_out, utterance_out, conv_left = self.conv_module(
                x[:, :num_right], x[:, num_right:], conv_left, frame_valid, segment_length,
                right_context_block,
            )
            x = x + torch.cat([right_out, utterance_out], dim=1)
        x = x + self._feed_forward(x)
        next_memory = attended[:, x.size(1) :].clamp(-_MEMORY_CLAMP, _MEMORY_CLAMP)
        first_utterance_key = num_memory + num_right
        return (
            x[:, :num_right],
            x[:, num_right:],
            next_memory,
            key[:, first_utterance_key:],
            value[:, first_utterance_key:],
            conv_left,
        )


class Emformer(nn.Module):
    """Stack of Emformer layers with a final LayerNorm.

    Args:
        embed_dim: model dimension D.
        num_heads: attention heads (must divide D).
        ffn_dim: hidden size of each feed-forward block.
        num_layers: number of layers.
        right_context_length: look-ahead frames R after each segment.
        left_context_length: frames L before a segment whose keys/values it attends to.
        max_memory_size: memory-bank slots M (0 disables the memory bank).
        dropout, attention_dropout, activation_dropout: dropout probabilities.
        position_bias: ``"none"`` or ``"alibi"``.
        conv_kernel_size: depthwise kernel of each layer's convolution module (odd; 0: none).

    Example:
        >>> emformer = Emformer(
        ...     64, 4, 256, num_layers=2, left_context_length=8, max_memory_size=2
        ... ).eval()
        >>> x, lengths = torch.randn(1, 40, 64), torch.tensor([40])
        >>> offline, _ = emformer(x, lengths, segment_length=4)
        >>> state = emformer.init_state(1, x, segment_length=4)
        >>> first, state = emformer.infer(x[:, :25], state, segment_length=4, final=False)
        >>> rest, state = emformer.infer(x[:, 25:], state, segment_length=4, final=True)
        >>> torch.allclose(torch.cat([first, rest], 1), offline, atol=1e-5)
        True
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        ffn_dim: int,
        num_layers: int,
        right_context_length: int = 0,
        left_context_length: int = 0,
        max_memory_size: int = 0,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
        position_bias: str = "none",
        conv_kernel_size: int = 0,
    ):
        super().__init__()
        if position_bias not in POSITION_BIASES:
            raise ValueError(
                f"Emformer: position_bias must be one of {POSITION_BIASES}, got {position_bias!r}"
            )
        if conv_kernel_size < 0 or (conv_kernel_size and conv_kernel_size % 2 == 0):
            raise ValueError(
                f"Emformer: conv_kernel_size (--emformer-conv-kernel-size) must be 0 (no "
                f"convolution module) or odd, got {conv_kernel_size}"
            )
        for name, value in [
            ("right_context_length", right_context_length),
            ("left_context_length", left_context_length),
            ("max_memory_size", max_memory_size),
        ]:
            if value < 0:
                raise ValueError(f"Emformer: {name} must be >= 0, got {value}")
        self.embed_dim = embed_dim
        self.right_context_length = right_context_length
        self.left_context_length = left_context_length
        self.max_memory_size = max_memory_size
        self.layers = nn.ModuleList(
            _EmformerLayer(
                embed_dim,
                num_heads,
                ffn_dim,
                dropout,
                attention_dropout,
                activation_dropout,
                max_memory_size > 0,
                conv_kernel_size,
            )
            for _ in range(num_layers)
        )
        self.conv_context = conv_kernel_size // 2
        self.layer_norm = nn.LayerNorm(embed_dim)
        self.position_bias = position_bias
        # not in the state dict: parameter-free, so models without the bias load as they are
        self.register_buffer("alibi_slopes", alibi_slopes(num_heads), persistent=False)

    @property
    def _use_memory(self) -> bool:
        return self.max_memory_size > 0

    def _mask(self, layout: _Layout, segment_length: int, dtype: torch.dtype) -> Tensor:
        """The attention rule as a boolean mask, or with a position bias as additive scores
        ``(B, H, Q, K)`` in ``dtype`` (-inf where a query may not attend)."""
        allowed = _attention_mask(
            layout, segment_length, self.left_context_length, self.max_memory_size
        )
        if self.position_bias == "none":
            return allowed
        bias = _alibi_bias(layout, self.alibi_slopes.to(torch.float32))
        return bias.masked_fill(~allowed, float("-inf")).to(dtype)

    def _training_layout(
        self, lengths: Tensor, frames: int, segment_length: int
    ) -> Tuple[_Layout, Tensor]:
        """Layout of a whole utterance cut into segments, and the source frame of every
        right-context copy ``((N-1)*R,)`` (the last segment has no frames after it)."""
        device, right = lengths.device, self.right_context_length
        num_segments = math.ceil(frames / segment_length)
        frame_index = torch.arange(frames, device=device)
        block = torch.arange(num_segments - 1, device=device).repeat_interleave(right)
        right_source = (block + 1) * segment_length + torch.arange(right, device=device).repeat(
            num_segments - 1
        )
        slots = torch.arange(num_segments if self._use_memory else 0, device=device)
        length = lengths.unsqueeze(1)
        layout = _Layout(
            query_segment=torch.cat([block, frame_index // segment_length, slots]).unsqueeze(0),
            query_is_summary=torch.cat(
                [
                    torch.zeros(block.numel() + frames, dtype=torch.bool, device=device),
                    torch.ones_like(slots, dtype=torch.bool),
                ]
            ),
            key_kind=torch.cat(
                [
                    torch.full_like(slots, _MEMORY),
                    torch.full_like(block, _RIGHT_CONTEXT),
                    torch.full_like(frame_index, _UTTERANCE),
                ]
            ),
            key_position=torch.cat([slots, block, frame_index]).unsqueeze(0),
            key_valid=(
                torch.cat([slots * segment_length, right_source, frame_index]).unsqueeze(0)
                < length
            ),
            query_frame=torch.cat([right_source, frame_index, slots]).unsqueeze(0),
            key_frame=torch.cat([slots, right_source, frame_index]).unsqueeze(0),
        )
        return layout, right_source

    def forward(
        self, x: Tensor, lengths: Tensor, segment_length: int, return_hiddens: bool = False
    ) -> Tuple[Tensor, List[Tensor]]:
        """Training / offline pass over whole utterances with segment block masks.

        B: batch size; T: frames (padded); D: model dim.

        Args:
            x: input frames ``(B, T, D)``, ``T >= 1``.
            lengths: valid frames per utterance ``(B,)`` int.
            segment_length: frames per segment for this call (``>= T`` means full attention).
            return_hiddens: also return every layer's output.

        Returns:
            output ``(B, T, D)`` (after the final LayerNorm) and a list of per-layer outputs
            ``(B, T, D)`` (empty unless ``return_hiddens``). Frames past ``lengths`` are garbage.
        """
        frames = x.size(1)
        segment_length = min(segment_length, frames)
        layout, right_source = self._training_layout(lengths, frames, segment_length)
        mask = self._mask(layout, segment_length, x.dtype)
        right_context = x[:, right_source.clamp(max=frames - 1)]
        memory = _segment_means(x, segment_length) if self._use_memory else x[:, :0]
        no_cache = x[:, :0]
        conv_left = x.new_zeros(x.size(0), self.conv_context, x.size(2))
        frame_valid = layout.key_valid[:, -(right_source.numel() + frames) :]  # [right, utterance]
        hiddens: List[Tensor] = []
        for layer in self.layers:
            right_context, x, memory, _, _, _ = layer._forward_impl(
                right_context, x, memory, no_cache, no_cache, conv_left, mask, frame_valid,
                segment_length, self.right_context_length,
            )
            if return_hiddens:
                hiddens.append(x)
        return self.layer_norm(x), hiddens

    def init_state(self, batch_size: int, like: Tensor, segment_length: int) -> EmformerState:
        """Start-of-utterance state (zeros, all slots invalid) on ``like``'s device and dtype,
        for a stream cut into segments of ``segment_length`` frames."""
        if segment_length < 1:
            raise ValueError(
                f"Emformer.init_state: segment_length must be >= 1, got {segment_length}"
            )

        def zeros(frames: int) -> Tensor:
            return like.new_zeros(batch_size, frames, self.embed_dim)

        layer_state = EmformerLayerState(
            memory=zeros(self.max_memory_size),
            left_key=zeros(self.left_context_length),
            left_value=zeros(self.left_context_length),
            conv_left=zeros(self.conv_context),
        )
        pending, count = hold_pending(zeros(0), self._pending_capacity(segment_length))
        return EmformerState(
            layers=tuple(layer_state for _ in self.layers),
            pending=pending,
            num_pending=count,
            processed_frames=torch.zeros(batch_size, dtype=torch.long, device=like.device),
        )

    def _pending_capacity(self, segment_length: int) -> int:
        """Most frames that can wait: one short of a segment plus its right context."""
        return segment_length + self.right_context_length - 1

    def _infer_layout(
        self, processed: Tensor, segment_length: int, frames: int, right: int
    ) -> _Layout:
        """Layout of one streaming segment of ``frames`` frames starting at ``processed``
        ``(B,)``."""
        device = processed.device
        segment = torch.div(processed, segment_length, rounding_mode="floor").unsqueeze(1)
        left = (
            processed.unsqueeze(1)
            - self.left_context_length
            + torch.arange(self.left_context_length, device=device)
        )
        memory_size = self.max_memory_size
        slots = segment - memory_size + torch.arange(memory_size, device=device)
        utterance = processed.unsqueeze(1) + torch.arange(frames, device=device)
        right_frames = utterance[:, -1:] + 1 + torch.arange(right, device=device)
        num_summaries = 1 if self._use_memory else 0
        summaries = segment.expand(-1, num_summaries)  # no frame: the bias ignores them

        def kinds(kind: int, count: int) -> Tensor:
            return torch.full((count,), kind, dtype=torch.long, device=device)

        return _Layout(
            query_segment=segment.expand(-1, right + frames + num_summaries),
            query_is_summary=(
                torch.arange(right + frames + num_summaries, device=device) >= right + frames
            ),
            key_kind=torch.cat(
                [
                    kinds(_UTTERANCE, left.size(1)),
                    kinds(_MEMORY, memory_size),
                    kinds(_RIGHT_CONTEXT, right),
                    kinds(_UTTERANCE, frames),
                ]
            ),
            key_position=torch.cat([left, slots, segment.expand(-1, right), utterance], dim=1),
            key_valid=torch.cat(
                [
                    left >= 0,
                    slots >= 0,
                    processed.new_ones(processed.size(0), right, dtype=torch.bool),
                    utterance >= 0,
                ],
                dim=1,
            ),
            query_frame=torch.cat([right_frames, utterance, summaries], dim=1),
            key_frame=torch.cat([left, slots, right_frames, utterance], dim=1),
        )

    def _infer_segment(
        self, segment: Tensor, right_context: Tensor, state: EmformerState, segment_length: int
    ) -> Tuple[Tensor, EmformerState]:
        """Run one segment ``(B, S', D)`` with its right context ``(B, R', D)`` through all
        layers."""
        frames = segment.size(1)
        layout = self._infer_layout(
            state.processed_frames, segment_length, frames, right_context.size(1)
        )
        mask = self._mask(layout, segment_length, segment.dtype)
        frame_valid = layout.key_valid[:, -(right_context.size(1) + frames) :]
        memory_in = _segment_means(segment, frames) if self._use_memory else segment[:, :0]
        utterance = segment
        new_layers = []
        for layer, layer_state in zip(self.layers, state.layers):
            right_context, utterance, next_memory, key, value, conv_left = layer._forward_impl(
                right_context,
                utterance,
                layer_state.memory,
                layer_state.left_key,
                layer_state.left_value,
                layer_state.conv_left,
                mask,
                frame_valid,
                frames,
                right_context.size(1),
            )
            new_layers.append(
                EmformerLayerState(
                    memory=_keep_last(
                        torch.cat([layer_state.memory, memory_in], dim=1), self.max_memory_size
                    ),
                    left_key=_keep_last(
                        torch.cat([layer_state.left_key, key], dim=1), self.left_context_length
                    ),
                    left_value=_keep_last(
                        torch.cat([layer_state.left_value, value], dim=1),
                        self.left_context_length,
                    ),
                    conv_left=conv_left,
                )
            )
            memory_in = next_memory
        new_state = state._replace(
            layers=tuple(new_layers), processed_frames=state.processed_frames + frames
        )
        return self.layer_norm(utterance), new_state

    def infer(
        self, x: Tensor, state: EmformerState, segment_length: int, final: bool = False
    ) -> Tuple[Tensor, EmformerState]:
        """Streaming pass: consume new frames, emit every frame whose segment and right context
        are complete; equal to :meth:`forward` on the concatenation of all pieces.

        B: batch size; N: new frames; T': emitted frames; D: model dim.

        Args:
            x: new input frames ``(B, N, D)``, any ``N >= 0``.
            state: from :meth:`init_state` or the previous call.
            segment_length: frames per segment (the one given to :meth:`init_state`).
            final: the utterance ends after ``x``: flush the tail (short last segment, truncated
                right context) exactly as :meth:`forward` treats the end of an utterance.

        Returns:
            emitted frames ``(B, T', D)`` and the new state (fewer than ``segment_length +
            right_context_length`` frames wait in ``pending``; none after ``final``).
        """
        if segment_length < 1:
            raise ValueError(f"Emformer.infer: segment_length must be >= 1, got {segment_length}")
        capacity = self._pending_capacity(segment_length)
        if state.pending.size(1) != capacity:
            raise ValueError(
                f"Emformer.infer: state was built for another segment length (pending buffer of "
                f"{state.pending.size(1)} frames, expected {capacity} "
                f"for segment_length {segment_length})"
            )
        buffer = torch.cat([pending_frames(state.pending, state.num_pending), x], dim=1)
        needed = segment_length + self.right_context_length
        outputs: List[Tensor] = [buffer[:, :0]]
        start = 0
        while buffer.size(1) - start >= needed or (final and buffer.size(1) > start):
            frames = min(segment_length, buffer.size(1) - start)
            segment = buffer[:, start : start + frames]
            right_context = buffer[:, start + frames : start + frames + self.right_context_length]
            output, state = self._infer_segment(segment, right_context, state, segment_length)
            outputs.append(output)
            start += frames
        pending, count = hold_pending(buffer[:, start:], capacity)
        return torch.cat(outputs, dim=1), state._replace(pending=pending, num_pending=count)
