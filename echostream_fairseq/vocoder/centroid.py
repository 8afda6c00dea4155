"""The embedded default vocoder: unit centroid log-mel + fitted durations + Griffin-Lim.

Nothing is downloaded and nothing neural is trained. Each unit's mean log-mel frame (from
``unit_model.npz``, or, with context spectra, the mean over training runs of the unit between
the same neighbours, :mod:`echostream_fairseq.vocoder.context`) is repeated for the unit's
predicted number of frames
(:mod:`echostream_fairseq.vocoder.duration`), the log-mel sequence is smoothed over time (this
softens the steps at unit boundaries), turned into a linear magnitude spectrogram through the
pseudo-inverse of the mel filterbank, and Griffin-Lim (fast variant, with momentum) finds a phase.
All STFT numbers (sample rate, n_fft, hop = samples per unit frame, mel bins) come from the mel
settings saved with the units, so the vocoder inverts exactly the analysis the units came from.

Streaming: durations and spectra need one unit of look-ahead (``context`` kind) and the smoothing
needs ``len(taps) // 2`` frames, so those are held back. Each chunk runs Griffin-Lim only over the
new frames plus ``context_frames`` already-synthesized frames (their phase carried from the previous
chunk, so the re-estimate agrees with what was emitted) and holds back ``lookahead_frames`` frames
whose samples still depend on frames not yet known. The join is cross-faded over
``crossfade_frames`` frames. Cost per chunk is constant: nothing before the context is touched.

Files: ``<data>/units/vocoder.npz`` (:meth:`CentroidVocoder.save`, written by
``echostream-fit-vocoder``) is self-contained; a bare ``unit_model.npz`` also loads (per-unit
mean durations).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
import torchaudio

from echostream_fairseq.data.units import MelSettings, UnitModel, load_unit_model
from echostream_fairseq.vocoder.base import (StreamingVocoderState, UnitVocoder,
                                             emit_with_crossfade, validate_units)
from echostream_fairseq.vocoder.context import ContextModel
from echostream_fairseq.vocoder.duration import round_durations

logger = logging.getLogger(__name__)

__all__ = ["CentroidStreamState", "CentroidVocoder", "CentroidVocoderSettings",
           "load_centroid_vocoder"]

# Version 3 may store context spectra as low-rank residuals (``spec_basis``); version 2 files
# (full tables) read the same way.
VOCODER_FILE_VERSION = 3
_READABLE_VOCODER_VERSIONS = (2, 3)
# Columns of the fixed initial-phase table; frame f starts from column f % period (a prime, so
# the repetition never lines up with a unit or chunk pattern).
_PHASE_PERIOD = 1009
_REQUIRED_VOCODER_KEYS = ("version", *ContextModel.array_names("spec"),
                          *ContextModel.array_names("dur"), "synth_smoothing_taps",
                          "synth_griffin_lim_iters", "synth_cumulative_rounding")


@dataclass(frozen=True)
class CentroidVocoderSettings:
    """Synthesis and streaming settings (defaults: the measured best, see the vocoder report).

    Attributes:
        smoothing_taps: time-smoothing kernel over log-mel frames (odd length, sums to 1).
        griffin_lim_iters: Griffin-Lim iterations per chunk.
        momentum: fast Griffin-Lim momentum.
        cumulative_rounding: round durations on cumulative time (keeps total length).
        context_frames: already-emitted frames re-run with each chunk (phase carried).
        lookahead_frames: frames held back until later frames exist (>= crossfade_frames + 1).
        crossfade_frames: length of the cross-fade at each join, in frames.
        random_phase: start new frames from a fixed pseudo-random phase (indexed by global
            frame, so whole-utterance and streaming runs start alike) instead of zero phase,
            whose identical frames add up to a buzz at the frame rate.
    """

    smoothing_taps: tuple[float, ...] = (0.25, 0.5, 0.25)
    griffin_lim_iters: int = 32
    momentum: float = 0.99
    cumulative_rounding: bool = True
    context_frames: int = 8
    lookahead_frames: int = 3
    crossfade_frames: int = 1
    random_phase: bool = True

    def __post_init__(self) -> None:
        if len(self.smoothing_taps) % 2 != 1:
            raise ValueError(f"smoothing_taps needs an odd length, got {self.smoothing_taps}")
        if self.lookahead_frames < self.crossfade_frames + 1:
            raise ValueError("lookahead_frames must exceed crossfade_frames (the fade uses "
                             "samples computed past the emitted end)")


@dataclass
class CentroidStreamState(StreamingVocoderState):
    """Streaming state of :class:`CentroidVocoder` (see :class:`StreamingVocoderState`).

    Attributes:
        pending_units: received units whose duration waits for right context, shape (P,).
        left_unit: the last unit whose duration was decided (left context), or ``None``.
        duration_carry: cumulative-rounding carry in frames.
        raw_frames: un-smoothed log-mel frames from global frame ``raw_offset`` on, (N, n_mels).
        raw_offset: global index of ``raw_frames[0]``.
        angles: unit phasors of frames from ``angle_offset`` on, complex64 (n_freqs, P).
        angle_offset: global index of ``angles[:, 0]``.
    """

    pending_units: list[int] = field(default_factory=list)
    left_unit: Optional[int] = None
    duration_carry: float = 0.0
    raw_frames: Optional[np.ndarray] = None
    raw_offset: int = 0
    angles: Optional[torch.Tensor] = None
    angle_offset: int = 0


class CentroidVocoder(UnitVocoder):
    """Unit centroid log-mel -> Griffin-Lim waveform (see the module docstring).

    Args:
        spectra: log-mel frame of each unit (in context), values (K, n_mels).
        durations: frames per unit (in context), values (K, 1).
        mel: the analysis settings of the units.
        settings: synthesis/streaming settings.
    """

    def __init__(self, spectra: ContextModel, durations: ContextModel, mel: MelSettings,
                 settings: CentroidVocoderSettings = CentroidVocoderSettings()) -> None:
        if spectra.unit_values.shape[1] != mel.n_mels:
            raise ValueError(f"spectra must be (K, {mel.n_mels}), got "
                             f"{spectra.unit_values.shape}")
        if durations.num_units != spectra.num_units or durations.unit_values.shape[1] != 1:
            raise ValueError(f"duration model values {durations.unit_values.shape} do not fit "
                             f"K = {spectra.num_units} (need (K, 1))")
        self.spectra = spectra
        self.durations = durations
        self.mel = mel
        self.settings = settings
        fbank = torchaudio.functional.melscale_fbanks(
            n_freqs=mel.n_fft // 2 + 1, f_min=mel.f_min, f_max=mel.f_max, n_mels=mel.n_mels,
            sample_rate=mel.sample_rate, norm=mel.norm, mel_scale=mel.mel_scale)
        # mel = fbank.T @ magnitude, so the least-squares inverse is pinv(fbank.T): (n_freqs, M).
        self._inverse_mel = torch.linalg.pinv(fbank.T).float()
        self._window = torch.hann_window(mel.win_length)
        self._taps = np.asarray(settings.smoothing_taps, dtype=np.float32)
        generator = torch.Generator().manual_seed(0)
        phase = 2 * np.pi * torch.rand((mel.n_fft // 2 + 1, _PHASE_PERIOD), generator=generator)
        self._phase_table = torch.polar(torch.ones_like(phase), phase)

    # -- UnitVocoder -----------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return int(self.mel.sample_rate)

    @property
    def num_units(self) -> int:
        return self.spectra.num_units

    @property
    def samples_per_frame(self) -> int:
        return int(self.mel.hop_length)

    def with_settings(self, **changes: Any) -> "CentroidVocoder":
        """A copy with some settings changed (the tables are shared)."""
        return CentroidVocoder(self.spectra, self.durations, self.mel,
                               dataclasses.replace(self.settings, **changes))

    def synthesize_chunk(self, new_units: Sequence[int],
                         state: Optional[StreamingVocoderState],
                         final: bool) -> tuple[np.ndarray, CentroidStreamState]:
        """See :meth:`UnitVocoder.synthesize_chunk`; ``state`` is a :class:`CentroidStreamState`."""
        units = validate_units(new_units, self.num_units)
        if state is None:
            state = CentroidStreamState(raw_frames=np.zeros((0, self.mel.n_mels), np.float32))
        if not isinstance(state, CentroidStreamState):
            raise ValueError(f"expected a CentroidStreamState, got {type(state).__name__}")
        if state.finished:
            raise ValueError("this utterance was already finished (final=True); start a new "
                             "one with state=None")
        self._append_frames(state, units.tolist(), final)
        samples = self._render(state, final)
        state.finished = final
        return samples, state

    def frames_for(self, units: Sequence[int]) -> np.ndarray:
        """Un-smoothed log-mel frames of a whole utterance (for inspection and tests).

        Returns:
            (D, n_mels) float32, D = total predicted frames.
        """
        state = CentroidStreamState(raw_frames=np.zeros((0, self.mel.n_mels), np.float32))
        self._append_frames(state, validate_units(units, self.num_units).tolist(), True)
        return state.raw_frames

    # -- units -> frames ---------------------------------------------------------------------
    def _append_frames(self, state: CentroidStreamState, units: list[int], final: bool) -> None:
        """Decide durations of every unit that has its right context; append their frames."""
        queue = state.pending_units + units
        lookahead = max(self.durations.right_context, self.spectra.right_context)
        hold = 0 if final else min(len(queue), lookahead)
        ready, state.pending_units = queue[:len(queue) - hold], queue[len(queue) - hold:]
        if not ready:
            return
        right = state.pending_units[0] if state.pending_units else None
        predicted = self.durations.predict(ready, left=state.left_unit, right=right)[:, 0]
        counts, state.duration_carry = round_durations(
            predicted, state.duration_carry, self.settings.cumulative_rounding)
        spectra = self.spectra.predict(ready, left=state.left_unit, right=right)
        frames = np.repeat(spectra, counts, axis=0)
        state.raw_frames = np.concatenate([state.raw_frames, frames], axis=0)
        state.left_unit = ready[-1]

    def _smoothed(self, state: CentroidStreamState, start: int, end: int, final: bool
                  ) -> np.ndarray:
        """Smoothed log-mel of global frames [start, end), (end - start, n_mels)."""
        radius = self._taps.shape[0] // 2
        raw, offset = state.raw_frames, state.raw_offset
        total = offset + raw.shape[0]
        lo, hi = start - radius, end + radius
        # Replicate the first/last frame at the utterance edges (only the true start/end).
        index = np.clip(np.arange(lo, hi), 0, total - 1) - offset
        if index.min() < 0:
            raise RuntimeError("smoothing needs frames already dropped from the state")
        window = raw[index]
        out = np.zeros((end - start, raw.shape[1]), dtype=np.float32)
        for k, tap in enumerate(self._taps):
            out += tap * window[k:k + end - start]
        return out

    # -- frames -> samples -------------------------------------------------------------------
    def _render(self, state: CentroidStreamState, final: bool) -> np.ndarray:
        """Griffin-Lim over the new frames plus context; return the newly final samples."""
        hop = self.samples_per_frame
        settings = self.settings
        radius = self._taps.shape[0] // 2
        total = state.raw_offset + state.raw_frames.shape[0]
        ready = total if final else total - radius  # smoothed frames that are final
        emit_end = total * hop if final else (ready - settings.lookahead_frames) * hop
        if emit_end <= state.emitted_samples or ready <= 0:
            return np.zeros(0, dtype=np.float32)
        start = max(0, state.emitted_samples // hop - settings.context_frames)
        logmel = self._smoothed(state, start, ready, final)
        magnitude = torch.clamp(self._inverse_mel @ torch.from_numpy(np.exp(logmel).T), min=0.0)
        # The STFT's reflect padding needs more than n_fft / 2 samples: pad a very short final
        # segment (a 1-frame utterance) with silent frames, cut afterwards.
        short = max(0, self.mel.n_fft // (2 * hop) + 1 - magnitude.shape[1])
        magnitude = torch.nn.functional.pad(magnitude, (0, short))
        angles = self._initial_angles(state, start, ready + short, magnitude.shape[0])
        with torch.inference_mode():
            segment, angles = self._griffin_lim(magnitude, angles, (ready + short - start) * hop)
        segment, angles = segment[:(ready - start) * hop], angles[:, :ready - start]
        samples = emit_with_crossfade(state, np.clip(segment.numpy(), -1.0, 1.0), start * hop,
                                      emit_end, settings.crossfade_frames * hop)
        # Keep only what the next chunk can touch: its context and smoothing window.
        keep_from = max(0, state.emitted_samples // hop - settings.context_frames - radius)
        state.raw_frames = state.raw_frames[keep_from - state.raw_offset:]
        state.raw_offset = keep_from
        state.angles, state.angle_offset = angles, start
        return samples

    def _initial_angles(self, state: CentroidStreamState, start: int, end: int,
                        n_freqs: int) -> torch.Tensor:
        """Phase to start Griffin-Lim from: carried for known frames, fixed for new ones."""
        if self.settings.random_phase:
            angles = self._phase_table[:, torch.arange(start, end) % _PHASE_PERIOD]
        else:
            angles = torch.ones((n_freqs, end - start), dtype=torch.complex64)
        if state.angles is not None:
            lo = max(start, state.angle_offset)
            hi = min(end, state.angle_offset + state.angles.shape[1])
            if hi > lo:
                angles[:, lo - start:hi - start] = \
                    state.angles[:, lo - state.angle_offset:hi - state.angle_offset]
        return angles

    def _griffin_lim(self, magnitude: torch.Tensor, angles: torch.Tensor,
                     length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Fast Griffin-Lim (momentum) from given initial phasors.

        Args:
            magnitude: (n_freqs, T) float32 linear magnitude.
            angles: (n_freqs, T) complex64 unit phasors to start from.
            length: output samples.

        Returns:
            ``(waveform, angles)``: (length,) float32 and the final phasors (n_freqs, T).
        """
        mel = self.mel
        stft_args = dict(n_fft=mel.n_fft, hop_length=mel.hop_length, win_length=mel.win_length,
                         window=self._window, center=mel.center)
        previous = torch.zeros_like(angles)
        scale = self.settings.momentum / (1.0 + self.settings.momentum)
        for _ in range(self.settings.griffin_lim_iters):
            waveform = torch.istft(magnitude * angles, length=length, **stft_args)
            rebuilt = torch.stft(waveform, return_complex=True, **stft_args)
            rebuilt = rebuilt[:, :magnitude.shape[1]]
            angles = rebuilt - previous * scale
            angles = angles / (angles.abs() + 1e-16)
            previous = rebuilt
        waveform = torch.istft(magnitude * angles, length=length, **stft_args)
        return waveform, angles

    # -- files ---------------------------------------------------------------------------------
    def save(self, path: Union[str, Path]) -> None:
        """Write a self-contained ``vocoder.npz`` (unit table, durations, settings, mel)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        mel_fields = {f"mel_{k}": np.asarray(v) for k, v in dataclasses.asdict(self.mel).items()}
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, version=np.asarray(VOCODER_FILE_VERSION),
                 synth_smoothing_taps=np.asarray(self.settings.smoothing_taps, np.float32),
                 synth_griffin_lim_iters=np.asarray(self.settings.griffin_lim_iters),
                 synth_cumulative_rounding=np.asarray(self.settings.cumulative_rounding),
                 **self.spectra.arrays("spec"), **self.durations.arrays("dur"), **mel_fields)
        tmp.replace(path)

    @classmethod
    def from_unit_model(cls, model: UnitModel,
                        settings: CentroidVocoderSettings = CentroidVocoderSettings()
                        ) -> "CentroidVocoder":
        """Vocoder from a unit model alone (per-unit mean durations, no fitted context)."""
        return cls(ContextModel.per_unit(model.unit_mean_logmel),
                   ContextModel.per_unit(model.unit_mean_run_length), model.mel, settings)


def _mel_from_npz(data: Any, path: Path) -> MelSettings:
    kwargs = {}
    for mel_field in dataclasses.fields(MelSettings):
        key = f"mel_{mel_field.name}"
        if key not in data:
            raise ValueError(f"{path}: missing key {key!r} (mel settings); rebuild the file")
        kwargs[mel_field.name] = data[key].item()
    return MelSettings(**kwargs)


def load_centroid_vocoder(path: Union[str, Path], **setting_overrides: Any) -> CentroidVocoder:
    """Load the embedded vocoder from ``vocoder.npz`` or, failing that, ``unit_model.npz``.

    Args:
        path: a ``vocoder.npz`` (from ``echostream-fit-vocoder``) or a ``unit_model.npz``.
        setting_overrides: :class:`CentroidVocoderSettings` fields to change.

    Raises:
        FileNotFoundError: no such file (the message names it).
        ValueError: the file is not one of the two formats or lacks keys (named, with the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"vocoder file {path} does not exist (build the corpus with "
                                f"echostream-prepare, then run echostream-fit-vocoder)")
    try:
        data = np.load(path)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable .npz file ({err})") from err
    with data:
        if "unit_mean_run_length" in data and "dur_unit_mean" not in data:
            try:
                model = load_unit_model(path)
            except KeyError as err:
                raise ValueError(f"{path}: unit model lacks key {err}") from err
            base = CentroidVocoder.from_unit_model(model)
            return base.with_settings(**setting_overrides) if setting_overrides else base
        missing = [key for key in _REQUIRED_VOCODER_KEYS if key not in data]
        if missing:
            raise ValueError(f"{path}: not a vocoder.npz or unit_model.npz; missing keys "
                             f"{missing}")
        if int(data["version"]) not in _READABLE_VOCODER_VERSIONS:
            raise ValueError(f"{path}: vocoder file version {int(data['version'])} is not one "
                             f"of {_READABLE_VOCODER_VERSIONS}")
        settings = CentroidVocoderSettings(
            smoothing_taps=tuple(float(t) for t in data["synth_smoothing_taps"]),
            griffin_lim_iters=int(data["synth_griffin_lim_iters"]),
            cumulative_rounding=bool(data["synth_cumulative_rounding"]))
        settings = dataclasses.replace(settings, **setting_overrides)
        return CentroidVocoder(ContextModel.from_arrays(data, "spec"),
                               ContextModel.from_arrays(data, "dur"), _mel_from_npz(data, path),
                               settings)
