"""Streaming geometry and the explicit, bounded streaming state of the EchoStream encoder.

Every frame, millisecond and sample count of the streaming encoder is derived from one frozen
:class:`StreamingGeometry`, so no 40 / 320 / 16000 literals are scattered about.

The state types are ``NamedTuple`` values passed into ``infer`` and returned from it; nothing is
stored on modules between calls. Every tensor in a state has the batch on dim 0, which makes
:func:`stack_states`, :func:`unstack_states` and :func:`reorder_state` generic.
"""

import dataclasses
import math
from typing import Callable, List, NamedTuple, Sequence, Tuple, TypeVar

import torch
from torch import Tensor

from echostream_fairseq.data.audio import SAMPLE_RATE
from echostream_fairseq.data.features import FRAME_SHIFT_MS

__all__ = [
    "StreamingGeometry",
    "SubsamplerState",
    "EmformerLayerState",
    "EmformerState",
    "EncoderState",
    "stack_states",
    "unstack_states",
    "reorder_state",
    "state_numel",
    "pending_frames",
    "hold_pending",
]


@dataclasses.dataclass(frozen=True)
class StreamingGeometry:
    """Time geometry of the streaming encoder; every conversion is derived from these fields.

    Attributes:
        sample_rate: audio samples per second the features are computed from.
        fbank_hop_ms: fbank frame shift in milliseconds.
        subsampling: fbank frames per encoder frame (product of the conv strides).
        segment_frames: encoder frames per Emformer segment (the latency unit).
        right_context_frames: encoder frames of look-ahead after each segment.
        vocoder_hop_samples: output samples per speech unit of the vocoder.
    """

    sample_rate: int = SAMPLE_RATE
    fbank_hop_ms: int = int(FRAME_SHIFT_MS)
    subsampling: int = 4
    segment_frames: int = 8
    right_context_frames: int = 0
    vocoder_hop_samples: int = 320

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            minimum = 0 if field.name == "right_context_frames" else 1
            if not isinstance(value, int) or value < minimum:
                raise ValueError(
                    f"StreamingGeometry.{field.name}: expected an int >= {minimum}, got {value!r}"
                )

    @property
    def fbank_hop_samples(self) -> int:
        return self.sample_rate * self.fbank_hop_ms // 1000

    @property
    def encoder_frame_ms(self) -> int:
        return self.fbank_hop_ms * self.subsampling

    @property
    def encoder_frame_samples(self) -> int:
        return self.fbank_hop_samples * self.subsampling

    @property
    def segment_ms(self) -> int:
        return self.segment_frames * self.encoder_frame_ms

    @property
    def segment_fbank_frames(self) -> int:
        return self.segment_frames * self.subsampling

    @property
    def segment_samples(self) -> int:
        return self.segment_frames * self.encoder_frame_samples

    @property
    def right_context_ms(self) -> int:
        return self.right_context_frames * self.encoder_frame_ms

    @property
    def algorithmic_latency_ms(self) -> int:
        """Worst-case wait of the first frame of a segment: the segment plus its look-ahead."""
        return self.segment_ms + self.right_context_ms

    def encoder_frames_for_fbank(self, num_fbank_frames: int) -> int:
        """Encoder frames produced from ``num_fbank_frames`` fbank frames (ceil; causal convs)."""
        return math.ceil(num_fbank_frames / self.subsampling)

    def streamed_encoder_frames(self, num_fbank_frames: int) -> int:
        """Encoder frames ``EchoStreamEncoder.infer`` has emitted after ``num_fbank_frames`` (not
        final): whole subsampled frames, then only complete segments with their right context."""
        available = num_fbank_frames // self.subsampling - self.right_context_frames
        return max(0, available) // self.segment_frames * self.segment_frames

    def encoder_frames_to_ms(self, num_frames: int) -> int:
        return num_frames * self.encoder_frame_ms

    def ms_to_encoder_frames(self, ms: float) -> int:
        """Whole encoder frames in ``ms`` milliseconds (floor)."""
        return int(ms // self.encoder_frame_ms)

    def seconds_to_fbank_frames(self, seconds: float) -> int:
        return int(round(seconds * 1000 / self.fbank_hop_ms))

    def units_to_samples(self, num_units: int) -> int:
        return num_units * self.vocoder_hop_samples

    def to_dict(self) -> dict:
        """Plain dict, for saving in a checkpoint config."""
        return dataclasses.asdict(self)


class SubsamplerState(NamedTuple):
    """State of the causal conv front end.

    Attributes:
        conv_caches: per conv layer, its last ``kernel - 1`` input frames, ``(B, K-1, C_in)``;
            zeros at the start of an utterance (the zero left padding of the training forward).
        pending: fbank frames received but not yet consumed, in a fixed buffer
            ``(B, subsampling - 1, F)``; only the first ``num_pending`` frames are real.
        num_pending: frames held in ``pending`` (fewer than ``subsampling``).
    """

    conv_caches: Tuple[Tensor, ...]
    pending: Tensor
    num_pending: int


class EmformerLayerState(NamedTuple):
    """State of one Emformer layer; fixed size, invalid slots are zeros and masked out.

    Attributes:
        memory: memory-bank slots of the latest ``M`` segments, ``(B, M, D)``.
        left_key: attention keys of the latest ``L`` utterance frames, ``(B, L, D)``.
        left_value: attention values of the same frames, ``(B, L, D)``.
        conv_left: the convolution module's gated inputs of the latest ``P = kernel // 2``
            utterance frames, ``(B, P, D)`` (``P = 0`` without the module).
    """

    memory: Tensor
    left_key: Tensor
    left_value: Tensor
    conv_left: Tensor


class EmformerState(NamedTuple):
    """State of the Emformer stack.

    Attributes:
        layers: one :class:`EmformerLayerState` per layer.
        pending: encoder-rate input frames waiting for their segment (and right context) to
            complete, in a fixed buffer ``(B, segment + right_context - 1, D)``; only the first
            ``num_pending`` frames are real.
        num_pending: frames held in ``pending``.
        processed_frames: encoder frames already emitted for each stream, ``(B,)`` int64.
    """

    layers: Tuple[EmformerLayerState, ...]
    pending: Tensor
    num_pending: int
    processed_frames: Tensor


class EncoderState(NamedTuple):
    """Streaming state of :class:`EchoStreamEncoder`; build it with ``encoder.init_state``.

    Attributes:
        subsampler: conv front-end state.
        emformer: Emformer stack state.
        segment_length: encoder frames per segment this stream runs with (a plain int, fixed
            for the stream's lifetime).
    """

    subsampler: SubsamplerState
    emformer: EmformerState
    segment_length: int


def pending_frames(buffer: Tensor, num_pending: int) -> Tensor:
    """The real frames ``(B, num_pending, C)`` of a fixed-size pending buffer ``(B, cap, C)``."""
    return buffer[:, :num_pending]


def hold_pending(frames: Tensor, capacity: int) -> Tuple[Tensor, int]:
    """Store ``frames`` ``(B, n, C)``, ``n <= capacity``, in a zero-padded ``(B, capacity, C)``
    buffer, so the state's size does not depend on where the stream stands."""
    count = frames.size(1)
    if count > capacity:
        raise ValueError(f"pending buffer overflow: {count} frames for a capacity of {capacity}")
    return torch.nn.functional.pad(frames, (0, 0, 0, capacity - count)), count


StateT = TypeVar("StateT")


def _map_tensors(state: StateT, fn: Callable[[Tensor], Tensor]) -> StateT:
    """Apply ``fn`` to every tensor of a (nested) state, keeping plain ints as they are."""
    if isinstance(state, Tensor):
        return fn(state)
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*[_map_tensors(item, fn) for item in state])
    if isinstance(state, tuple):
        return tuple(_map_tensors(item, fn) for item in state)
    return state


