"""EchoStream's speech encoder: causal conv front end + Emformer, as a fairseq encoder.

``forward`` trains on whole utterances (segment block masks; the segment length may change per
call for ``--multichunk``) and ``infer`` streams any number of new fbank frames at a time with an
explicit :class:`~echostream_fairseq.models.state.EncoderState`; both give the same frames.
"""

import logging
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from fairseq.models import FairseqEncoder
from torch import Tensor, nn

from echostream_fairseq.models.emformer import Emformer
from echostream_fairseq.models.state import (
    EncoderState,
    StreamingGeometry,
    reorder_state,
    stack_states,
    unstack_states,
)
from echostream_fairseq.models.subsampling import CausalConv1dSubsampler

__all__ = ["EchoStreamEncoder"]

logger = logging.getLogger(__name__)


def _parse_kernel_sizes(spec: str) -> List[int]:
    try:
        sizes = [int(k) for k in str(spec).split(",") if k.strip()]
    except ValueError:
        raise ValueError(
            f"conv_kernel_sizes: expected comma-separated ints such as '5,5', got {spec!r}"
        ) from None
    if not sizes or min(sizes) < 1:
        raise ValueError(f"conv_kernel_sizes: expected positive kernel sizes, got {spec!r}")
    return sizes


class EchoStreamEncoder(FairseqEncoder):
    """Fbank (global-CMVN'd) -> causal Conv1d subsampler (x4) -> scale, ``linear``, dropout ->
    Emformer layers -> LayerNorm.

    Args:
        args: argparse-like namespace with ``input_feat_per_channel``, ``input_channels``,
            ``conv_channels``, ``conv_kernel_sizes``, ``encoder_embed_dim``, ``encoder_layers``,
            ``encoder_attention_heads``, ``encoder_ffn_embed_dim``, ``dropout``,
            ``attention_dropout``, ``activation_dropout``, ``segment_length``,
            ``right_context_length``, ``left_context_length``, ``max_memory_size``.

    Example:
        >>> encoder = EchoStreamEncoder(args).eval()
        >>> out = encoder(fbank, fbank_lengths)                  # training / offline
        >>> state = encoder.init_state(batch_size=1)
        >>> frames, state = encoder.infer(fbank[:, :37], state)  # streaming, (T', B, D)
        >>> tail, state = encoder.infer(fbank[:, 37:], state, final=True)
    """

    def __init__(self, args):
        super().__init__(None)
        self.input_dim = args.input_feat_per_channel * args.input_channels
        self.embed_dim = args.encoder_embed_dim
        if args.segment_length < 1:
            raise ValueError(
                f"segment_length must be >= 1 encoder frame, got {args.segment_length}"
            )
        self.segment_length = args.segment_length
        self.subsample = CausalConv1dSubsampler(
            self.input_dim,
            args.conv_channels,
            self.embed_dim,
            _parse_kernel_sizes(args.conv_kernel_sizes),
        )
        # fairseq's speech encoders scale the subsampler output by sqrt(D) before the first layer.
        self.embed_scale = math.sqrt(self.embed_dim)
        self.linear = nn.Linear(self.embed_dim, self.embed_dim)
        self.dropout_module = nn.Dropout(args.dropout)
        self.emformer = Emformer(
            embed_dim=self.embed_dim,
            num_heads=args.encoder_attention_heads,
            ffn_dim=args.encoder_ffn_embed_dim,
            num_layers=args.encoder_layers,
            right_context_length=args.right_context_length,
            left_context_length=args.left_context_length,
            max_memory_size=args.max_memory_size,
            dropout=args.dropout,
            attention_dropout=args.attention_dropout,
            activation_dropout=args.activation_dropout,
            position_bias=getattr(args, "position_bias", "none"),
            conv_kernel_size=getattr(args, "emformer_conv_kernel_size", 0),
        )

    def geometry(self, segment_length: Optional[int] = None) -> StreamingGeometry:
        """Streaming geometry of this encoder at ``segment_length`` (default: the configured
        one)."""
        return StreamingGeometry(
            subsampling=self.subsample.subsampling,
            segment_frames=self.segment_length if segment_length is None else segment_length,
            right_context_frames=self.emformer.right_context_length,
        )

    def output_lengths(self, fbank_lengths: Tensor) -> Tensor:
        """Encoder frames for ``fbank_lengths`` fbank frames: ``ceil(n / 4)`` (1 -> 1)."""
        return self.subsample.output_lengths(fbank_lengths)

    def _check_features(self, features: Tensor, caller: str) -> None:
        if features.dim() != 3:
            raise ValueError(
                f"{caller}: expected fbank of rank 3 (B, T, {self.input_dim}), "
                f"got rank {features.dim()} "
                f"with shape {tuple(features.shape)}"
            )
        if features.size(2) != self.input_dim:
            raise ValueError(
                f"{caller}: expected {self.input_dim} features per frame, got {features.size(2)} "
                f"(shape {tuple(features.shape)})"
            )

    def _embed(self, frames: Tensor) -> Tensor:
        """Per-frame projection after the convs (position-free, so streaming needs no offset)."""
        return self.dropout_module(self.linear(self.embed_scale * frames))

    def forward(
        self,
        src_tokens: Tensor,
        src_lengths: Tensor,
        segment_length: Optional[int] = None,
        return_all_hiddens: bool = False,
    ) -> Dict[str, List[Tensor]]:
        """Encode whole utterances (training, offline decoding, simulated streaming).

        B: batch size; T_in: fbank frames (padded); F: features per frame (80);
        T: encoder frames, ``ceil(T_in / 4)``; D: ``encoder_embed_dim``.

        Args:
            src_tokens: fbank ``(B, T_in, F)`` float.
            src_lengths: valid fbank frames per utterance ``(B,)`` int, each ``>= 1``.
            segment_length: encoder frames per Emformer segment for this call (``--multichunk``
                draws it per batch); ``None`` = the configured one; ``>= T`` = full attention.
            return_all_hiddens: also return every layer's output in ``encoder_states``.

        Returns:
            fairseq's encoder dict: ``encoder_out`` ``[(T, B, D)]``, ``encoder_padding_mask``
            ``[(B, T) bool, True = padding]``, ``encoder_embedding`` ``[]``, ``encoder_states``
            ``[(T, B, D)] * layers`` or ``[]``, ``src_tokens`` ``[]``, ``src_lengths``
            ``[(B,) encoder frames]``.
        """
        self._check_features(src_tokens, "EchoStreamEncoder.forward")
        if src_lengths.dim() != 1 or src_lengths.size(0) != src_tokens.size(0):
            raise ValueError(
                "EchoStreamEncoder.forward: expected src_lengths of shape "
                f"({src_tokens.size(0)},), "
                f"got {tuple(src_lengths.shape)}"
            )
        if src_tokens.size(1) == 0 or int(src_lengths.min()) < 1:
            raise ValueError(
                f"EchoStreamEncoder.forward: every utterance needs >= 1 fbank frame, got lengths "
                f"{src_lengths.tolist()} and {src_tokens.size(1)} padded frames"
            )
        if int(src_lengths.max()) > src_tokens.size(1):
            raise ValueError(
                f"EchoStreamEncoder.forward: src_lengths max {int(src_lengths.max())} exceeds the "
                f"{src_tokens.size(1)} frames of src_tokens"
            )
        segment_length = self.segment_length if segment_length is None else segment_length
        if segment_length < 1:
            raise ValueError(
                f"EchoStreamEncoder.forward: segment_length must be >= 1, got {segment_length}"
            )
        frames, lengths = self.subsample(src_tokens, src_lengths)
        x, hiddens = self.emformer(
            self._embed(frames), lengths, segment_length, return_hiddens=return_all_hiddens
        )
        padding_mask = torch.arange(x.size(1), device=x.device).unsqueeze(0) >= lengths.unsqueeze(1)
        return {
            "encoder_out": [x.transpose(0, 1)],
            "encoder_padding_mask": [padding_mask],
            "encoder_embedding": [],
            "encoder_states": [h.transpose(0, 1) for h in hiddens],
            "src_tokens": [],
            "src_lengths": [lengths],
        }

    def reorder_encoder_out(
        self, encoder_out: Dict[str, List[Tensor]], new_order: Tensor
    ) -> Dict[str, List[Tensor]]:
        """Select / reorder batch entries (beam search), ``new_order`` ``(B',)``."""

        def pick(key: str, dim: int) -> List[Tensor]:
            return [t.index_select(dim, new_order) for t in encoder_out[key]]

        return {
            "encoder_out": pick("encoder_out", 1),
            "encoder_padding_mask": pick("encoder_padding_mask", 0),
            "encoder_embedding": pick("encoder_embedding", 0),
            "encoder_states": pick("encoder_states", 1),
            "src_tokens": pick("src_tokens", 0),
            "src_lengths": pick("src_lengths", 0),
        }

    def init_state(
        self,
        batch_size: int,
        segment_length: Optional[int] = None,
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
    ) -> EncoderState:
        """Start-of-utterance streaming state (default device/dtype: the encoder's parameters).

        ``segment_length`` (encoder frames; default the configured one) is fixed for the stream.
        Every tensor in it has a fixed size for the whole stream: conv caches of ``kernel - 1``
        frames, a pending-fbank buffer of 3 frames, a pending-frame buffer of ``segment +
        right_context - 1`` frames, and per layer ``max_memory_size`` memory slots plus
        ``left_context_length`` keys and values (unfilled slots are zeros and masked out).
        """
        segment_length = self.segment_length if segment_length is None else segment_length
        if segment_length < 1:
            raise ValueError(
                "EchoStreamEncoder.init_state: segment_length must be >= 1, "
                f"got {segment_length}"
            )
        weight = self.linear.weight
        like = weight.new_zeros(0, device=device, dtype=dtype)
        return EncoderState(
            subsampler=self.subsample.init_state(batch_size, like),
            emformer=self.emformer.init_state(batch_size, like, segment_length),
            segment_length=segment_length,
        )

    def infer(
        self, fbank: Tensor, state: EncoderState, final: bool = False
    ) -> Tuple[Tensor, EncoderState]:
        """Stream: consume any number of new fbank frames, emit every complete encoder frame.

        B: batch size; N: new fbank frames (any, 0 included); F: features per frame (80);
        T': encoder frames emitted by this call; D: ``encoder_embed_dim``.

        Args:
            fbank: new fbank frames ``(B, N, F)`` (global-CMVN'd, like ``forward``'s input).
            state: from :meth:`init_state` or the previous call (never reuse an older one).
            final: the utterance ends after ``fbank``: flush everything pending, exactly as
                :meth:`forward` treats the end of an utterance. Start a new utterance with a fresh
                :meth:`init_state` afterwards.

        Returns:
            new encoder frames ``(T', B, D)`` (time-first, like ``forward``'s ``encoder_out``;
            a frame is emitted once its segment and right context are complete) and the new
            state. Concatenating all outputs equals ``forward(...)["encoder_out"][0]`` for the
            same segment length.
        """
        self._check_features(fbank, "EchoStreamEncoder.infer")
        batch_size = state.emformer.processed_frames.size(0)
        if fbank.size(0) != batch_size:
            raise ValueError(
                f"EchoStreamEncoder.infer: expected batch size {batch_size} (the state's), "
                f"got {fbank.size(0)}"
            )
        frames, subsampler_state = self.subsample.infer(fbank, state.subsampler, final)
        out, emformer_state = self.emformer.infer(
            self._embed(frames), state.emformer, state.segment_length, final
        )
        return out.transpose(0, 1), EncoderState(
            subsampler_state, emformer_state, state.segment_length
        )

    @staticmethod
    def stack_states(states: Sequence[EncoderState]) -> EncoderState:
        """Batch single-stream states (equal pending-buffer lengths and segment length)."""
        return stack_states(states)

    @staticmethod
    def unstack_states(state: EncoderState) -> List[EncoderState]:
        """Split a batched state into batch-size-1 states."""
        return unstack_states(state)

    @staticmethod
    def reorder_state(state: EncoderState, new_order: Tensor) -> EncoderState:
        """Select / reorder streams of a batched state, ``new_order`` ``(B',)``."""
        return reorder_state(state, new_order)
