"""Incremental text-to-unit decoding: T2U states and unit CTC labels computed for new text only.

The written MT subwords never change, and their decoder states are final once written. With a
causal T2U encoder (``--uni-encoder``) the T2U state of subword t depends only on subwords
``<= t``; the unit CTC decoder's self-attention is causal, and at inference we give its
cross-attention StreamSpeech's training mask (``--k2``/``--n2``, :func:`unit_cross_attention_mask`):
upsampled step i sees the T2U states ``j < (i // (n2 R) + 1) n2 + k2``. So the units of earlier
text never change, and each write costs only the new subwords: keys/values of earlier positions
stay in fairseq's incremental caches. StreamSpeech instead recomputes T2U and the unit decoder
over the whole translation at every write (:class:`FullRecomputeUnits`, our baseline mode).

Dimension legend: T written subwords (T2U states), R upsample rate, U = T * R unit-decoder steps,
D model dim, V unit vocabulary.
"""

from __future__ import annotations

import logging
from typing import Dict, List, Optional

import torch
from fairseq import utils
from torch import Tensor

# the CTC rules live in decoding/ (offline generation shares them); re-exported for old imports
from echostream_fairseq.decoding.ctc import (UNIT_BLANK_PENALTY_HELP, CtcCollapser, UnitCollapser,
                                             best_unit_labels, collapse_unit_labels)
from echostream_fairseq.models.t2u import unit_cross_attention_mask

logger = logging.getLogger(__name__)

__all__ = ["CtcCollapser", "FullRecomputeUnits", "IncrementalUnits", "UNIT_BLANK_PENALTY_HELP",
           "best_unit_labels", "collapse_unit_labels",
           "decodable_unit_steps"]

#: Unit-decoder steps decoded per call: one call holds (steps x all steps) attention scores and
#: masks, so a whole-utterance decode in one call grew quadratically (15100 steps: +4.3 GB).
MAX_STEPS_PER_CALL = 512

IncrementalState = Dict[str, Dict[str, Optional[Tensor]]]


def _causal_block_mask(new: int, total: int, like: Tensor) -> Tensor:
    """(new, total) additive mask: new query q (absolute position total - new + q) sees keys
    <= it."""
    mask = like.new_zeros(new, total)
    offset = total - new
    return torch.triu(utils.fill_with_neg_inf(mask), offset + 1)


def decodable_unit_steps(num_states: int, rate: int, k2: int, n2: int, final: bool) -> int:
    """Unit-decoder steps whose visible T2U states all exist (all ``num_states * rate`` when
    final): step i sees ``(i // (n2 R) + 1) n2 + k2`` states, so whole n2-blocks count."""
    total = num_states * rate
    if final:
        return total
    blocks = (num_states - k2) // n2
    return max(0, min(total, blocks * n2 * rate))


