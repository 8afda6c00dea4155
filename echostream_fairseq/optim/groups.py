"""Seed parameter groups on a model's parameters: what per-group learning rates and freezing read.

The groups are :data:`echostream_fairseq.checkpoints.PARAMETER_GROUPS` (the one mapping of group
names to state-dict prefixes); ``EchoStreamModel.build_model`` tags every parameter.
"""

import logging
from typing import Dict

from torch import nn

from echostream_fairseq.checkpoints import group_of

__all__ = ["OTHER_GROUP", "tag_parameter_groups"]

logger = logging.getLogger(__name__)

OTHER_GROUP = "other"  # parameters outside the six StreamSpeech prefixes (none in echostream)


def tag_parameter_groups(model: nn.Module) -> Dict[str, int]:
    """Sets ``p.param_group`` to the seed group of every parameter (``other`` if none).

    Returns:
        Parameter count per group (tied parameters counted once).
    """
    counts: Dict[str, int] = {}
    for name, param in model.named_parameters():
        group = group_of(name) or OTHER_GROUP
        param.param_group = group
        counts[group] = counts.get(group, 0) + 1
    return counts
