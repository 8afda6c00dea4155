"""StreamSpeech's own speech->text agent on EchoStream's pins (SimulEval ``--agent``), for the
comparison's text-output rows: the latency of the translation as written, no vocoder involved.

It applies :mod:`streamspeech_shims` (1-3, SimulEval's fixes 5) and loads
``agent/speech_to_text.s2tt.streamspeech.agent.py`` from the StreamSpeech checkout in
``$STREAMSPEECH_SRC`` unchanged (shims 6 and 7: its input rate, an unused import); its own
``@entrypoint`` class is the agent.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import streamspeech_shims  # noqa: E402

streamspeech_shims.install()
streamspeech_shims.install_simuleval_fixes()
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
streamspeech_shims.load_agent_module("speech_to_text.s2tt.streamspeech.agent.py")