def _flatten(state: object) -> List[object]:
    if isinstance(state, tuple):
        return [leaf for item in state for leaf in _flatten(item)]
    return [state]


def _rebuild(template: StateT, leaves: List[object]) -> StateT:
    """Inverse of :func:`_flatten`: rebuild ``template``'s structure from ``leaves`` in order."""
    iterator = iter(leaves)

    def build(node: object) -> object:
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            return type(node)(*[build(item) for item in node])
        if isinstance(node, tuple):
            return tuple(build(item) for item in node)
        return next(iterator)

    return build(template)  # type: ignore[return-value]


def stack_states(states: Sequence[StateT]) -> StateT:
    """Concatenate states of single streams (or small batches) into one batched state.

    All states must have identical non-batch shapes (same pending-buffer lengths) and equal
    plain-int fields (segment length); otherwise ``ValueError``.
    """
    if not states:
        raise ValueError("stack_states: expected at least one state, got none")
    flat = [_flatten(state) for state in states]
    leaves: List[object] = []
    for position, column in enumerate(zip(*flat)):
        first = column[0]
        if isinstance(first, Tensor):
            shapes = {tuple(item.shape[1:]) for item in column}
            if len(shapes) != 1:
                raise ValueError(
                    f"stack_states: state tensor #{position} has different non-batch shapes "
                    f"{sorted(shapes)}; "
                    "only streams with equally long pending buffers can be stacked"
                )
            leaves.append(torch.cat(list(column), dim=0))
        else:
            if any(item != first for item in column):
                raise ValueError(
                    f"stack_states: field #{position} differs between states: {list(column)}"
                )
            leaves.append(first)
    return _rebuild(states[0], leaves)


def unstack_states(state: StateT) -> List[StateT]:
    """Split a batched state into one state per stream (batch size 1 each)."""
    batch_size = _batch_size(state)
    return [_map_tensors(state, lambda t, i=i: t[i : i + 1]) for i in range(batch_size)]


def reorder_state(state: StateT, new_order: Tensor) -> StateT:
    """Select / reorder streams along the batch (e.g. for beam search), ``new_order`` ``(B',)``."""
    return _map_tensors(state, lambda t: t.index_select(0, new_order.to(t.device)))


def state_numel(state: object) -> int:
    """Total number of elements of all tensors in a state (for boundedness checks)."""
    return sum(leaf.numel() for leaf in _flatten(state) if isinstance(leaf, Tensor))


def _batch_size(state: object) -> int:
    for leaf in _flatten(state):
        if isinstance(leaf, Tensor):
            return leaf.size(0)
    raise ValueError("state holds no tensors")
