"""Unit vocoders: discrete units -> 16 kHz speech, whole utterance or chunk by chunk.

* :class:`CentroidVocoder` (:mod:`.centroid`): the embedded default; per-unit (or per-context,
  :mod:`.context`) log-mel, fitted durations (:mod:`.duration`), Griffin-Lim; nothing to download.
* :class:`CodeHiFiGANUnitVocoder` (:mod:`.codehifigan`): fairseq CodeHiFiGAN checkpoints + JSON,
  StreamSpeech's vocoder format.
* :func:`build_vocoder` (:mod:`.builder`) picks one from ``config_gcmvn.yaml``.

All follow :class:`UnitVocoder` (:mod:`.base`).
"""

import logging

from echostream_fairseq.vocoder.base import (StreamingVocoderState, UnitVocoder,
                                             validate_units)
from echostream_fairseq.vocoder.builder import build_vocoder, describe_vocoder
from echostream_fairseq.vocoder.centroid import (CentroidStreamState, CentroidVocoder,
                                                 CentroidVocoderSettings, load_centroid_vocoder)
from echostream_fairseq.vocoder.codehifigan import (CodeHiFiGANStreamState,
                                                    CodeHiFiGANUnitVocoder, load_code_hifigan)
from echostream_fairseq.vocoder.context import ContextModel
from echostream_fairseq.vocoder.duration import fit_duration_model

logger = logging.getLogger(__name__)

__all__ = ["CentroidStreamState", "CentroidVocoder", "CentroidVocoderSettings",
           "CodeHiFiGANStreamState", "CodeHiFiGANUnitVocoder", "ContextModel",
           "StreamingVocoderState", "UnitVocoder", "build_vocoder", "describe_vocoder",
           "fit_duration_model", "load_centroid_vocoder", "load_code_hifigan", "validate_units"]
