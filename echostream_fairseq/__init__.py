"""EchoStream: streaming speech-to-speech translation as a fairseq plugin.

Importing this package (what ``--user-dir echostream_fairseq`` does) makes fairseq's checkpoint
loader safe under torch's weights-only unpickling and registers every model, task and criterion.
"""

from echostream_fairseq import checkpoint_safety

checkpoint_safety.install()

from echostream_fairseq import criterions, models, tasks  # noqa: E402  (registration side effects)

__all__ = ["checkpoint_safety", "criterions", "models", "tasks"]
__version__ = "0.1.0"
