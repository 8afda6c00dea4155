"""The target voice itself as the unit vocoder: units are piper phoneme ids.

piper synthesises from phoneme ids (``PiperVoice.phoneme_ids_to_audio``), so a corpus whose units
are the phoneme ids of its English text (:func:`phoneme_units`) needs no fitted vocoder: ground-
truth units through :class:`PiperPhonemeVocoder` give exactly the corpus's target speech (piper
runs noise-free, as the corpus builder does). A unit is a phoneme id of the voice's
``phoneme_id_map``; K is the largest id + 1. The ids of pad, ``^`` and ``$`` are never units (a
model that writes them writes nothing audible: they are dropped).

Whole utterances are synthesised sentence by sentence, as ``PiperVoice.synthesize`` does (a
piece ends after ``.``, ``?`` or ``!``). Streaming emits a piece as soon as it is complete: at a
sentence end, or at a word boundary once ``phrase_units`` phonemes are pending, so a long sentence
is spoken phrase by phrase. The joins fall where the voice pauses anyway, between words; what
they cost the recogniser is measured by ``echostream-measure-vocoder`` (streamed ceiling).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from echostream_fairseq.data.audio import SAMPLE_RATE, resample
from echostream_fairseq.vocoder.base import StreamingVocoderState, UnitVocoder, validate_units

logger = logging.getLogger(__name__)

__all__ = ["PIPER_PHONEMES", "PiperPhonemeStreamState", "PiperPhonemeVocoder", "phoneme_units"]

PIPER_PHONEMES = "piper_phonemes"  # the vocoder type in config_gcmvn.yaml
SENTENCE_ENDS = (".", "?", "!")
WORD_BREAKS = (" ", ",", ";", ":")
DEFAULT_PHRASE_UNITS = 12  # about one second of speech at the voice's ~13 phonemes per second


def _voice(synthesizer: Any = None) -> Any:
    from echostream_fairseq.corpus.tts import PiperSynthesizer

    return synthesizer or PiperSynthesizer()


def phoneme_units(text: str, synthesizer: Any = None) -> list[int]:
    """The unit sequence of ``text``: the voice's phoneme ids of every sentence, in order."""
    voice = _voice(synthesizer).voice
    id_map = voice.config.phoneme_id_map
    return [i for sentence in voice.phonemize(text) for symbol in sentence
            for i in id_map.get(symbol, [])]


@dataclass
class PiperPhonemeStreamState(StreamingVocoderState):
    """Streaming state: units received but not yet spoken (shape (P,))."""

    pending: list[int] = field(default_factory=list)
    mid_sentence: bool = False  # the last piece spoken ended inside a sentence


# Inside a sentence a piece's edge keeps this much of its silence: a pause between words.
WORD_GAP_S = 0.05
_SILENCE = 0.02  # of the piece's peak


def _trim_silence(audio: np.ndarray, sample_rate: int, start: bool, end: bool) -> np.ndarray:
    """``audio`` with its leading (``start``) and trailing (``end``) silence cut to a word gap."""
    if audio.size == 0 or not (start or end):
        return audio
    loud = np.flatnonzero(np.abs(audio) > _SILENCE * float(np.max(np.abs(audio))))
    if loud.size == 0:
        return audio
    gap = int(WORD_GAP_S * sample_rate)
    first = max(0, int(loud[0]) - gap) if start else 0
    last = min(audio.size, int(loud[-1]) + 1 + gap) if end else audio.size
    return audio[first:last]


