"""Optimisation by parameter group: seed-group tags, per-group learning rates, decoder freezing.

Importing this package registers the ``echostream_adam`` optimizer with fairseq.
"""

from echostream_fairseq.optim.adam import EchoStreamAdam, EchoStreamAdamConfig
from echostream_fairseq.optim.groups import OTHER_GROUP, tag_parameter_groups

__all__ = ["EchoStreamAdam", "EchoStreamAdamConfig", "OTHER_GROUP", "tag_parameter_groups"]
