"""fairseq unit HiFi-GAN (CodeHiFiGAN) vocoders: StreamSpeech's vocoder format.

A vocoder is a JSON config (``upsample_rates``, ``num_embeddings``, ``dur_predictor_params``,
``sampling_rate``, ...) plus a checkpoint whose ``generator`` entry is the state dict of fairseq's
``fairseq.models.text_to_speech.codehifigan.CodeGenerator``. We build that library class and load
the weights weights-only (:func:`echostream_fairseq.checkpoint_safety.safe_torch_load`) instead of
``CodeHiFiGANVocoder``'s own unchecked ``torch.load``. Samples per unit frame are the product of
``upsample_rates`` (320 at 16 kHz for StreamSpeech's vocoder; ``code_hop_size`` must agree).

Durations: with ``dur_predictor_params`` each unit lasts ``max(1, round(exp(pred) - 1))`` frames
(fairseq's rule); without, one frame. Streaming re-runs ``context_units`` earlier units with each
chunk (the predictor and the generator's convolutions see across the join), holds back
``lookahead_units`` units and cross-fades the join, so each chunk costs the same.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from echostream_fairseq.checkpoint_safety import safe_torch_load
from echostream_fairseq.vocoder.base import (StreamingVocoderState, UnitVocoder,
                                             emit_with_crossfade, validate_units)

logger = logging.getLogger(__name__)

__all__ = ["CodeHiFiGANStreamState", "CodeHiFiGANUnitVocoder", "REQUIRED_CONFIG_KEYS",
           "load_code_hifigan"]

REQUIRED_CONFIG_KEYS = ("upsample_rates", "upsample_kernel_sizes", "upsample_initial_channel",
                        "resblock_kernel_sizes", "resblock_dilation_sizes", "num_embeddings",
                        "embedding_dim", "model_in_dim", "sampling_rate")
_DURATION_KEYS = ("encoder_embed_dim", "var_pred_hidden_dim", "var_pred_kernel_size",
                  "var_pred_dropout")
_UNSUPPORTED = ("f0", "multispkr", "embedder_params")


@dataclass
class CodeHiFiGANStreamState(StreamingVocoderState):
    """Streaming state of :class:`CodeHiFiGANUnitVocoder`.

    Attributes:
        context_units: the last emitted units, re-run as left context, shape (C,).
        pending_units: received units held back as look-ahead, shape (L,).
    """

    context_units: list[int] = field(default_factory=list)
    pending_units: list[int] = field(default_factory=list)


class CodeHiFiGANUnitVocoder(UnitVocoder):
    """A fairseq ``CodeGenerator`` behind the :class:`UnitVocoder` interface.

    Args:
        generator: the fairseq generator, weights loaded, weight norm removed, in eval mode.
        config: its JSON config (validated by :func:`load_code_hifigan`).
        context_units: units re-synthesized as left context in streaming.
        lookahead_units: units held back (not emitted) until later units arrive.
    """

    def __init__(self, generator: torch.nn.Module, config: Mapping[str, Any],
                 context_units: int = 4, lookahead_units: int = 2) -> None:
        self.generator = generator
        self.config = dict(config)
        self.context_units = context_units
        self.lookahead_units = lookahead_units
        self._hop = int(math.prod(int(r) for r in config["upsample_rates"]))

    @property
    def sample_rate(self) -> int:
        return int(self.config["sampling_rate"])

    @property
    def num_units(self) -> int:
        return int(self.config["num_embeddings"])

    @property
    def samples_per_frame(self) -> int:
        return self._hop

    def durations(self, units: Sequence[int]) -> np.ndarray:
        """Frames per unit, shape (U,) int64: the duration predictor's, or all ones."""
        predictor = getattr(self.generator, "dur_predictor", None)
        if predictor is None or len(units) == 0:
            return np.ones(len(units), dtype=np.int64)
        with torch.inference_mode():
            embedded = self.generator.dict(torch.as_tensor([list(units)], dtype=torch.long))
            log_duration = predictor(embedded)  # (1, U)
            # fairseq CodeGenerator's rule, so outputs match fairseq's own dur_prediction.
            frames = torch.clamp(torch.round(torch.exp(log_duration) - 1).long(), min=1)
        return frames.view(-1).numpy()

    def _generate(self, units: Sequence[int], frames: np.ndarray) -> np.ndarray:
        """Waveform of units lasting ``frames`` frames each: (sum(frames) * hop,) float32."""
        codes = torch.as_tensor(np.repeat(np.asarray(units, dtype=np.int64), frames))[None]
        with torch.inference_mode():
            audio = self.generator(code=codes, dur_prediction=False)
        return audio.reshape(-1).float().numpy()

    def synthesize_chunk(self, new_units: Sequence[int],
                         state: Optional[StreamingVocoderState],
                         final: bool) -> tuple[np.ndarray, CodeHiFiGANStreamState]:
        """See :meth:`UnitVocoder.synthesize_chunk` (``state``: a CodeHiFiGANStreamState)."""
        units = validate_units(new_units, self.num_units).tolist()
        state = CodeHiFiGANStreamState() if state is None else state
        if not isinstance(state, CodeHiFiGANStreamState):
            raise ValueError(f"expected a CodeHiFiGANStreamState, got {type(state).__name__}")
        if state.finished:
            raise ValueError("this utterance was already finished (final=True); start a new "
                             "one with state=None")
        queue = state.pending_units + units
        hold = 0 if final else min(len(queue), self.lookahead_units)
        ready, held = queue[:len(queue) - hold], queue[len(queue) - hold:]
        state.pending_units, state.finished = held, final
        if not ready:
            return np.zeros(0, dtype=np.float32), state
        window = state.context_units + ready + held
        frames = self.durations(window)
        segment = np.clip(self._generate(window, frames), -1.0, 1.0)
        bounds = np.concatenate([[0], np.cumsum(frames)]) * self._hop
        context_end = int(bounds[len(state.context_units)])
        ready_end = int(bounds[len(state.context_units) + len(ready)])
        segment_start = state.emitted_samples - context_end
        emit_end = segment_start + (segment.shape[0] if final else ready_end)
        samples = emit_with_crossfade(state, segment, segment_start, emit_end, self._hop)
        state.context_units = (state.context_units + ready)[-self.context_units:] \
            if self.context_units else []
        return samples, state


