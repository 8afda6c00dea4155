"""Deprecated alias of :mod:`echostream_fairseq.models.state`, removed in 0.2."""

from echostream_fairseq.models.state import *  # noqa: F401,F403
from echostream_fairseq.models.state import (EmformerLayerState, EmformerState, EncoderState,  # noqa: F401
                                             StreamingGeometry, SubsamplerState, hold_pending,
                                             pending_frames, reorder_state, stack_states,
                                             state_numel, unstack_states)
