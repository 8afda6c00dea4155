"""SimulEval streaming ASR agent: source words of the greedy ASR-CTC head as they complete.

    simuleval --agent-class echostream_fairseq.agents.streaming_asr.EchoStreamASRAgent \\
        --checkpoint ... --source wav_list.txt --target transcripts.txt --quality-metrics WER
"""

from __future__ import annotations

import logging
from typing import Optional

from simuleval.agents import SpeechToTextAgent
from simuleval.utils import entrypoint

from echostream_fairseq.agents.base import EchoStreamAgentBase
from echostream_fairseq.streaming.pipeline import StepOutput

logger = logging.getLogger(__name__)

__all__ = ["EchoStreamASRAgent"]


@entrypoint
class EchoStreamASRAgent(EchoStreamAgentBase, SpeechToTextAgent):
    """Streaming ASR (CTC greedy over the incremental encoder; the MT decoder runs too, since the
    pipeline shares one policy, but its output is not written)."""

    needs_speech = False

    def make_content(self, output: StepOutput) -> Optional[str]:
        return output.asr_text or None

    def empty_content(self, output: StepOutput) -> str:
        return ""
