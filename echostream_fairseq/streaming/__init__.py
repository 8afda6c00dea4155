"""Incremental streaming inference: features, READ/WRITE policies and the S2ST pipeline.

Nothing here imports SimulEval; ``echostream_fairseq.agents`` wraps the pipeline for it.
"""

from echostream_fairseq.streaming.features import StreamingFbank, StreamingResampler
from echostream_fairseq.streaming.pipeline import (PipelineConfig, ReencodingS2ST, SentenceEnd,
                                                  StepOutput, StreamingS2ST,
                                                  StreamingS2STPipeline, UtteranceState)
from echostream_fairseq.streaming.policy import CtcPolicy, Decision, PolicyCounts
from echostream_fairseq.data.text import complete_words, detokenize

__all__ = [
    "CtcPolicy",
    "Decision",
    "PipelineConfig",
    "PolicyCounts",
    "ReencodingS2ST",
    "SentenceEnd",
    "StepOutput",
    "StreamingFbank",
    "StreamingResampler",
    "StreamingS2ST",
    "StreamingS2STPipeline",
    "UtteranceState",
    "complete_words",
    "detokenize",
]
