"""Import shims that let StreamSpeech's own code (ictnlp/StreamSpeech at 375a73a) run on
EchoStream's pins and corpus, applied from outside its tree by :func:`install`:

1. ``examples``: StreamSpeech imports fairseq's ``examples`` package by its top-level name; the
   installed fairseq ships it as ``fairseq.examples``, aliased here.
2. ``torchaudio.sox_effects``: removed in torchaudio 2.9; fairseq's ``convert_waveform`` imports it
   on every call. A stand-in with ``apply_effects_tensor`` for the ``rate`` and ``channels`` effects
   (torchaudio.functional.resample, channel mean) takes its place.
3. Checkpoints: fairseq 0.12 calls ``torch.load`` without ``weights_only``, and torch >= 2.6 refuses
   the ``argparse.Namespace`` in every fairseq checkpoint (a resumed training run, the agent's
   model); that one class is allow-listed.
4. The unit vocoder (agent only): the agent builds a CodeHiFiGAN with duration prediction. Our
   corpus's units are piper phoneme ids, spoken by piper itself, so
   :class:`PiperUnitsForStreamSpeech` takes its place: EchoStream's piper vocoder (loaded without
   EchoStream's fairseq registrations, which collide with StreamSpeech's) in the CodeHiFiGAN call
   convention ``vocoder({"code": units}, dur_prediction) -> (wav, durations in 320-sample
   frames)``. Like the CodeHiFiGAN, it re-synthesises every unit so far on each call; the agent
   keeps the samples after the ones it already wrote.

5. SimulEval 1.1.4 logs no compute times for speech output (``"elapsed": []``), so no ``*_CA``
   latency could be scored: EchoStream's own fix (:mod:`echostream_fairseq.compat.simuleval`,
   which EchoStream's agents apply too) is applied by :func:`install_simuleval_fixes` (agent only).
6. The agents' input rate (agent only, :func:`load_agent_module`): their feature extractor cuts
   frames at ``--sample-rate`` but converts the samples to 16 kHz from a hard-wired 48 kHz (its own
   inputs' rate); it is made to convert from ``--sample-rate``, so our 16 kHz wavs stay 16 kHz.
7. The speech->text agent (agent only): it imports
   ``examples.speech_to_speech.asr_bleu.utils``, which it never uses and whose import needs
   torchaudio's CTC decoder (the flashlight-text package); an empty module stands in for it
   (:func:`load_agent_module`).

Never import this module in a process that imports ``echostream_fairseq`` (the package).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from pathlib import Path

import numpy as np
import torch

HOP = 320  # samples per duration frame in StreamSpeech's agent (CodeHiFiGAN at 16 kHz)


def _alias_fairseq_examples() -> None:
    if "examples" not in sys.modules:
        sys.modules["examples"] = importlib.import_module("fairseq.examples")


def _sox_effects_stand_in() -> None:
    import torchaudio
    import torchaudio.functional as F

    if "torchaudio.sox_effects" in sys.modules or hasattr(torchaudio, "sox_effects"):
        return

    def apply_effects_tensor(waveform, sample_rate, effects, channels_first=True):
        if waveform.size(-1) == 0:  # resample cannot take empty input; sox returns it empty
            rates = [int(effect[1]) for effect in effects if effect[0] == "rate"]
            return waveform, rates[-1] if rates else sample_rate
        for effect in effects:
            if effect[0] == "rate":
                rate = int(effect[1])
                waveform, sample_rate = F.resample(waveform, sample_rate, rate), rate
            elif effect[0] == "channels" and effect[1] == "1":
                waveform = waveform.mean(dim=0, keepdim=True)
            else:
                raise NotImplementedError(f"sox effect {effect} (torchaudio 2.11 has no sox)")
        return waveform, sample_rate

    module = types.ModuleType("torchaudio.sox_effects")
    module.apply_effects_tensor = apply_effects_tensor
    sys.modules["torchaudio.sox_effects"] = module
    torchaudio.sox_effects = module


def _echostream_module(name: str):
    """An EchoStream module imported without ``echostream_fairseq/__init__`` (which registers
    EchoStream's fairseq criterion under StreamSpeech's name): the package is entered as a bare
    namespace, so only the modules asked for (and what they import) run."""
    if "echostream_fairseq" not in sys.modules:
        package = types.ModuleType("echostream_fairseq")
        package.__path__ = [str(Path(__file__).resolve().parents[2] / "echostream_fairseq")]
        sys.modules["echostream_fairseq"] = package
    return importlib.import_module(name)


class PiperUnitsForStreamSpeech(torch.nn.Module):
    """EchoStream's piper phoneme vocoder in the call convention of StreamSpeech's
    ``CodeHiFiGANVocoderWithDur``.

    The agent passes every unit of the sentence so far and keeps ``wav[-durations[-n:].sum() *
    320:]`` for its ``n`` new units. Piper gives no per-unit durations, so the new units are given
    the samples of this synthesis past those already handed out (whole 320-sample frames; the rest
    carries over), and the old units none. :meth:`reset` starts a sentence (the agent's ``reset``).
    """

    def __init__(self) -> None:
        super().__init__()
        piper = _echostream_module("echostream_fairseq.vocoder.piper_phonemes")
        self.vocoder = piper.PiperPhonemeVocoder()
        self.reset()

    def reset(self) -> None:
        self.units_seen = 0
        self.samples_given = 0

    def forward(self, x, dur_prediction: bool = True):
        units = x["code"].view(-1).tolist()
        wav = self.vocoder.synthesize(units) if units else np.zeros(0, dtype=np.float32)
        new_units = max(len(units) - self.units_seen, 1)
        frames = max(wav.shape[0] - self.samples_given, 0) // HOP
        durations = torch.zeros(1, max(len(units), 1), dtype=torch.long)
        durations[0, -new_units:] = frames // new_units
        durations[0, -1] += frames - int(durations[0, -new_units:].sum())
        self.units_seen = len(units)
        self.samples_given += frames * HOP
        return torch.from_numpy(np.ascontiguousarray(wav)), durations


def _allow_fairseq_checkpoints() -> None:
    import argparse

    torch.serialization.add_safe_globals([argparse.Namespace])


def install_simuleval_fixes() -> None:
    """Shim 5: SimulEval's ``--computation-aware`` fixes, as EchoStream's agents apply them."""
    _echostream_module("echostream_fairseq.compat.simuleval").install()


def _read_at_the_agents_sample_rate(extractor_class: type) -> None:
    """Shim 6: StreamSpeech's ``OnlineFeatureExtractor`` cuts frames at ``--sample-rate`` but
    converts the samples to 16 kHz from ``sr=ORG_SAMPLE_RATE`` (48 kHz), an argument its agents
    never pass; its own inputs are 48 kHz, ours 16 kHz, which it would shrink to a third
    (measured: WER 98 % on speech whose dev ASR CTC loss is the lower of the two systems')."""
    convert = extractor_class.__call__

    def __call__(self, new_samples, sr=None):
        return convert(self, new_samples, self.sample_rate if sr is None else sr)

    extractor_class.__call__ = __call__


def load_agent_module(file_name: str):
    """``agent/<file_name>`` of the StreamSpeech checkout in ``$STREAMSPEECH_SRC``, loaded
    unchanged (its ``@entrypoint`` registers its agent class with SimulEval), with shim 6 on its
    feature extractor and shim 7 before it is loaded."""
    src = Path(os.environ.get("STREAMSPEECH_SRC", "")).resolve()
    agent_file = src / "agent" / file_name
    if not agent_file.is_file():
        raise SystemExit(f"error: {agent_file}: not found (STREAMSPEECH_SRC: a StreamSpeech "
                         "checkout)")
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
    unused = "examples.speech_to_speech.asr_bleu.utils"
    if unused not in sys.modules:
        sys.modules[unused] = types.ModuleType(unused)
        sys.modules[unused].retrieve_asr_config = sys.modules[unused].ASRGenerator = None
    spec = importlib.util.spec_from_file_location(agent_file.stem.replace(".", "_"), agent_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _read_at_the_agents_sample_rate(module.OnlineFeatureExtractor)
    return module


def install() -> None:
    """Shims 1-3 (the vocoder is swapped by the agent file, which knows the agent's module)."""
    _alias_fairseq_examples()
    _sox_effects_stand_in()
    _allow_fairseq_checkpoints()
