"""Text-to-unit part: T2U encoder over MT decoder states and the non-autoregressive unit CTC
decoder.

Same parameter names as StreamSpeech's ``synthesizer_encoder.`` (``UniTransformerEncoderNoEmb``) and
``decoder.`` (``CTCTransformerUnitDecoder``), so their weights load unchanged.

Dimension legend: B batch, T MT steps (T2U states), R upsample rate, U = T * R upsampled steps,
D model dim, V unit vocabulary (units + 4 specials + ``<blank>``).
"""

import logging
from argparse import Namespace
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from fairseq import utils
from fairseq.data import Dictionary
from fairseq.models import FairseqEncoder
from fairseq.modules import LayerNorm, TransformerEncoderLayer
from torch import Tensor

from echostream_fairseq.models.text_decoder import StreamingTransformerDecoder

logger = logging.getLogger(__name__)

__all__ = ["T2UEncoder", "CTCUnitDecoder", "unit_cross_attention_mask"]


def _future_mask(length: int, like: Tensor) -> Tensor:
    """(L, L) float mask, -inf above the diagonal (fairseq's additive convention)."""
    return torch.triu(utils.fill_with_neg_inf(like.new_zeros(length, length)), 1)


class T2UEncoder(FairseqEncoder):
    """Transformer layers without embeddings over the MT decoder's final states.

    ``causal`` (StreamSpeech's ``--uni-encoder``) makes every position see only earlier ones, so
    T2U states of an already-written text prefix never change when more text arrives.
    """

    def __init__(self, args: Namespace, causal: bool) -> None:
        super().__init__(None)
        self.layers = nn.ModuleList(
            [TransformerEncoderLayer(args) for _ in range(args.encoder_layers)]
        )
        self.layer_norm = (
            LayerNorm(args.encoder_embed_dim) if args.encoder_normalize_before else None
        )
        self.causal = causal

    def forward(  # type: ignore[override]
        self, x: Tensor, padding_mask: Optional[Tensor], return_all_hiddens: bool = False
    ) -> Dict[str, List[Tensor]]:
        """
        Args:
            x: (T, B, D) MT decoder states (after its final layer norm).
            padding_mask: (B, T) bool, True = padding, or None.
        Returns:
            fairseq encoder dict: ``encoder_out`` [(T, B, D)], ``encoder_padding_mask`` [(B, T)]
            (empty when nothing is padded), ``encoder_states`` (per layer if asked).
        """
        attn_mask = _future_mask(x.size(0), x) if self.causal else None
        states: List[Tensor] = []
        for layer in self.layers:
            x = layer(x, padding_mask, attn_mask=attn_mask)
            if return_all_hiddens:
                states.append(x)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        has_pad = padding_mask is not None and bool(padding_mask.any())
        return {
            "encoder_out": [x],
            "encoder_padding_mask": [padding_mask] if has_pad else [],
            "encoder_embedding": [],
            "encoder_states": states,
            "src_tokens": [],
            "src_lengths": [],
        }

    def reorder_encoder_out(
        self, encoder_out: Dict[str, List[Tensor]], new_order: Tensor
    ) -> Dict[str, List[Tensor]]:
        return {
            "encoder_out": [x.index_select(1, new_order) for x in encoder_out["encoder_out"]],
            "encoder_padding_mask": [
                x.index_select(0, new_order) for x in encoder_out["encoder_padding_mask"]
            ],
            "encoder_embedding": [],
            "encoder_states": [x.index_select(1, new_order) for x in encoder_out["encoder_states"]],
            "src_tokens": [],
            "src_lengths": [],
        }


