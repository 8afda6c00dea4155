"""Transformer decoder whose cross-attention can be limited per target step.

StreamSpeech trains its MT decoder and its unit decoder with *streaming masks*: target step ``t``
may only attend to the source frames the simultaneous policy would have read by then. fairseq's
decoder layer has no argument for a cross-attention mask, so this module adds one. The parameter
names are exactly fairseq's (``layers.N.self_attn``, ``encoder_attn``, ``fc1``, ...), which is what
StreamSpeech's checkpoints hold under ``target_unigram_decoder.`` and ``decoder.``.

Dimension legend: B batch, T target steps, S source (encoder) frames, D model dim, V vocabulary.
"""

import logging
from typing import Any, Dict, List, Optional, Tuple

import torch.nn.functional as F
from fairseq.models.transformer import TransformerConfig, TransformerDecoder
from fairseq.modules import MultiheadAttention
from fairseq.modules.transformer_layer import TransformerDecoderLayerBase
from torch import Tensor

logger = logging.getLogger(__name__)

__all__ = ["StreamingDecoderLayer", "StreamingTransformerDecoder", "masked_cross_attention"]

IncrementalState = Dict[str, Dict[str, Optional[Tensor]]]


def masked_cross_attention(
    attn: MultiheadAttention,
    query: Tensor,
    key: Tensor,
    key_padding_mask: Optional[Tensor],
    cross_attn_mask: Tensor,
) -> Tensor:
    """Runs ``attn`` (a fairseq MultiheadAttention) with a per-target-step source mask.

    Args:
        query: (T, B, D) decoder states.
        key: (S, B, D_enc) encoder states (also the values).
        key_padding_mask: (B, S) bool, True = padding, or None.
        cross_attn_mask: (B, T, S) or (1, T, S) or (T, S) bool, True = may not attend.
    Returns:
        (T, B, D) attention output (after ``out_proj``), the same math as fairseq's module.
    """
    tgt_len, bsz, _ = query.shape
    src_len = key.size(0)
    heads, head_dim = attn.num_heads, attn.head_dim

    def split_heads(x: Tensor, length: int) -> Tensor:
        return x.view(length, bsz, heads, head_dim).permute(1, 2, 0, 3)  # (B, H, L, d)

    q = split_heads(attn.q_proj(query), tgt_len)
    k = split_heads(attn.k_proj(key), src_len)
    v = split_heads(attn.v_proj(key), src_len)
    blocked = cross_attn_mask
    if blocked.dim() == 2:
        blocked = blocked.unsqueeze(0)
    blocked = blocked.unsqueeze(1)  # (B or 1, 1, T, S)
    if key_padding_mask is not None:
        blocked = blocked | key_padding_mask.bool()[:, None, None, :]
    # A row with every frame blocked would give NaN; the masks we build always leave frame 0
    # visible, but keep the guard so a bad mask degrades to full attention, not NaN.
    blocked = blocked & ~blocked.all(dim=-1, keepdim=True)
    dropout_p = attn.dropout_module.p if attn.training else 0.0
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=~blocked, dropout_p=dropout_p)
    out = out.permute(2, 0, 1, 3).reshape(tgt_len, bsz, heads * head_dim)
    return attn.out_proj(out)


class StreamingDecoderLayer(TransformerDecoderLayerBase):
    """fairseq's decoder layer plus an optional cross-attention mask (training path only)."""

    def forward(  # type: ignore[override]
        self,
        x: Tensor,
        encoder_out: Optional[Tensor] = None,
        encoder_padding_mask: Optional[Tensor] = None,
        incremental_state: Optional[IncrementalState] = None,
        prev_self_attn_state: Optional[List[Tensor]] = None,
        prev_attn_state: Optional[List[Tensor]] = None,
        self_attn_mask: Optional[Tensor] = None,
        self_attn_padding_mask: Optional[Tensor] = None,
        need_attn: bool = False,
        need_head_weights: bool = False,
        cross_attn_mask: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Optional[Tensor], Optional[List[Tensor]]]:
        """x: (T, B, D); encoder_out: (S, B, D_enc); cross_attn_mask: see masked_cross_attention."""
        if cross_attn_mask is None or encoder_out is None:
            return super().forward(
                x, encoder_out, encoder_padding_mask, incremental_state, prev_self_attn_state,
                prev_attn_state, self_attn_mask, self_attn_padding_mask, need_attn,
                need_head_weights,
            )
        # Masked path: the same sub-blocks as fairseq's forward, cross-attention masked.
        residual = x
        if self.normalize_before:
            x = self.self_attn_layer_norm(x)
        x, _ = self.self_attn(
            query=x, key=x, value=x, key_padding_mask=self_attn_padding_mask,
            incremental_state=incremental_state, need_weights=False, attn_mask=self_attn_mask,
        )
        x = self.residual_connection(self.dropout_module(x), residual)
        if not self.normalize_before:
            x = self.self_attn_layer_norm(x)

        residual = x
        if self.normalize_before:
            x = self.encoder_attn_layer_norm(x)
        x = masked_cross_attention(
            self.encoder_attn, x, encoder_out, encoder_padding_mask, cross_attn_mask
        )
        x = self.residual_connection(self.dropout_module(x), residual)
        if not self.normalize_before:
            x = self.encoder_attn_layer_norm(x)

        residual = x
        if self.normalize_before:
            x = self.final_layer_norm(x)
        x = self.activation_dropout_module(self.activation_fn(self.fc1(x)))
        x = self.dropout_module(self.fc2(x))
        x = self.residual_connection(x, residual)
        if not self.normalize_before:
            x = self.final_layer_norm(x)
        return x, None, None


