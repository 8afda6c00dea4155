"""Incremental greedy MT decoding, sentence by sentence, with bounded storage and no O(T) copies.

:class:`IncrementalMT` owns one sentence's MT state: the written subwords and their decoder
states, and per decoder layer two :class:`KeyValueStore` (storage that grows by doubling): the
self-attention keys/values of the fed positions, and the cross-attention keys/values of the
sentence's encoder frames, projected once, when the frames arrive. :class:`MTStepper` runs
fairseq's decoder math for one position of many sentences at once over views of those stores,
so a write round copies nothing of a cache (fairseq's incremental state concatenated the whole
cross-attention cache at every round and the self-attention cache at every subword). The
pipeline starts a new :class:`IncrementalMT` at every sentence end, so memory is bounded by the
longest sentence, not by the stream.

:class:`RecomputeStepper` (with :class:`RecomputeMT` sentences) is StreamSpeech's MT generator
(``use_incremental_states=False``), fairseq's own decoder over the whole prefix and the whole
encoder output for every subword; the re-encoding baseline uses it, and the tests hold both to
the same text. Dimension legend: T
encoder frames of the sentence, B sentences in a batch, H heads, d head dim, D model dim,
V vocabulary.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from echostream_fairseq.decoding.text import WORD_START
from echostream_fairseq.streaming.policy import WRITE_TO_END

__all__ = ["IncrementalMT", "KeyValueStore", "MTStepper", "RecomputeMT", "RecomputeStepper"]

#: first capacity of a key/value store, in encoder frames (a few seconds of source)
INITIAL_FRAMES = 64


class KeyValueStore:
    """Keys and values ``(B, H, capacity, d)`` of one attention layer; capacity doubles when
    full, so appending T frames in all costs O(T) amortised and a read is a view."""

    def __init__(self) -> None:
        self.keys: Optional[Tensor] = None
        self.values: Optional[Tensor] = None
        self.length = 0

    @property
    def capacity(self) -> int:
        return 0 if self.keys is None else self.keys.size(2)

    def append(self, keys: Tensor, values: Tensor) -> None:
        """keys, values: (B, H, T', d) of new frames."""
        end = self.length + keys.size(2)
        if end > self.capacity:
            size = max(end, 2 * self.capacity, INITIAL_FRAMES)
            grown_keys = keys.new_zeros(keys.size(0), keys.size(1), size, keys.size(3))
            grown_values = torch.zeros_like(grown_keys)
            if self.keys is not None:
                grown_keys[:, :, :self.length] = self.keys[:, :, :self.length]
                grown_values[:, :, :self.length] = self.values[:, :, :self.length]
            self.keys, self.values = grown_keys, grown_values
        self.keys[:, :, self.length:end] = keys
        self.values[:, :, self.length:end] = values
        self.length = end

    def view(self) -> Tuple[Tensor, Tensor]:
        """(B, H, length, d) views of the stored keys and values (no copy)."""
        return self.keys[:, :, :self.length], self.values[:, :, :self.length]

    def nbytes(self) -> int:
        if self.keys is None:
            return 0
        return 2 * self.keys.numel() * self.keys.element_size()


class MTStepper:
    """One greedy step of the MT decoder for many sentences at once, on their own storage.

    The math of fairseq's ``TransformerDecoder`` in eval mode (embeddings, positions, per layer
    self-attention, cross-attention and FFN with their residuals and norms, the final norm);
    the projections and the FFN run once over all sentences, the attention of each sentence over
    its own keys/values (views of its :class:`KeyValueStore`, so nothing is padded or copied).
    A sentence's step gives the same result alone or in a batch, up to float rounding.
    """

    def __init__(self, decoder: Any, dictionary: Any,
                 t2u_input: Optional[Callable[[Tensor, Tensor], Tensor]] = None) -> None:
        for layer in decoder.layers:
            if layer.c_attn is not None:
                raise ValueError("MT decoder layers with scaled heads (NormFormer's "
                                 "--scale-heads) are not supported by the streaming decoder")
        self.decoder, self.dictionary = decoder, dictionary
        # the model's rule from a decoder state and the subword it predicted to T2U's input
        self.t2u_input = t2u_input or (lambda states, predicted: states)
        self._positions: Optional[Tensor] = None

    def _position_table(self, length: int) -> Tensor:
        """(>= length, D) position embeddings of target positions 0.., grown by doubling."""
        if self._positions is None or self._positions.size(0) < length:
            size = max(length, 2 * (0 if self._positions is None else self._positions.size(0)),
                       INITIAL_FRAMES)
            dummy = torch.full((1, size), self.dictionary.eos(), dtype=torch.long)
            self._positions = self.decoder.embed_positions(dummy)[0]
        return self._positions

    def step(self, sentences: Sequence["IncrementalMT"]) -> Tensor:
        """Feed each sentence's last written subword (``</s>`` at its start) at its next
        position, extend its self-attention store: the decoder states (B, D) there."""
        decoder = self.decoder
        eos = self.dictionary.eos()
        tokens = torch.tensor([s.tokens[-1] if s.tokens else eos for s in sentences])
        x = decoder.embed_scale * decoder.embed_tokens(tokens)  # (B, D)
        if decoder.project_in_dim is not None:
            x = decoder.project_in_dim(x)
        if decoder.embed_positions is not None:
            positions = [len(s.tokens) for s in sentences]
            x = x + self._position_table(max(positions) + 1)[positions]
        if decoder.layernorm_embedding is not None:
            x = decoder.layernorm_embedding(x)
        for index, layer in enumerate(decoder.layers):
            residual = x
            if layer.normalize_before:
                x = layer.self_attn_layer_norm(x)
            x = self._attend(layer.self_attn, x, [s.self_stores[index] for s in sentences],
                             append=True)
            if layer.attn_ln is not None:
                x = layer.attn_ln(x)
            x = layer.residual_connection(x, residual)
            if not layer.normalize_before:
                x = layer.self_attn_layer_norm(x)
            if layer.encoder_attn is not None:
                residual = x
                if layer.normalize_before:
                    x = layer.encoder_attn_layer_norm(x)
                x = self._attend(layer.encoder_attn, x,
                                 [s.cross_stores[index] for s in sentences], append=False)
                x = layer.residual_connection(x, residual)
                if not layer.normalize_before:
                    x = layer.encoder_attn_layer_norm(x)
            residual = x
            if layer.normalize_before:
                x = layer.final_layer_norm(x)
            x = layer.activation_fn(layer.fc1(x))
            if layer.ffn_layernorm is not None:
                x = layer.ffn_layernorm(x)
            x = layer.fc2(x)
            if layer.w_resid is not None:
                residual = torch.mul(layer.w_resid, residual)
            x = layer.residual_connection(x, residual)
            if not layer.normalize_before:
                x = layer.final_layer_norm(x)
        if decoder.layer_norm is not None:
            x = decoder.layer_norm(x)
        if decoder.project_out_dim is not None:
            x = decoder.project_out_dim(x)
        return x

    @staticmethod
    def _attend(attn: Any, x: Tensor, stores: Sequence[KeyValueStore], append: bool) -> Tensor:
        """fairseq's MultiheadAttention for one query per sentence, x (B, D); ``append``: this
        step's key/value joins each store first (self-attention)."""
        batch, heads, head_dim = x.size(0), attn.num_heads, attn.head_dim
        queries = (attn.q_proj(x) * attn.scaling).view(batch, heads, 1, head_dim)
        if append:
            keys = attn.k_proj(x).view(batch, heads, 1, head_dim)
            values = attn.v_proj(x).view(batch, heads, 1, head_dim)
            for row, store in enumerate(stores):
                store.append(keys[row:row + 1], values[row:row + 1])
        out = []
        for row, store in enumerate(stores):
            keys, values = store.view()  # (1, H, S, d)
            weights = torch.softmax(torch.matmul(queries[row], keys[0].transpose(1, 2)).float(),
                                    dim=-1).type_as(x)
            out.append(torch.matmul(weights, values[0]).reshape(1, heads * head_dim))
        return attn.out_proj(torch.cat(out))

    def write(self, sentences: Sequence["IncrementalMT"], budgets: Sequence[int],
              limits: Sequence[int], finals: Sequence[bool]) -> List[int]:
        """Greedy writing for each sentence: up to its budget (:data:`WRITE_TO_END`: to
        ``</s>``), never past its limit (subwords in all); one batched step per position.
        Returns the subwords each wrote and kept."""
        eos, pad = self.dictionary.eos(), self.dictionary.pad()
        committed = [len(s.tokens) for s in sentences]
        caps = [limit if budget == WRITE_TO_END else min(done + budget, limit)
                for done, budget, limit in zip(committed, budgets, limits)]
        running = [i for i, s in enumerate(sentences)
                   if not s.done and s.num_frames > 0 and len(s.tokens) < caps[i]]
        while running:
            feats = self.step([sentences[i] for i in running])
            logits = self.decoder.output_layer(feats)  # (B, V)
            logits[:, pad] = -float("inf")  # as fairseq's generator: never pad
            still = []
            for row, i in enumerate(running):
                sentence, token = sentences[i], int(logits[row].argmax())
                state = self.t2u_input(feats[row], torch.tensor(token))
                if token == eos:
                    if finals[i]:
                        # training feeds T2U the states of [</s>, t1..tn]: the last one is the
                        # state that predicted </s>, so it belongs to the units too
                        sentence.states.append(state)
                    else:
                        # too early to end: forget this position, recomputed with more source
                        sentence.truncate(len(sentence.tokens))
                    continue
                sentence.tokens.append(token)
                sentence.states.append(state)
                if len(sentence.tokens) < caps[i]:
                    still.append(i)
            running = still
        for i, sentence in enumerate(sentences):
            if sentence.done or sentence.num_frames == 0:
                continue
            if finals[i]:
                sentence.done = True
            elif sentence.whole_word:
                sentence.drop_trailing_word(committed[i])
        return [len(s.tokens) - done for s, done in zip(sentences, committed)]


class IncrementalMT:
    """Greedy MT subwords of one sentence, decoded as the source grows.

    Args:
        stepper: the engine's :class:`MTStepper` (the decoder and its dictionary).
        whole_word: after a write round that may continue, forget the trailing subwords from the
            last word start on (StreamSpeech's whole-word mode).

    Attributes:
        tokens: written subword ids.
        states: T2U's input (D,) of each written subword (plus, once the sentence is done, of
            ``</s>``): the decoder state that predicted it, as
            :meth:`~echostream_fairseq.models.echostream.EchoStreamModel.t2u_input` makes it.
        done: the source of the sentence ended and it was written to ``</s>`` (or the cap).
        num_frames: encoder frames of the sentence received so far.
        self_stores, cross_stores: per decoder layer, the self-attention keys/values of the fed
            positions and the cross-attention keys/values of the encoder frames.
    """

    def __init__(self, stepper: MTStepper, whole_word: bool = False) -> None:
        self.stepper, self.whole_word = stepper, whole_word
        self.dictionary = stepper.dictionary
        self.tokens: List[int] = []
        self.states: List[Tensor] = []
        self.done = False
        self.num_frames = 0
        layers = stepper.decoder.layers
        self.self_stores = [KeyValueStore() for _ in layers]
        self.cross_stores = [KeyValueStore() for _ in layers]

    def add_frames(self, frames: Tensor) -> None:
        """New encoder frames (T', 1, D) of the sentence: project their keys/values once."""
        if frames.size(0) == 0:
            return
        for layer, store in zip(self.stepper.decoder.layers, self.cross_stores):
            attn = layer.encoder_attn
            # fairseq's layout (B, H, S, d); keys are not pre-scaled (queries are)
            split = (frames.size(0), frames.size(1), attn.num_heads, attn.head_dim)
            store.append(attn.k_proj(frames).view(split).permute(1, 2, 0, 3),
                         attn.v_proj(frames).view(split).permute(1, 2, 0, 3))
        self.num_frames += frames.size(0)

    def write(self, budget: int, limit: int, final: bool) -> int:
        """Decode up to ``budget`` new subwords (:data:`WRITE_TO_END`: to ``</s>``), never past
        ``limit`` subwords in all; returns how many were written and kept."""
        return self.stepper.write([self], [budget], [limit], [final])[0]

    def truncate(self, positions: int) -> None:
        """Forget the self-attention keys/values of positions >= ``positions``."""
        for store in self.self_stores:
            store.length = min(store.length, positions)

    def drop_trailing_word(self, committed: int) -> None:
        """Whole-word mode: forget the new subwords from the last word start on (the word may
        continue); they are decoded again with more source. Committed subwords stay."""
        starts = [i for i in range(committed, len(self.tokens))
                  if self.dictionary[self.tokens[i]].startswith(WORD_START)]
        keep = starts[-1] if starts else committed
        if keep < len(self.tokens):
            del self.tokens[keep:], self.states[keep:]
            self.truncate(keep)

    def state_bytes(self) -> Dict[str, int]:
        """Bytes held, by part: the attention stores (allocated) and the decoder states."""
        states = sum(t.numel() * t.element_size() for t in self.states)
        return {"mt_cross_attn_cache": sum(store.nbytes() for store in self.cross_stores),
                "mt_self_attn_cache": sum(store.nbytes() for store in self.self_stores),
                "mt_decoder_states": states}


class RecomputeStepper(MTStepper):
    """StreamSpeech's MT generator, the baseline's step: fairseq's own decoder without
    incremental state, the whole prefix over the whole encoder output again for every subword,
    one sentence after another. The greedy loop is :meth:`MTStepper.write`'s, so it writes what
    :class:`MTStepper` writes (tested)."""

    def step(self, sentences: Sequence["IncrementalMT"]) -> Tensor:
        eos, feats = self.dictionary.eos(), []
        for sentence in sentences:
            prev = torch.tensor([[eos] + sentence.tokens], dtype=torch.long)
            out, _ = self.decoder.extract_features(
                prev, {"encoder_out": [sentence.frames], "encoder_padding_mask": []},
                incremental_state=None)
            feats.append(out[0, -1])
        return torch.stack(feats)


class RecomputeMT(IncrementalMT):
    """A sentence of the baseline (with a :class:`RecomputeStepper`): it keeps the sentence's
    re-encoded frames instead of key/value stores."""

    def __init__(self, stepper: MTStepper, whole_word: bool = False) -> None:
        super().__init__(stepper, whole_word)
        self.frames: Optional[Tensor] = None

    def replace_frames(self, frames: Tensor) -> None:
        """All encoder frames (T, 1, D) of the sentence, re-encoded."""
        self.frames = frames
        self.num_frames = frames.size(0)

    def add_frames(self, frames: Tensor) -> None:
        raise TypeError("RecomputeMT re-reads the whole source: use replace_frames")

    def state_bytes(self) -> Dict[str, int]:
        frames = 0 if self.frames is None else self.frames.numel() * self.frames.element_size()
        states = sum(t.numel() * t.element_size() for t in self.states)
        return {"mt_cross_attn_cache": frames, "mt_self_attn_cache": 0,
                "mt_decoder_states": states}
