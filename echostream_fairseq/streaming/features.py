"""Incremental source features: streaming resampling to the model rate, Kaldi fbank, global CMVN.

Every call consumes only the new samples. Leftover samples (the part of a 25 ms window not yet
complete, and the resampler's filter context) are kept, so the concatenated frames equal
:func:`echostream_fairseq.data.features.compute_fbank` of the whole (resampled) signal.
"""

from __future__ import annotations

import logging
import math
from typing import Optional

import numpy as np
import torch
import torchaudio.compliance.kaldi as kaldi
from torchaudio.transforms import Resample

from echostream_fairseq.data.features import (
    FBANK_DIM,
    FRAME_LENGTH_MS,
    FRAME_SHIFT_MS,
    fbank_num_frames,
)

logger = logging.getLogger(__name__)

__all__ = ["StreamingResampler", "StreamingFbank", "to_mono"]

# fairseq computes fbank on float audio scaled to the int16 range (see data/features.py).
_INT16_SCALE = 2**15


def to_mono(samples: np.ndarray) -> np.ndarray:
    """(T,) or channels-last (T, C) float audio -> (T,) float32 mono (channel mean).

    Raises:
        ValueError: rank other than 1 or 2.
    """
    array = np.asarray(samples, dtype=np.float32)
    if array.ndim == 2:
        return array.mean(axis=1).astype(np.float32, copy=False)
    if array.ndim != 1:
        raise ValueError(f"expected audio of shape (T,) or (T, C), got shape {array.shape}")
    return array