class StreamingTransformerDecoder(TransformerDecoder):
    """fairseq's TransformerDecoder (same state dict) whose forward takes a cross-attention mask.

    Used as the MT (first-pass) decoder, ``target_unigram_decoder.`` in StreamSpeech.
    """

    def build_decoder_layer(
        self, args: Any, no_encoder_attn: bool = False
    ) -> StreamingDecoderLayer:
        return StreamingDecoderLayer(TransformerConfig.from_namespace(args), no_encoder_attn)

    def forward(  # type: ignore[override]
        self,
        prev_output_tokens: Tensor,
        encoder_out: Optional[Dict[str, List[Tensor]]] = None,
        incremental_state: Optional[IncrementalState] = None,
        features_only: bool = False,
        full_context_alignment: bool = False,
        alignment_layer: Optional[int] = None,
        alignment_heads: Optional[int] = None,
        src_lengths: Optional[Any] = None,
        return_all_hiddens: bool = False,
        cross_attn_mask: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Dict[str, Any]]:
        """
        Args:
            prev_output_tokens: (B, T) teacher-forced tokens.
            encoder_out: fairseq encoder dict (``encoder_out`` [(S, B, D_enc)], padding [(B, S)]).
            cross_attn_mask: (B, T, S) bool, True = target step may not see the frame; None = all.
        Returns:
            logits (B, T, V) (or features (B, T, D)) and ``{"attn", "inner_states"}``; the
            inner states are (T, B, D), the last one before the final layer norm (as fairseq).
        """
        if cross_attn_mask is None:
            return super().forward(
                prev_output_tokens, encoder_out=encoder_out, incremental_state=incremental_state,
                features_only=features_only, full_context_alignment=full_context_alignment,
                alignment_layer=alignment_layer, alignment_heads=alignment_heads,
                src_lengths=src_lengths, return_all_hiddens=return_all_hiddens,
            )
        if incremental_state is not None:
            raise ValueError("cross_attn_mask is a training-time mask; incremental decoding "
                             "limits the source by what has been encoded instead")
        x = self.embed_scale * self.embed_tokens(prev_output_tokens)
        if self.project_in_dim is not None:
            x = self.project_in_dim(x)
        if self.embed_positions is not None:
            x = x + self.embed_positions(prev_output_tokens)
        if self.layernorm_embedding is not None:
            x = self.layernorm_embedding(x)
        x = self.dropout_module(x).transpose(0, 1)
        self_pad = prev_output_tokens.eq(self.padding_idx)
        x, inner_states = self.run_layers(
            x, encoder_out, self.buffered_future_mask(x),
            self_pad if self_pad.any() else None, cross_attn_mask,
        )
        return self.project_output(x, features_only), {"attn": [None], "inner_states": inner_states}

    def project_output(self, x: Tensor, features_only: bool) -> Tensor:
        """Final LayerNorm and output projection: ``(T, B, D)`` states -> ``(B, T, V)`` logits
        (or ``(B, T, D)`` features when ``features_only``)."""
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        x = x.transpose(0, 1)
        if self.project_out_dim is not None:
            x = self.project_out_dim(x)
        return x if features_only else self.output_layer(x)

    def run_layers(
        self,
        x: Tensor,
        encoder_out: Optional[Dict[str, List[Tensor]]],
        self_attn_mask: Optional[Tensor],
        self_attn_padding_mask: Optional[Tensor],
        cross_attn_mask: Optional[Tensor],
        incremental_state: Optional[IncrementalState] = None,
    ) -> Tuple[Tensor, List[Optional[Tensor]]]:
        """Runs every layer on x (T, B, D); returns the output and the inner states."""
        enc: Optional[Tensor] = None
        enc_pad: Optional[Tensor] = None
        if encoder_out is not None and len(encoder_out["encoder_out"]) > 0:
            enc = encoder_out["encoder_out"][0]
        if encoder_out is not None and len(encoder_out["encoder_padding_mask"]) > 0:
            enc_pad = encoder_out["encoder_padding_mask"][0]
        inner_states: List[Optional[Tensor]] = [x]
        for layer in self.layers:
            x, _, _ = layer(
                x, enc, enc_pad, incremental_state, self_attn_mask=self_attn_mask,
                self_attn_padding_mask=self_attn_padding_mask, cross_attn_mask=cross_attn_mask,
            )
            inner_states.append(x)
        return x, inner_states