class PiperPhonemeVocoder(UnitVocoder):
    """Units = piper phoneme ids; audio = the piper voice, noise-free, at 16 kHz.

    Args:
        synthesizer: a :class:`~echostream_fairseq.corpus.tts.PiperSynthesizer` (default: the
            ``joe`` voice with one thread).
        phrase_units: streaming emits at a word boundary once this many units are pending.
    """

    def __init__(self, synthesizer: Any = None, phrase_units: int = DEFAULT_PHRASE_UNITS) -> None:
        self._synthesizer = _voice(synthesizer)
        config = self._synthesizer.voice.config
        id_map = config.phoneme_id_map
        self._pad, self._bos, self._eos = (id_map[s][0] for s in ("_", "^", "$"))
        self._num_units = max(i for ids in id_map.values() for i in ids) + 1
        self._sentence_ends = {i for s in SENTENCE_ENDS for i in id_map.get(s, [])}
        self._breaks = self._sentence_ends | {i for s in WORD_BREAKS for i in id_map.get(s, [])}
        self._hop = getattr(config, "hop_length", 256)
        self.phrase_units = phrase_units

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def num_units(self) -> int:
        return self._num_units

    @property
    def samples_per_frame(self) -> int:
        """16 kHz samples per frame of piper's decoder (its hop at 22,050 Hz, resampled)."""
        return round(self._hop * SAMPLE_RATE / self._synthesizer.sample_rate)

    def _speak(self, units: Sequence[int]) -> np.ndarray:
        """One piece (one piper call), 16 kHz float32, shape (T,)."""
        from piper import SynthesisConfig

        from echostream_fairseq.corpus.tts import PIPER_NOISE_SCALE, PIPER_NOISE_W_SCALE

        specials = (self._pad, self._bos, self._eos)
        spoken = [u for u in units if u not in specials]
        if not spoken:
            return np.zeros(0, dtype=np.float32)
        ids = [self._bos, self._pad]
        for unit in spoken:
            ids += [unit, self._pad]
        ids.append(self._eos)
        config = SynthesisConfig(noise_scale=PIPER_NOISE_SCALE, noise_w_scale=PIPER_NOISE_W_SCALE)
        audio = np.asarray(self._synthesizer.voice.phoneme_ids_to_audio(ids, syn_config=config))
        # what PiperVoice.synthesize does to each sentence (normalize_audio=True, volume 1)
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        audio = np.zeros_like(audio) if peak < 1e-8 else audio / peak
        return np.clip(audio, -1.0, 1.0).astype(np.float32)

    def _pieces(self, units: Sequence[int]) -> tuple[list[list[int]], list[int]]:
        """``(sentences, rest)``: the complete sentences of ``units`` and what follows them."""
        pieces, current = [], []
        for unit in units:
            current.append(int(unit))
            if unit in self._sentence_ends:
                pieces.append(current)
                current = []
        return pieces, current

    def _audio(self, pieces: Sequence[Sequence[int]], joins: Sequence[tuple[bool, bool]] = ()
               ) -> np.ndarray:
        """The pieces spoken and joined, resampled once as PiperSynthesizer does (so that whole
        synthesis is bit-equal to the corpus wavs). ``joins[i] = (starts_mid_sentence,
        ends_mid_sentence)``: piper pads every call with silence, which inside a sentence is
        trimmed to a word gap."""
        raw = []
        for i, piece in enumerate(pieces):
            audio = self._speak(piece)
            starts_mid, ends_mid = joins[i] if i < len(joins) else (False, False)
            raw.append(_trim_silence(audio, self._synthesizer.sample_rate, starts_mid, ends_mid))
        raw = [audio for audio in raw if audio.size]
        if not raw:
            return np.zeros(0, dtype=np.float32)
        return resample(np.concatenate(raw), self._synthesizer.sample_rate, SAMPLE_RATE)

    def synthesize_chunk(self, new_units: Sequence[int], state: Optional[StreamingVocoderState],
                         final: bool) -> tuple[np.ndarray, PiperPhonemeStreamState]:
        units = validate_units(new_units, self.num_units).tolist()
        if state is None:
            state = PiperPhonemeStreamState()
        if not isinstance(state, PiperPhonemeStreamState):
            raise ValueError(f"expected a PiperPhonemeStreamState, got {type(state).__name__}")
        if state.finished:
            raise ValueError("the utterance was finished (final=True); start a new one")
        sentences, rest = self._pieces(state.pending + units)
        ready = sentences
        if final:
            ready, rest = sentences + [rest], []
            state.finished = True
        elif len(rest) >= self.phrase_units:  # a long sentence: speak its words so far
            cut = max((i for i, u in enumerate(rest) if u in self._breaks), default=-1)
            if cut >= 0:
                ready, rest = ready + [rest[:cut + 1]], rest[cut + 1:]
        ready = [piece for piece in ready if piece]
        joins = []
        for number, piece in enumerate(ready):
            last_of_all = final and number == len(ready) - 1
            ends_mid = piece[-1] not in self._sentence_ends and not last_of_all
            joins.append((state.mid_sentence, ends_mid))
            state.mid_sentence = ends_mid
        state.pending = rest
        audio = self._audio(ready, joins)
        state.emitted_samples += audio.shape[0]
        return audio, state
