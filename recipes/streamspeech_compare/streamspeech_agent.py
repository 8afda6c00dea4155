"""StreamSpeech's own speech->speech agent on EchoStream's pins and units (SimulEval ``--agent``).

It applies :mod:`streamspeech_shims` (and SimulEval's fixes, shim 5), loads
``agent/speech_to_speech.streamspeech.agent.py`` from the StreamSpeech checkout in
``$STREAMSPEECH_SRC`` unchanged, replaces the CodeHiFiGAN it builds by EchoStream's piper unit
vocoder (shim 4), makes its feature extractor read audio at the agent's own ``--sample-rate``
(shim 6) and exposes the agent class, whose ``reset`` also starts the vocoder's sentence.
"""

from __future__ import annotations

import importlib.util
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
    src = Path(os.environ.get("STREAMSPEECH_SRC", "")).resolve()
    agent_file = src / "agent" / "speech_to_speech.streamspeech.agent.py"
    if not agent_file.is_file():
        raise SystemExit(f"error: {agent_file}: not found (STREAMSPEECH_SRC: a StreamSpeech "
                         "checkout)")
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
    spec = importlib.util.spec_from_file_location("streamspeech_s2st_agent", agent_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import agent.tts.vocoder as their_vocoder  # the package the agent imports it from

    their_vocoder.CodeHiFiGANVocoderWithDur = lambda checkpoint, cfg: PiperUnitsForStreamSpeech()
    _read_at_the_agents_sample_rate(module.OnlineFeatureExtractor)
    return module.StreamSpeechS2STAgent


def _read_at_the_agents_sample_rate(extractor_class: type) -> None:
    """Shim 6: StreamSpeech's ``OnlineFeatureExtractor`` cuts frames at ``--sample-rate`` but
    converts the samples to 16 kHz from ``sr=ORG_SAMPLE_RATE`` (48 kHz), an argument its agent
    never passes; its own inputs are 48 kHz, ours 16 kHz, which it would shrink to a third
    (measured: WER 98 % on speech whose dev ASR CTC loss is the lower of the two systems')."""
    convert = extractor_class.__call__

    def __call__(self, new_samples, sr=None):
        return convert(self, new_samples, self.sample_rate if sr is None else sr)

    extractor_class.__call__ = __call__


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
