"""Run-time decoding options of the streaming pipeline: one dataclass, one YAML format, one set of
command-line options shared by every command that decodes (agents, evaluation, T2U measurement,
benchmarks, the server).

Precedence: :class:`PipelineConfig`'s defaults (StreamSpeech's), then ``--decode-config FILE``
(``configs/decode/*.yaml``), then each option given on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from echostream_fairseq.errors import ConfigError

from echostream_fairseq.decoding.ctc import UNIT_BLANK_PENALTY_HELP

__all__ = ["DecodeConfigError", "PipelineConfig", "WHOLE_WORD_CHOICES", "add_pipeline_arguments",
           "segment_length_for_chunk"]

#: ``--whole-word`` / YAML ``whole_word`` spellings and the :class:`PipelineConfig` value of each
WHOLE_WORD_CHOICES: Dict[str, Optional[bool]] = {"auto": None, "on": True, "off": False}


class DecodeConfigError(ConfigError):
    """A decode config file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class PipelineConfig:
    """Run-time options (model shapes come from the checkpoint).

    Attributes:
        segment_length: Emformer segment in encoder frames; None = the model's.
        stride_n, lagging_k1: :class:`~echostream_fairseq.streaming.policy.CtcPolicy` options.
        max_len_a, max_len_b: the MT output is capped at ``a * encoder_frames + b`` subwords
            (the mini corpus has 0.19 subwords per 40 ms frame on average, 0.37 at most; the cap
            stops a model that never writes ``</s>`` from decoding runaway text).
        speech: run T2U, the unit decoder and the vocoder (False: text only, faster).
        unit_k2, unit_n2: the unit decoder's cross-attention mask at inference (StreamSpeech's
            ``--k2``/``--n2`` training mask, which the mini recipe trains with ``n2`` drawn at
            random); it is what makes units incremental.
        unit_blank_penalty: lowers the unit CTC blank's score before the greedy choice (0: plain
            greedy, as StreamSpeech); see :func:`echostream_fairseq.decoding.ctc.best_unit_labels`.
        whole_word: write only complete target words (StreamSpeech's mode: one subword more
            per write, the trailing possibly-incomplete word dropped and re-decoded later);
            None = on for segments of 640 ms or more, as StreamSpeech's agents.
        frame_lead_in: start every stream with the fbank window's overhang (window - shift: 15
            ms) of zeros, so each fbank frame ends on the shift grid and a segment's encoder
            frames are complete as soon as its audio is in. Without it, the last frame of a
            segment needs the first 15 ms of the next one, and with segment-sized source chunks
            every segment is encoded one chunk late (the features shift by 15 ms: the model
            hears 15 ms more silence before the stream).
        reencode: StreamSpeech's method (everything over the whole prefix at every step), the
            baseline of ``bench/streaming_cost.py`` (one sentence per stream, as StreamSpeech).
        single_sentence: one sentence per stream, as the models are trained (SimulEval's
            per-sentence evaluation); False: sentence after sentence, each ended at a pause.
        sentence_pause_ms: a sentence ends once the streaming ASR has written a token and then
            only CTC blanks for this long.
        max_sentence_ms: a sentence also ends after this much source (bounds the memory of a
            stream whose ASR never pauses).
    """

    segment_length: Optional[int] = None
    stride_n: int = 1
    lagging_k1: int = 0
    max_len_a: float = 0.5
    max_len_b: int = 10
    speech: bool = True
    unit_k2: int = 0
    unit_n2: int = 1
    unit_blank_penalty: float = 0.0
    whole_word: Optional[bool] = None
    frame_lead_in: bool = False
    reencode: bool = False
    single_sentence: bool = False
    sentence_pause_ms: int = 480
    max_sentence_ms: int = 30000

    def __post_init__(self) -> None:
        if self.segment_length is not None and self.segment_length < 1:
            raise DecodeConfigError(
                f"segment_length must be >= 1 encoder frame, got {self.segment_length}")
        for name, minimum in (("stride_n", 1), ("lagging_k1", 0), ("unit_k2", 0), ("unit_n2", 1),
                              ("max_len_b", 0), ("sentence_pause_ms", 1),
                              ("max_sentence_ms", 1)):
            if getattr(self, name) < minimum:
                raise DecodeConfigError(f"{name} must be >= {minimum}, got {getattr(self, name)}")
        if self.max_len_a < 0:
            raise DecodeConfigError(f"max_len_a must be >= 0, got {self.max_len_a}")

    # --------------------------------------------------------------------------- YAML
    @classmethod
    def from_yaml(cls, path: Path, **overrides: Any) -> "PipelineConfig":
        """The config in ``path`` (a ``configs/decode/*.yaml`` mapping of field names), then
        ``overrides``. Unknown keys and wrong types are :class:`DecodeConfigError` naming the
        file."""
        values = read_decode_yaml(Path(path))
        try:
            config = cls().replace(**values)
        except DecodeConfigError as error:  # a value out of range: name the file
            raise DecodeConfigError(f"{path}: {error}") from None
        return config.replace(**overrides)

    def to_dict(self) -> Dict[str, Any]:
        """The fields as YAML/JSON values (``whole_word`` spelled auto/on/off)."""
        values = dataclasses.asdict(self)
        values["whole_word"] = {
            value: key for key, value in WHOLE_WORD_CHOICES.items()}[self.whole_word]
        return values

    def replace(self, **changes: Any) -> "PipelineConfig":
        return dataclasses.replace(self, **changes)

    def for_chunk(self, model: Any, chunk_ms: float) -> "PipelineConfig":
        """This config, its ``segment_length`` (when not set) from source chunks of
        ``chunk_ms`` (:func:`segment_length_for_chunk`)."""
        if self.segment_length is not None:
            return self
        return self.replace(segment_length=segment_length_for_chunk(model, chunk_ms))

    # --------------------------------------------------------------------------- argparse
    @classmethod
    def from_args(cls, args: argparse.Namespace, **overrides: Any) -> "PipelineConfig":
        """The config of options added by :func:`add_pipeline_arguments`: ``--decode-config``
        first, then each option given (``None`` = not given), then ``overrides``."""
        config = cls.from_yaml(args.decode_config) if args.decode_config else cls()
        given = {name: getattr(args, name) for name in _CLI_FIELDS
                 if getattr(args, name) is not None}
        if "whole_word" in given:
            given["whole_word"] = WHOLE_WORD_CHOICES[given["whole_word"]]
        return config.replace(**given, **overrides)


