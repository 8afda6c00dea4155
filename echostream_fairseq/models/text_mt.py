"""The text-to-text MT model of the translation ceiling (``echostream-text-mt``): fairseq's own
Transformer at the size of echostream_mini's text side, trained on the corpus's subwords."""

from __future__ import annotations

from argparse import Namespace

from fairseq.models import register_model_architecture
from fairseq.models.transformer import base_architecture


@register_model_architecture(model_name="transformer", arch_name="echostream_text_mt")
def echostream_text_mt(args: Namespace) -> None:
    """256-d, 4 heads, FFN 1024 like echostream_mini's MT decoder (2 layers), over a 3-layer
    text encoder; shared decoder embeddings and dropout 0.3, as small-data fairseq recipes
    (IWSLT) use."""
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", 256)
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", 1024)
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", 4)
    args.encoder_layers = getattr(args, "encoder_layers", 3)
    args.decoder_embed_dim = getattr(args, "decoder_embed_dim", 256)
    args.decoder_ffn_embed_dim = getattr(args, "decoder_ffn_embed_dim", 1024)
    args.decoder_attention_heads = getattr(args, "decoder_attention_heads", 4)
    args.decoder_layers = getattr(args, "decoder_layers", 2)
    args.share_decoder_input_output_embed = getattr(args, "share_decoder_input_output_embed",
                                                    True)
    args.dropout = getattr(args, "dropout", 0.3)
    base_architecture(args)
