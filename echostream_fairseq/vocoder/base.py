"""The interface every unit vocoder follows, and helpers the implementations share.

A unit vocoder turns de-duplicated discrete units (ids ``0 .. K-1``) into a mono float waveform
at its ``sample_rate``. It works on a whole utterance (:meth:`UnitVocoder.synthesize`) or chunk
by chunk (:meth:`UnitVocoder.synthesize_chunk`): units arrive in pieces, each call returns only
the audio that became final, and a typed :class:`StreamingVocoderState` (``None`` = start of
utterance) carries what the next call needs. Per-chunk cost does not grow with the prefix.

Conventions shared by all vocoders:

* empty input is not an error: ``synthesize([])`` returns an empty waveform of shape (0,);
* a unit id outside ``0 .. K-1`` raises :class:`ValueError` naming the unit and K;
* chunk joins are cross-faded (:func:`emit_with_crossfade`), so streaming output has no clicks.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["StreamingVocoderState", "UnitVocoder", "emit_with_crossfade", "validate_units"]


def validate_units(units: Sequence[int], num_units: int) -> np.ndarray:
    """Check unit ids against the vocabulary.

    Args:
        units: unit ids, shape (U,).
        num_units: K, the vocabulary size.

    Returns:
        The units as int64, shape (U,).

    Raises:
        ValueError: a unit is negative or >= K (the message names the unit, its position and K),
            or the input is not a flat sequence of integers.
    """
    array = np.asarray(list(units))
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"units must be a flat sequence of integers, got shape {array.shape} "
                         f"and dtype {array.dtype}")
    bad = np.flatnonzero((array < 0) | (array >= num_units))
    if bad.size:
        position = int(bad[0])
        raise ValueError(f"unit {int(array[position])} at position {position} is outside the "
                         f"vocabulary of K = {num_units} units (valid ids: 0..{num_units - 1})")
    return array.astype(np.int64)


@dataclass
class StreamingVocoderState:
    """What one utterance's streaming synthesis carries between chunks.

    Attributes:
        emitted_samples: samples returned so far.
        tail: samples already computed just past ``emitted_samples`` (shape (X,)), blended with
            the next chunk's first X samples so the join is smooth.
        finished: ``final=True`` was seen; further chunks are refused.
    """

    emitted_samples: int = 0
    tail: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    finished: bool = False


def emit_with_crossfade(state: StreamingVocoderState, segment: np.ndarray, segment_start: int,
                        emit_end: int, fade: int) -> np.ndarray:
    """Cut the newly final samples out of a synthesized segment, cross-fading the join.

    Args:
        state: the stream's state; ``emitted_samples`` and ``tail`` are updated in place.
        segment: samples synthesized this chunk, shape (S,), whose first sample is global sample
            ``segment_start``; it must reach ``state.emitted_samples``.
        segment_start: global index of ``segment[0]``.
        emit_end: global index up to which samples are final now (exclusive).
        fade: cross-fade length in samples; the next ``fade`` samples after ``emit_end`` (if
            the segment has them) become the new tail.

    Returns:
        The new samples, global range ``[state.emitted_samples, emit_end)`` (before update),
        float32, shape (emit_end - emitted,).
    """
    begin = state.emitted_samples - segment_start
    if begin < 0:
        raise ValueError(f"segment starts at sample {segment_start}, after the "
                         f"{state.emitted_samples} samples already emitted")
    end = max(emit_end - segment_start, begin)
    padded = segment
    if segment.shape[0] < end:  # edge of the utterance: the istft may be a few samples short
        padded = np.pad(segment, (0, end - segment.shape[0]))
    out = padded[begin:end].astype(np.float32, copy=True)
    overlap = min(state.tail.shape[0], out.shape[0])
    if overlap > 0:
        # Linear fade from the previous chunk's estimate of these samples to this chunk's.
        ramp = (np.arange(1, overlap + 1, dtype=np.float32)) / (overlap + 1)
        out[:overlap] = state.tail[:overlap] * (1.0 - ramp) + out[:overlap] * ramp
    state.tail = padded[end:end + fade].astype(np.float32, copy=True)
    state.emitted_samples += out.shape[0]
    return out


class UnitVocoder(abc.ABC):
    """Units in, 16 kHz (``sample_rate``) float waveform out; whole utterance or streaming."""

    @property
    @abc.abstractmethod
    def sample_rate(self) -> int:
        """Output sample rate in Hz."""
        raise NotImplementedError

    @property
    @abc.abstractmethod
    def num_units(self) -> int:
        """K: unit ids must be in ``0 .. K-1``."""
        raise NotImplementedError

    @property
    @abc.abstractmethod
    def samples_per_frame(self) -> int:
        """Samples per unit frame (the vocoder hop; 320 at 16 kHz for 20 ms frames)."""
        raise NotImplementedError

    @abc.abstractmethod
    def synthesize_chunk(self, new_units: Sequence[int], state: Optional[StreamingVocoderState],
                         final: bool) -> tuple[np.ndarray, StreamingVocoderState]:
        """Synthesize what the newly arrived units make final.

        Args:
            new_units: units that arrived since the last call, shape (U,), ids in ``0..K-1``.
            state: the value returned by the previous call; ``None`` starts an utterance.
            final: no more units will come; flush everything.

        Returns:
            ``(samples, state)``: the new samples (float32, shape (S,), possibly empty) and the
            state to pass to the next call.

        Raises:
            ValueError: a unit id is out of range, or the state has already been finished.
        """
        raise NotImplementedError

    def synthesize(self, units: Sequence[int]) -> np.ndarray:
        """Whole-utterance synthesis.

        Args:
            units: de-duplicated unit ids, shape (U,).

        Returns:
            float32 waveform at :attr:`sample_rate`, shape (T,); (0,) for no units.
        """
        samples, _ = self.synthesize_chunk(units, None, final=True)
        return samples
