"""SimulEval speech -> text agent: the MT decoder's words, written as they complete.

    simuleval --agent-class echostream_fairseq.agents.speech_to_text.EchoStreamSpeechToTextAgent \\
        --checkpoint exp/demo_mini/checkpoints/checkpoint_best.pt --data-dir data/demo \\
        --source wav_list.txt --target target.txt --source-segment-size 320 --output out
"""

from __future__ import annotations

import logging
from typing import Optional

from simuleval.agents import SpeechToTextAgent
from simuleval.utils import entrypoint

from echostream_fairseq.agents.base import EchoStreamAgentBase
from echostream_fairseq.streaming.pipeline import StepOutput

logger = logging.getLogger(__name__)

__all__ = ["EchoStreamSpeechToTextAgent"]


@entrypoint
class EchoStreamSpeechToTextAgent(EchoStreamAgentBase, SpeechToTextAgent):
    """Streaming speech translation to text (greedy MT under StreamSpeech's CTC policy)."""

    needs_speech = False

    def make_content(self, output: StepOutput) -> Optional[str]:
        return output.target_text or None

    def empty_content(self, output: StepOutput) -> str:
        return ""
