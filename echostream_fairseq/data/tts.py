"""Deprecated alias of :mod:`echostream_fairseq.corpus.tts`, removed in 0.2."""

from echostream_fairseq.corpus.tts import *  # noqa: F401,F403
from echostream_fairseq.corpus.tts import (ESPEAK_VOICES, EspeakVoice, PiperSynthesizer,  # noqa: F401
                                           SynthesisJob, SynthesisStats, espeak_voice_for,
                                           synthesize_all, synthesize_espeak)