# fields that add_pipeline_arguments exposes (speech is each command's own choice)
_CLI_FIELDS = ("segment_length", "stride_n", "lagging_k1", "max_len_a", "max_len_b", "whole_word",
               "unit_k2", "unit_n2", "unit_blank_penalty", "frame_lead_in", "reencode",
               "single_sentence", "sentence_pause_ms", "max_sentence_ms")
_DEFAULTS = PipelineConfig()


def add_pipeline_arguments(parser: argparse.ArgumentParser | Any) -> None:
    """The decoding options of :class:`PipelineConfig` on ``parser`` (or an argument group).

    Every default is ``None`` ("not given"), so :meth:`PipelineConfig.from_args` can tell the
    command line from the ``--decode-config`` file; the help shows the built-in default.
    """
    a = parser.add_argument
    a("--decode-config", type=Path, default=None,
      help="decoding settings YAML (configs/decode/*.yaml); options given here override it")
    a("--segment-length", type=int, default=None,
      help="Emformer segment in encoder frames (default: from the source chunk size, else the "
           "model's)")
    a("--stride-n", type=int, default=None,
      help=f"CTC policy: tokens both CTC prefixes must grow by (default {_DEFAULTS.stride_n})")
    a("--lagging-k1", type=int, default=None,
      help=f"CTC policy: subwords the MT output lags the ST-CTC (default {_DEFAULTS.lagging_k1})")
    a("--max-len-a", type=float, default=None,
      help=f"MT length cap a * encoder frames + b: a (default {_DEFAULTS.max_len_a})")
    a("--max-len-b", type=int, default=None,
      help=f"MT length cap a * encoder frames + b: b (default {_DEFAULTS.max_len_b})")
    a("--whole-word", choices=sorted(WHOLE_WORD_CHOICES), default=None,
      help="write complete target words only (auto, the default: from 640 ms segments, as "
           "StreamSpeech)")
    a("--unit-k2", type=int, default=None,
      help="unit decoder mask at inference: extra T2U states each unit step waits for "
           f"(default {_DEFAULTS.unit_k2})")
    a("--unit-n2", type=int, default=None,
      help=f"unit decoder mask at inference: block size (default {_DEFAULTS.unit_n2})")
    a("--unit-blank-penalty", type=float, default=None,
      help=f"{UNIT_BLANK_PENALTY_HELP} (default {_DEFAULTS.unit_blank_penalty:g})")
    a("--frame-lead-in", action=argparse.BooleanOptionalAction, default=None,
      help="start the stream with 15 ms of zeros so a segment is encoded as soon as its audio "
           "is in (otherwise one source chunk later when chunks are segment-sized; default "
           f"{'on' if _DEFAULTS.frame_lead_in else 'off'})")
    a("--reencode", action="store_true", default=None,
      help="StreamSpeech's method as a baseline: fbank, encoder and CTC over the whole prefix, "
           "units over the whole text, every step")
    a("--single-sentence", action="store_true", default=None,
      help="one sentence per stream (SimulEval's per-sentence evaluation); by default a stream "
           "is translated sentence after sentence, each ended at a pause")
    a("--sentence-pause-ms", type=int, default=None,
      help="a sentence ends after this much source in which the streaming ASR wrote only "
           f"blanks (default {_DEFAULTS.sentence_pause_ms})")
    a("--max-sentence-ms", type=int, default=None,
      help=f"a sentence also ends after this much source (default {_DEFAULTS.max_sentence_ms})")


