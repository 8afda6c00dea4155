"""EchoStream models: importing this package registers the ``echostream`` model and its archs."""

from echostream_fairseq.models import echostream, emformer_encoder, t2u, text_decoder  # noqa: F401

__all__ = ["echostream", "emformer_encoder", "t2u", "text_decoder"]
