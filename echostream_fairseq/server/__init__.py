"""``echostream-serve``: a websocket server streaming many clients through one model, batched.

Protocol and limits: :mod:`~echostream_fairseq.server.protocol` (docs/server.md); batching of the
streams that are ready: :mod:`~echostream_fairseq.server.scheduler`; the server:
:mod:`~echostream_fairseq.server.app`.
"""

from echostream_fairseq.server.protocol import ServerLimits

__all__ = ["ServerLimits"]
