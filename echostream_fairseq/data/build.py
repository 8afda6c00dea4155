"""Deprecated alias of :mod:`echostream_fairseq.corpus.build`, removed in 0.2."""

from echostream_fairseq.corpus.build import *  # noqa: F401,F403
from echostream_fairseq.corpus.build import (BuildConfig, build_corpus,  # noqa: F401
                                             single_threaded_math, split_pairs)
