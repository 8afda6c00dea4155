"""EchoStream tasks: importing this package registers ``speech_to_speech_ctc``."""

from echostream_fairseq.tasks import speech_to_speech_ctc  # noqa: F401

__all__ = ["speech_to_speech_ctc"]
