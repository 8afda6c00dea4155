"""SimulEval speech -> speech agent: units of the new text through the vocoder, new samples only.

    simuleval --user-dir echostream_fairseq/scoring/simuleval_scorers \\
        --agent-class echostream_fairseq.agents.speech_to_speech.EchoStreamSpeechToSpeechAgent \\
        --checkpoint ... --data-dir data/demo --source wav_list.txt --target target.txt \\
        --source-segment-size 320 --quality-metrics ECHOSTREAM_ASR_BLEU \\
        --latency-metrics AL LAAL StartOffset EndOffset --output out
"""

from __future__ import annotations

import logging
from typing import Optional

from simuleval.agents import SpeechToSpeechAgent
from simuleval.data.segments import SpeechSegment
from simuleval.utils import entrypoint

# imported so that --quality-metrics ECHOSTREAM_ASR_BLEU is registered with SimulEval
import echostream_fairseq.scoring.simuleval_scorers  # noqa: F401
from echostream_fairseq.agents.base import EchoStreamAgentBase
from echostream_fairseq.streaming.pipeline import StepOutput

logger = logging.getLogger(__name__)

__all__ = ["EchoStreamSpeechToSpeechAgent"]


@entrypoint
class EchoStreamSpeechToSpeechAgent(EchoStreamAgentBase, SpeechToSpeechAgent):
    """Streaming speech-to-speech translation."""

    needs_speech = True

    def make_content(self, output: StepOutput) -> Optional[SpeechSegment]:
        if output.speech.size == 0:
            return None
        return self.empty_content(output, output.speech.tolist())

    def empty_content(self, output: StepOutput, samples: Optional[list] = None) -> SpeechSegment:
        return SpeechSegment(content=samples or [], sample_rate=output.speech_sample_rate,
                             finished=output.finished, tgt_lang=self.states.tgt_lang)
