"""StreamSpeech's own speech->speech agent on EchoStream's pins and units (SimulEval ``--agent``).

It applies :mod:`streamspeech_shims` (and SimulEval's fixes, shim 5), loads
``agent/speech_to_speech.streamspeech.agent.py`` from the StreamSpeech checkout in
``$STREAMSPEECH_SRC`` unchanged, replaces the CodeHiFiGAN it builds by EchoStream's piper unit
vocoder (shim 4), makes its feature extractor read audio at the agent's own ``--sample-rate``
(shim 6) and exposes the agent class, whose ``reset`` also starts the vocoder's sentence.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from simuleval.utils import entrypoint
from simuleval.utils.agent import EVALUATION_SYSTEM_LIST

sys.path.insert(0, str(Path(__file__).resolve().parent))
import streamspeech_shims  # noqa: E402
from streamspeech_shims import PiperUnitsForStreamSpeech  # noqa: E402


def _streamspeech_agent_class():
    module = streamspeech_shims.load_agent_module("speech_to_speech.streamspeech.agent.py")
    import agent.tts.vocoder as their_vocoder  # the package the agent imports it from

    their_vocoder.CodeHiFiGANVocoderWithDur = lambda checkpoint, cfg: PiperUnitsForStreamSpeech()
    return module.StreamSpeechS2STAgent


streamspeech_shims.install()
streamspeech_shims.install_simuleval_fixes()
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
_Agent = _streamspeech_agent_class()


class StreamSpeechPiperAgent(_Agent):
    """StreamSpeech's agent; its reset also starts the vocoder's sentence."""

    def reset(self):
        super().reset()
        if isinstance(getattr(self, "vocoder", None), PiperUnitsForStreamSpeech):
            self.vocoder.reset()


# SimulEval runs the one @entrypoint class of an --agent file: this one, not the class inside
EVALUATION_SYSTEM_LIST.remove(_Agent)
entrypoint(StreamSpeechPiperAgent)
del _Agent