class StreamingResampler:
    """Chunk-wise ``torchaudio.functional.resample`` giving the same samples as one offline call.

    The input is cut at multiples of the rate period (``orig / gcd`` samples map to exactly
    ``new / gcd`` output samples) and each call keeps enough input on both sides of the sinc
    kernel, so only samples whose whole kernel support has arrived are emitted.
    """

    def __init__(self, orig_sr: int, new_sr: int) -> None:
        if orig_sr < 1 or new_sr < 1:
            raise ValueError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
        self.orig_sr, self.new_sr = orig_sr, new_sr
        gcd = math.gcd(orig_sr, new_sr)
        self._orig_period, self._new_period = orig_sr // gcd, new_sr // gcd
        # the transform builds its sinc kernel once (functional.resample rebuilds it every call)
        self._transform = Resample(orig_sr, new_sr)
        # whole periods of context on each side, one extra so the kernel never reaches the edge
        self._margin = (self._transform.width // self._orig_period + 2) * self._orig_period
        self.reset()

    def reset(self) -> None:
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = 0  # global input index of _buffer[0], a multiple of the period
        self._received = 0
        self._emitted = 0

    def _resample_buffer(self) -> np.ndarray:
        with torch.inference_mode():
            out = self._transform(torch.from_numpy(self._buffer))
        return out.numpy()

    def push(self, samples: np.ndarray, final: bool = False) -> np.ndarray:
        """New input samples (T,) -> newly final output samples (T',) float32."""
        if self.orig_sr == self.new_sr:
            return np.asarray(samples, dtype=np.float32)
        self._buffer = np.concatenate([self._buffer, np.asarray(samples, dtype=np.float32)])
        self._received += len(samples)
        if final:
            end_out = math.ceil(self._received * self._new_period / self._orig_period)
        else:
            safe_in = (self._received - self._margin) // self._orig_period * self._orig_period
            end_out = safe_in // self._orig_period * self._new_period
        if end_out <= self._emitted or len(self._buffer) == 0:
            return np.zeros(0, dtype=np.float32)
        resampled = self._resample_buffer()
        first_out = self._buffer_start // self._orig_period * self._new_period
        out = resampled[self._emitted - first_out: end_out - first_out]
        self._emitted = end_out
        # keep `margin` input samples of left context before the next output's support
        next_input = end_out // self._new_period * self._orig_period
        keep_from = max(self._buffer_start, next_input - self._margin)
        self._buffer = self._buffer[keep_from - self._buffer_start:]
        self._buffer_start = keep_from
        return out.astype(np.float32, copy=False)


class StreamingFbank:
    """Incremental 80-d Kaldi fbank (+ optional global CMVN) over a growing stream.

    Args:
        sample_rate: the model's feature rate (``StreamingGeometry.sample_rate``).
        cmvn_mean, cmvn_std: global CMVN stats, each (80,); ``None`` = no normalisation.
        lead_in: every utterance starts with ``window - shift`` zero samples, so frame ``i``
            ends at sample ``(i + 1) * shift`` of the audio pushed: the frames equal
            ``compute_fbank`` of the audio after those zeros (see ``PipelineConfig.frame_lead_in``).

    Example:
        >>> fbank = StreamingFbank(16000, mean, std)
        >>> frames = fbank.push(chunk, 48000)      # (N, 80), only the new complete frames
    """

    def __init__(self, sample_rate: int, cmvn_mean: Optional[np.ndarray] = None,
                 cmvn_std: Optional[np.ndarray] = None, lead_in: bool = False) -> None:
        self.sample_rate = sample_rate
        self.lead_in = lead_in
        self._window = int(sample_rate * FRAME_LENGTH_MS / 1000)
        self._shift = int(sample_rate * FRAME_SHIFT_MS / 1000)
        self._mean = None if cmvn_mean is None else torch.as_tensor(cmvn_mean, dtype=torch.float32)
        self._std = None if cmvn_std is None else torch.as_tensor(cmvn_std, dtype=torch.float32)
        self.reset()

    @property
    def cmvn(self) -> tuple:
        """``(mean, std)`` of the global CMVN, each (80,), or ``(None, None)``."""
        return self._mean, self._std

    def reset(self) -> None:
        """Start a new utterance."""
        # samples from the next frame's start on
        self._pending = np.zeros(self._window - self._shift if self.lead_in else 0,
                                 dtype=np.float32)
        self._resampler: Optional[StreamingResampler] = None
        self.input_rate: Optional[int] = None

    def _resample(self, samples: np.ndarray, sample_rate: int, final: bool) -> np.ndarray:
        if self.input_rate is None:
            self.input_rate = sample_rate
            if sample_rate != self.sample_rate:
                logger.info("resampling the source from %d Hz to %d Hz", sample_rate,
                            self.sample_rate)
                self._resampler = StreamingResampler(sample_rate, self.sample_rate)
        elif sample_rate != self.input_rate:
            raise ValueError(f"sample rate changed within an utterance: {self.input_rate} -> "
                             f"{sample_rate} Hz")
        if self._resampler is None:
            return samples
        return self._resampler.push(samples, final)

    def push(self, samples: np.ndarray, sample_rate: int, final: bool = False) -> torch.Tensor:
        """Consume new samples; return the newly complete fbank frames.

        Args:
            samples: new audio, (T,) or channels-last (T, C), float in [-1, 1]; T may be 0.
            sample_rate: their rate in Hz (resampled to ``self.sample_rate`` when different).
            final: no more audio follows (flushes the resampler; a partial window is dropped, as
                Kaldi's ``snip_edges`` does offline).

        Returns:
            (N, 80) float32 frames, CMVN-normalised when stats were given; N may be 0.
        """
        if sample_rate < 1:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        mono = self._resample(to_mono(samples), sample_rate, final)
        if mono.size and not np.isfinite(mono).all():
            raise ValueError("audio holds NaN or infinite samples")
        self._pending = np.concatenate([self._pending, mono]) if mono.size else self._pending
        num_frames = fbank_num_frames(len(self._pending), self.sample_rate)
        if num_frames == 0:
            return torch.zeros(0, FBANK_DIM)
        used = (num_frames - 1) * self._shift + self._window
        with torch.inference_mode():
            wave = torch.from_numpy(np.ascontiguousarray(self._pending[:used])) * _INT16_SCALE
            feats = kaldi.fbank(wave.unsqueeze(0), num_mel_bins=FBANK_DIM,
                                frame_length=FRAME_LENGTH_MS, frame_shift=FRAME_SHIFT_MS,
                                sample_frequency=self.sample_rate)
            if self._mean is not None and self._std is not None:
                feats = (feats - self._mean) / self._std
        self._pending = self._pending[num_frames * self._shift:]
        return feats