def read_decode_yaml(path: Path) -> Dict[str, Any]:
    """The checked mapping of a decode config file (field names -> values)."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DecodeConfigError(f"{path}: no such decode config") from None
    except IsADirectoryError:
        raise DecodeConfigError(f"{path}: a folder, not a decode config YAML") from None
    except UnicodeDecodeError as error:
        raise DecodeConfigError(
            f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except yaml.YAMLError as error:
        raise DecodeConfigError(f"{path}: not valid YAML: {error}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise DecodeConfigError(
            f"{path}: expected a mapping of decoding options, got {type(raw).__name__}")
    fields = {field.name: field for field in dataclasses.fields(PipelineConfig)}
    values: Dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            raise DecodeConfigError(f"{path}: unknown key {key!r} (known: {', '.join(fields)})")
        values[key] = _checked_value(path, key, value)
    return values


def _checked_value(path: Path, key: str, value: Any) -> Any:
    if key == "whole_word":
        if isinstance(value, bool) or value is None:  # YAML reads on/off as booleans
            return value
        if value in WHOLE_WORD_CHOICES:
            return WHOLE_WORD_CHOICES[value]
        raise DecodeConfigError(f"{path}: whole_word must be auto, on or off, got {value!r}")
    default = getattr(_DEFAULTS, key)
    if key == "segment_length" and value is None:
        return None
    if isinstance(default, bool) or key == "segment_length":
        expected = bool if isinstance(default, bool) else int
    else:
        expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise DecodeConfigError(f"{path}: {key} must be {expected.__name__}, got {value!r}")
    return value


def segment_length_for_chunk(model: Any, chunk_ms: float) -> Optional[int]:
    """Emformer segment (encoder frames) for source chunks of ``chunk_ms`` milliseconds.

    StreamSpeech's rule: encoder chunk = source segment / encoder frame duration (floor). A chunk
    shorter than one encoder frame gives None, i.e. the model's own segment length. The agents,
    evaluation, the examples and the benches share this one rule.
    """
    frames = model.encoder.geometry().ms_to_encoder_frames(chunk_ms)
    return frames if frames >= 1 else None