def unit_cross_attention_mask(
    num_upsampled: int, num_states: int, rate: int, k2: int, n2: int, device: torch.device,
    first: int = 0,
) -> Tensor:
    """StreamSpeech's T2U wait-k mask: upsampled step i sees T2U states
    j < (i // (n2 R) + 1) n2 + k2.

    Returns (U - first, S) bool, the rows of steps ``first..U-1``, True = blocked; at least state 0
    is always visible.
    """
    i = torch.arange(first, num_upsampled, device=device).unsqueeze(1)
    visible = ((i // (n2 * rate) + 1) * n2 + k2).clamp(1, num_states)
    j = torch.arange(num_states, device=device).unsqueeze(0)
    return j >= visible


class CTCUnitDecoder(StreamingTransformerDecoder):
    """Repeats each T2U state ``ctc_upsample_rate`` times, runs causal Transformer layers with
    cross-attention to the T2U states, and projects to units for CTC (blank = ``<blank>``).

    ``positions``: "time" adds sinusoidal positions along the upsampled time axis. "streamspeech"
    reproduces StreamSpeech's call ``embed_positions(x[:, :, 0])`` on a (U, B) slice, which indexes
    the positions by *batch element* (a constant at batch size 1): use it to run a StreamSpeech
    checkpoint's unit decoder exactly as it was trained.
    """

    def __init__(
        self, args: Namespace, dictionary: Dictionary, embed_tokens: nn.Module, positions: str
    ) -> None:
        super().__init__(args, dictionary, embed_tokens)
        self.ctc_upsample_rate = args.ctc_upsample_rate
        if positions not in ("time", "streamspeech"):
            raise ValueError(
                f"unit decoder positions must be 'time' or 'streamspeech', got {positions!r}"
            )
        self.positions = positions

    def forward(  # type: ignore[override]
        self,
        prev_output_tokens: Optional[Tensor],
        encoder_out: Optional[Dict[str, List[Tensor]]] = None,
        incremental_state: Optional[Any] = None,
        features_only: bool = False,
        k2: Optional[int] = None,
        n2: Optional[int] = None,
        **unused: Any,
    ) -> Tuple[Tensor, Dict[str, Any]]:
        """
        Args:
            prev_output_tokens: unused (non-autoregressive; kept for fairseq's interface).
            encoder_out: T2U encoder dict, ``encoder_out`` [(T, B, D)], padding [(B, T)].
            k2, n2: StreamSpeech's ``--k2``/``--n2`` training mask; None = see every state.
        Returns:
            logits (B, U, V) and
            ``{"attn", "inner_states", "decoder_padding_mask" (B, U) or None}``.
        """
        if encoder_out is None:
            raise ValueError("the unit CTC decoder needs the T2U encoder output")
        if incremental_state is not None:
            raise ValueError("the unit CTC decoder is non-autoregressive: call it on the whole "
                             "T2U prefix (causal layers keep earlier outputs unchanged)")
        enc = encoder_out["encoder_out"][0]
        pad = (
            encoder_out["encoder_padding_mask"][0] if encoder_out["encoder_padding_mask"] else None
        )
        num_states, bsz, dim = enc.shape
        rate = self.ctc_upsample_rate
        x = enc.repeat_interleave(rate, dim=0)  # (U, B, D): state t fills steps t*R .. t*R+R-1
        if self.embed_positions is not None:
            if self.positions == "time":
                # any non-pad token id gives positions 1..U (pad-offset), i.e. plain time indices
                dummy = torch.full((bsz, x.size(0)), self.dictionary.eos(), device=x.device)
                x = x + self.embed_positions(dummy).transpose(0, 1)
            else:
                x = x + self.embed_positions(x[:, :, 0])
        x = self.dropout_module(x)

        self_pad = pad.repeat_interleave(rate, dim=1) if pad is not None else None
        cross_mask = None
        if k2 is not None and n2 is not None:
            cross_mask = unit_cross_attention_mask(
                x.size(0), num_states, rate, k2, n2, x.device
            )
        x, inner_states = self.run_layers(
            x, encoder_out, _future_mask(x.size(0), x), self_pad, cross_mask
        )
        x = self.project_output(x, features_only)
        return x, {"attn": [None], "inner_states": inner_states, "decoder_padding_mask": self_pad}
