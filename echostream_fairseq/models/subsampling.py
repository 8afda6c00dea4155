"""Causal Conv1d front end: fbank frames -> encoder frames at 1/4 the rate (40 ms).

Mirrors StreamSpeech's ``Conv1dSubsampler`` (keys ``conv_layers.{i}.{weight,bias}``; each conv has
stride 2 and is followed by a GLU over channels) but pads on the left only, so output frame ``t``
sees input frames up to its own position and never the future. Streaming keeps the last
``kernel - 1`` input frames of every conv as its cache; zeros stand for the training forward's
zero left padding, so both paths compute the same numbers.
"""

import logging
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from echostream_fairseq.models.state import SubsamplerState, hold_pending, pending_frames

__all__ = ["CausalConv1dSubsampler", "subsampled_lengths"]

logger = logging.getLogger(__name__)

_STRIDE = 2  # every conv halves the frame rate; two convs give 10 ms -> 40 ms


def subsampled_lengths(lengths: Tensor, num_layers: int) -> Tensor:
    """Output frames of ``num_layers`` causal stride-2 convs for ``lengths`` input frames.

    A causal conv with ``kernel - 1`` frames of left padding and stride 2 turns ``n`` frames
    into ``ceil(n / 2)``; repeated, ``ceil(n / 4)`` for two layers (1 fbank frame -> 1 frame).
    This is the one place that formula lives.
    """
    for _ in range(num_layers):
        lengths = torch.div(lengths + _STRIDE - 1, _STRIDE, rounding_mode="floor")
    return lengths


class CausalConv1dSubsampler(nn.Module):
    """Stack of causal Conv1d (stride 2) + GLU layers.

    Args:
        in_channels: input feature size per frame (F, e.g. 80).
        mid_channels: output channels of the inner convs before GLU (1024 in StreamSpeech).
        out_channels: output feature size per frame (D).
        kernel_sizes: one kernel size per conv layer.
    """

    def __init__(
        self, in_channels: int, mid_channels: int, out_channels: int, kernel_sizes: Sequence[int]
    ):
        super().__init__()
        if not kernel_sizes:
            raise ValueError("CausalConv1dSubsampler: expected at least one kernel size, got none")
        if mid_channels % 2 != 0:
            raise ValueError(
                "CausalConv1dSubsampler: mid_channels must be even (GLU halves it), "
                f"got {mid_channels}"
            )
        self.in_channels = in_channels
        self.kernel_sizes = [int(k) for k in kernel_sizes]
        last = len(self.kernel_sizes) - 1
        self.conv_layers = nn.ModuleList(
            nn.Conv1d(
                in_channels if i == 0 else mid_channels // 2,
                mid_channels if i < last else out_channels * 2,
                kernel,
                stride=_STRIDE,
            )
            for i, kernel in enumerate(self.kernel_sizes)
        )

    @property
    def subsampling(self) -> int:
        """Input frames per output frame."""
        return _STRIDE ** len(self.conv_layers)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return subsampled_lengths(lengths, len(self.conv_layers))

    def _convolve(self, x: Tensor, caches: Sequence[Tensor]) -> Tuple[Tensor, List[Tensor]]:
        """Shared math of ``forward`` and ``infer``: each conv sees its cache then the new frames.

        ``x`` is ``(B, T, C)``; each cache ``(B, K-1, C_in)``. Returns ``(B, T', D)`` and the new
        caches (the last ``K-1`` input frames of every conv).
        """
        new_caches: List[Tensor] = []
        for conv, kernel, cache in zip(self.conv_layers, self.kernel_sizes, caches):
            x = torch.cat([cache, x], dim=1)
            new_caches.append(x[:, x.size(1) - (kernel - 1) :])
            x = F.glu(conv(x.transpose(1, 2)), dim=1).transpose(1, 2)
        return x, new_caches

    def _zero_caches(self, batch_size: int, like: Tensor) -> List[Tensor]:
        channels = [conv.in_channels for conv in self.conv_layers]
        return [like.new_zeros(batch_size, k - 1, c) for k, c in zip(self.kernel_sizes, channels)]

    def forward(self, x: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
        """Subsample whole utterances.

        B: batch size; T: input frames; F: input features; T': output frames; D: output features.

        Args:
            x: fbank features, ``(B, T, F)``, ``T >= 1``.
            lengths: valid input frames per utterance, ``(B,)``.

        Returns:
            ``(B, T', D)`` frames with ``T' = ceil(T / subsampling)``, and output lengths ``(B,)``.
        """
        out, _ = self._convolve(x, self._zero_caches(x.size(0), x))
        return out, self.output_lengths(lengths)

    def init_state(self, batch_size: int, like: Tensor) -> SubsamplerState:
        """Start-of-utterance state on ``like``'s device and dtype."""
        pending, count = hold_pending(
            like.new_zeros(batch_size, 0, self.in_channels), self.subsampling - 1
        )
        caches = tuple(self._zero_caches(batch_size, like))
        return SubsamplerState(conv_caches=caches, pending=pending, num_pending=count)

    def infer(
        self, x: Tensor, state: SubsamplerState, final: bool
    ) -> Tuple[Tensor, SubsamplerState]:
        """Subsample a stream piece by piece; equal to :meth:`forward` on the concatenation.

        B: batch size; N: new input frames; F: input features; T': emitted frames;
        D: output features.

        Args:
            x: new fbank frames, ``(B, N, F)``, any ``N >= 0``.
            state: state from :meth:`init_state` or the previous call.
            final: the utterance ends after ``x``: consume every pending frame.

        Returns:
            emitted frames ``(B, T', D)`` and the new state. Without ``final`` only whole groups
            of ``subsampling`` frames are consumed (the rest waits in ``state.pending``), which
            keeps every conv's output count exact and its cache at ``K - 1`` frames.
        """
        x = torch.cat([pending_frames(state.pending, state.num_pending), x], dim=1)
        usable = x.size(1) if final else x.size(1) - x.size(1) % self.subsampling
        pending, count = hold_pending(x[:, usable:], self.subsampling - 1)
        if usable == 0:
            empty = x.new_zeros(x.size(0), 0, self.conv_layers[-1].out_channels // 2)
            return empty, SubsamplerState(state.conv_caches, pending, count)
        out, caches = self._convolve(x[:, :usable], state.conv_caches)
        return out, SubsamplerState(tuple(caches), pending, count)
