"""EchoStream: streaming speech-to-speech translation as a fairseq plugin.

Importing this package (what ``--user-dir echostream_fairseq`` does) applies the torch, fairseq
and logging patches of :mod:`echostream_fairseq.compat` (checkpoints load safely under torch's
weights-only unpickling, resume state, one log-file copy) and registers every model, task,
criterion and the ``echostream_adam`` optimizer. SimulEval is not touched here. An uncaught
:class:`~echostream_fairseq.errors.UserError` (a bad checkpoint, manifest or config) in a program
whose ``main`` is not ours (``simuleval``, ``fairseq-generate``) prints one line and exits 2.
"""

from echostream_fairseq import compat, errors

compat.install()
errors.install_excepthook()

# registration side effects: models, tasks, criterions and the echostream_adam optimizer
from echostream_fairseq import criterions, models, optim, tasks  # noqa: E402
# kept as package attributes for code that reaches them as echostream_fairseq.<name>
from echostream_fairseq import checkpoint_safety, checkpoints, training, training_logs  # noqa: E402

__all__ = ["checkpoint_safety", "checkpoints", "compat", "criterions", "errors", "models", "optim",
           "tasks", "training", "training_logs"]
__version__ = "0.1.0"
