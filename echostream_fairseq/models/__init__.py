"""EchoStream models: importing this package registers the ``echostream`` model and its archs
(and ``echostream_text_mt``, a fairseq Transformer arch for the text-MT ceiling)."""

from echostream_fairseq.models import (echostream, emformer_encoder, t2u,  # noqa: F401
                                       text_decoder, text_mt)

__all__ = ["echostream", "emformer_encoder", "t2u", "text_decoder", "text_mt"]
