"""Alias of :mod:`echostream_fairseq.decoding.generate`, kept for fairseq-generate users and
scripts that import the generators from here."""

from echostream_fairseq.decoding.generate import *  # noqa: F401,F403
from echostream_fairseq.decoding.generate import (SpeechToTextModel, SubwordDetokenizer,  # noqa: F401
                                                  TextGenerator, UnitGenerator, greedy_unit_ctc,
                                                  read_generate_output)
