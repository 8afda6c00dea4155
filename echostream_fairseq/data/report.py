"""Deprecated alias of :mod:`echostream_fairseq.corpus.report`, removed in 0.2."""

from echostream_fairseq.corpus.report import *  # noqa: F401,F403
from echostream_fairseq.corpus.report import render_markdown, split_summary, write_report  # noqa: F401
