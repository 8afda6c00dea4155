"""EchoStream criterions: importing this package registers ``speech_to_unit_2pass_ctc_asr_st``."""

from echostream_fairseq.criterions import speech_to_unit_2pass_ctc_asr_st  # noqa: F401

__all__ = ["speech_to_unit_2pass_ctc_asr_st"]
