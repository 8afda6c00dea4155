"""EchoStream: streaming speech-to-speech translation as a fairseq plugin.

Importing this package (what ``--user-dir echostream_fairseq`` does) makes fairseq's checkpoint
loader safe under torch's weights-only unpickling and registers every model, task and criterion.
"""

import logging


def _import_fairseq_keeping_root_logging() -> None:
    # fairseq's wav2vec2_classification module calls logging.basicConfig(level=DEBUG) on import,
    # which would turn every program that imports us into a DEBUG logger. Undo only that.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    import fairseq.models  # noqa: F401

    if not handlers and root.handlers:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        root.setLevel(level)


_import_fairseq_keeping_root_logging()

from echostream_fairseq import checkpoint_safety  # noqa: E402

checkpoint_safety.install()

from echostream_fairseq import checkpoints  # noqa: E402

checkpoints.install()

from echostream_fairseq import training_logs  # noqa: E402

training_logs.install()

# registration side effects: models, tasks, criterions and the echostream_adam optimizer
from echostream_fairseq import criterions, models, tasks, training  # noqa: E402

__all__ = ["checkpoint_safety", "checkpoints", "criterions", "models", "tasks", "training", "training_logs"]
__version__ = "0.1.0"