def _check_config(config: Mapping[str, Any], path: Path) -> None:
    missing = [key for key in REQUIRED_CONFIG_KEYS if key not in config]
    if missing:
        raise ValueError(f"{path}: CodeHiFiGAN config lacks key(s) {missing}")
    dur = config.get("dur_predictor_params")
    if dur:
        missing = [key for key in _DURATION_KEYS if key not in dur]
        if missing:
            raise ValueError(f"{path}: dur_predictor_params lacks key(s) {missing}")
    unsupported = [key for key in _UNSUPPORTED if config.get(key)]
    if unsupported:
        raise ValueError(f"{path}: CodeHiFiGAN options {unsupported} (F0 / speaker "
                         f"conditioning) are not supported; use a unit-only vocoder")
    hop = math.prod(int(r) for r in config["upsample_rates"])
    if "code_hop_size" in config and int(config["code_hop_size"]) != hop:
        raise ValueError(f"{path}: code_hop_size {config['code_hop_size']} differs from the "
                         f"product of upsample_rates {hop}")


def _check_state_dict(model: torch.nn.Module, weights: Mapping[str, torch.Tensor],
                      path: Path) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in weights.items()}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    mismatched = [f"{k}: checkpoint {got[k]} vs config {expected[k]}"
                  for k in sorted(set(expected) & set(got)) if expected[k] != got[k]]
    if missing or unexpected or mismatched:
        raise ValueError(f"{path}: generator weights do not fit the JSON config; "
                         f"shape mismatches {mismatched[:5]}, missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")


def load_code_hifigan(config_path: Union[str, Path], checkpoint_path: Union[str, Path],
                      **streaming: int) -> CodeHiFiGANUnitVocoder:
    """Load a CodeHiFiGAN vocoder (JSON config + checkpoint with a ``generator`` state dict).

    Args:
        config_path: the vocoder's JSON config.
        checkpoint_path: the checkpoint (weights-only loading).
        streaming: ``context_units`` / ``lookahead_units`` for :class:`CodeHiFiGANUnitVocoder`.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: bad JSON, a missing config key, or weights that do not fit the config
            (names the file and the keys).
        echostream_fairseq.checkpoint_safety.CheckpointLoadError: an unreadable or unsafe
            checkpoint.
    """
    from fairseq.models.text_to_speech.codehifigan import CodeGenerator

    config_path, checkpoint_path = Path(config_path), Path(checkpoint_path)
    if not config_path.is_file():
        raise FileNotFoundError(f"CodeHiFiGAN config {config_path} does not exist")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{config_path}: not valid JSON ({err})") from err
    _check_config(config, config_path)
    checkpoint = safe_torch_load(checkpoint_path)
    if not isinstance(checkpoint, Mapping) or "generator" not in checkpoint:
        raise ValueError(f"{checkpoint_path}: no 'generator' state dict in the checkpoint")
    generator = CodeGenerator(config)
    _check_state_dict(generator, checkpoint["generator"], checkpoint_path)
    generator.load_state_dict(checkpoint["generator"])
    generator.eval()
    with contextlib.redirect_stdout(io.StringIO()):  # fairseq prints "Removing weight norm..."
        generator.remove_weight_norm()
    logger.info("loaded CodeHiFiGAN %s (K = %d, %d Hz, %s durations)", checkpoint_path,
                config["num_embeddings"], config["sampling_rate"],
                "predicted" if generator.dur_predictor is not None else "1-frame")
    return CodeHiFiGANUnitVocoder(generator, config, **streaming)