class IncrementalUnits:
    """Units of a growing translation, computing only what the new subwords add.

    Args:
        model: an ``echostream`` model (``synthesizer_encoder`` causal or absent, ``decoder``).
        unit_dict: the unit dictionary (with ``blank_index``).
        k2, n2: the unit decoder's cross-attention mask (StreamSpeech's ``--k2``/``--n2``);
            ``k2 > 0`` holds the units of the last subwords back until more text (or the
            end) arrives.
        blank_penalty: see :func:`~echostream_fairseq.decoding.ctc.best_unit_labels`
            (0: plain greedy CTC, as StreamSpeech).
    """

    def __init__(self, model, unit_dict, k2: int = 0, n2: int = 1,
                 blank_penalty: float = 0.0) -> None:
        t2u = model.synthesizer_encoder
        if t2u is not None and not t2u.causal:
            raise ValueError("incremental units need a causal T2U encoder (--uni-encoder); "
                             "use FullRecomputeUnits for a bidirectional one")
        if k2 < 0 or n2 < 1:
            raise ValueError(f"unit mask needs k2 >= 0 and n2 >= 1, got {k2}, {n2}")
        self.t2u, self.decoder = t2u, model.decoder
        self.rate = self.decoder.ctc_upsample_rate
        self.k2, self.n2 = k2, n2
        self.blank_penalty = blank_penalty
        self._collapse = UnitCollapser(unit_dict)
        self._t2u_state: IncrementalState = {}
        self._decoder_state: IncrementalState = {}
        self._t2u_out: List[Tensor] = []  # (1, 1, D) per subword
        self._steps_done = 0  # unit-decoder steps already decoded
        self._positions: Optional[Tensor] = None

    def extend(self, new_states: List[Tensor], final: bool) -> List[int]:
        """MT decoder states (D,) of newly written subwords -> newly final unit ids."""
        if new_states:
            self._t2u_out.append(self._t2u_step(torch.stack(new_states).unsqueeze(1)))
            if len(self._t2u_out) > 1:
                self._t2u_out = [torch.cat(self._t2u_out, dim=0)]
        if not self._t2u_out:
            return []
        states = self._t2u_out[0]  # (T, 1, D)
        end = decodable_unit_steps(states.size(0), self.rate, self.k2, self.n2, final)
        if end <= self._steps_done:
            return []
        labels: List[int] = []
        for start in range(self._steps_done, end, MAX_STEPS_PER_CALL):
            labels += self._decode_steps(states, start, min(end, start + MAX_STEPS_PER_CALL))
        self._steps_done = end
        return self._collapse(labels)

    def _t2u_step(self, x: Tensor) -> Tensor:
        """T2U states of new subwords x (T', 1, D); earlier keys/values come from the cache."""
        if self.t2u is None:
            return x
        for layer in self.t2u.layers:
            x = _encoder_layer_incremental(layer, x, self._t2u_state)
        if self.t2u.layer_norm is not None:
            x = self.t2u.layer_norm(x)
        return x

    def _time_positions(self, length: int) -> Tensor:
        """(>= length, 1, D) positions of the unit decoder's time axis, grown by doubling so
        that a write round does not rebuild them for the whole stream."""
        if self._positions is None or self._positions.size(0) < length:
            size = max(length, 2 * (0 if self._positions is None else self._positions.size(0)))
            dummy = torch.full((1, size), self.decoder.dictionary.eos(), dtype=torch.long)
            self._positions = self.decoder.embed_positions(dummy).transpose(0, 1)
        return self._positions

    def _decode_steps(self, states: Tensor, start: int, end: int) -> List[int]:
        decoder = self.decoder
        # only the T2U states these steps repeat, so a call costs its own steps, not the stream's
        first = start // self.rate
        needed = states[first:(end - 1) // self.rate + 1]
        offset = start - first * self.rate
        x = needed.repeat_interleave(self.rate, dim=0)[offset:offset + end - start]  # (U', 1, D)
        if decoder.embed_positions is not None:
            if decoder.positions == "time":
                x = x + self._time_positions(end)[start:end]
            else:  # StreamSpeech's positions indexed by batch element (see CTCUnitDecoder)
                x = x + decoder.embed_positions(x[:, :, 0])
        cross_mask = unit_cross_attention_mask(end, states.size(0), self.rate, self.k2, self.n2,
                                               x.device, first=start)
        x, _ = decoder.run_layers(x, {"encoder_out": [states], "encoder_padding_mask": []},
                                  _causal_block_mask(end - start, end, x), None, cross_mask,
                                  incremental_state=self._decoder_state)
        logits = decoder.project_output(x, features_only=False)  # (1, U', V)
        return best_unit_labels(logits[0], self._collapse.unit_dict, self.blank_penalty).tolist()


def _encoder_layer_incremental(layer, x: Tensor, state: IncrementalState) -> Tensor:
    """fairseq's ``TransformerEncoderLayer.forward`` (eval mode) for new positions x (T', 1, D)
    under a causal mask, with the keys/values of earlier positions in ``state``."""
    residual = x
    if layer.normalize_before:
        x = layer.self_attn_layer_norm(x)
    prev = layer.self_attn._get_input_buffer(state).get("prev_key")
    total = x.size(0) + (prev.size(2) if prev is not None else 0)
    mask = _causal_block_mask(x.size(0), total, x)
    # fairseq's encoder layer turns masked entries into -1e8 rather than -inf; match it
    mask = mask.masked_fill(mask.isinf(), -1e8)
    x, _ = layer.self_attn(query=x, key=x, value=x, key_padding_mask=None,
                           incremental_state=state, need_weights=False, attn_mask=mask)
    x = layer.residual_connection(layer.dropout_module(x), residual)
    if not layer.normalize_before:
        x = layer.self_attn_layer_norm(x)
    residual = x
    if layer.normalize_before:
        x = layer.final_layer_norm(x)
    x = layer.fc2(layer.activation_dropout_module(layer.activation_fn(layer.fc1(x))))
    x = layer.residual_connection(layer.dropout_module(x), residual)
    if not layer.normalize_before:
        x = layer.final_layer_norm(x)
    return x


class FullRecomputeUnits:
    """StreamSpeech's way (the baseline): T2U and the unit decoder over the whole translation at
    every write; the units past those already emitted are returned. With the same mask as
    :class:`IncrementalUnits` it returns the same units (for a bidirectional T2U encoder, the
    only choice, earlier units may change and only the new tail is emitted, as StreamSpeech)."""

    def __init__(self, model, unit_dict, k2: int = 0, n2: int = 1,
                 blank_penalty: float = 0.0) -> None:
        self.model, self.unit_dict = model, unit_dict
        self.k2, self.n2 = k2, n2
        self.blank_penalty = blank_penalty
        self._states: List[Tensor] = []
        self._emitted = 0

    def extend(self, new_states: List[Tensor], final: bool) -> List[int]:
        self._states.extend(new_states)
        if not self._states or (not new_states and not final):
            return []
        x = torch.stack(self._states).unsqueeze(1)  # (T, 1, D)
        if self.model.synthesizer_encoder is not None:
            t2u_out = self.model.synthesizer_encoder(x, None)
        else:
            t2u_out = {"encoder_out": [x], "encoder_padding_mask": []}
        logits, _ = self.model.decoder(None, encoder_out=t2u_out, k2=self.k2, n2=self.n2)
        end = decodable_unit_steps(len(self._states), self.model.decoder.ctc_upsample_rate,
                                   self.k2, self.n2, final)
        labels = best_unit_labels(logits[0, :end], self.unit_dict, self.blank_penalty)
        units = collapse_unit_labels(labels.tolist(), self.unit_dict)
        new = units[self._emitted:]
        self._emitted = max(self._emitted, len(units))
        return new
