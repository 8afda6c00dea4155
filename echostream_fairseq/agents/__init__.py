"""SimulEval 1.1.4 agents wrapping :class:`~echostream_fairseq.streaming.StreamingS2STPipeline`.

Each agent module registers one ``@entrypoint`` class; pass it with ``--agent-class``:

- ``echostream_fairseq.agents.speech_to_speech.EchoStreamSpeechToSpeechAgent``
- ``echostream_fairseq.agents.speech_to_text.EchoStreamSpeechToTextAgent``
- ``echostream_fairseq.agents.streaming_asr.EchoStreamASRAgent``

The modules are not imported here: ``@entrypoint`` appends to SimulEval's system list on import,
and importing all three would make ``--agent-class`` mandatory for each of them.
"""

from echostream_fairseq import compat

compat.install_simuleval()  # SimulEval 1.1.4's --computation-aware fixes, for every agent run
