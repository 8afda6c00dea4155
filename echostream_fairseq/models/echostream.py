"""The ``echostream`` model: StreamSpeech's five heads on an Emformer speech encoder.

Parts and state-dict prefixes (the same as StreamSpeech's, so its decoders load unchanged):

===============================  ==========================================================
``encoder.``                     Emformer encoder (``EchoStreamEncoder``, its own keys)
``source_unigram_decoder.``      ASR CTC head, fairseq ``CTCDecoder`` (``proj``), blank 0
``ctc_target_unigram_decoder.``  ST CTC head over the target text dictionary, blank 0
``target_unigram_decoder.``      MT Transformer decoder (first pass)
``synthesizer_encoder.``         T2U encoder over the MT decoder's final states
``decoder.``                     unit CTC decoder (upsampled T2U states), blank ``<blank>``
===============================  ==========================================================

The multitask head names are the multitask YAML's keys, as in StreamSpeech.
The model accepts every option of StreamSpeech's ``train.simul-s2st.sh``; options that mean
nothing to an Emformer are logged once as ignored. ``--chunk-size`` (StreamSpeech's encoder chunk,
in 40 ms encoder frames) maps to ``--segment-length`` (the Emformer segment, same unit) unless
``--segment-length`` is given; values <= 0 (StreamSpeech's default -1) keep the preset's segment.

Dimension legend: B batch, S encoder frames, T MT steps, U upsampled unit steps, D dims, V vocab.
"""

import copy
import logging
from argparse import ArgumentParser, BooleanOptionalAction, Namespace
from typing import Any, Dict, List, Optional, Set, Tuple

import torch
import torch.nn as nn
from fairseq.data import Dictionary
from fairseq.models import (
    FairseqEncoderModel,
    FairseqLanguageModel,
    register_model,
    register_model_architecture,
)
from fairseq.models.speech_to_speech.modules.ctc_decoder import CTCDecoder
from fairseq.models.speech_to_speech.modules.stacked_embedding import StackedEmbedding
from fairseq.models.speech_to_speech.s2s_transformer import (
    S2STransformerMultitaskModelBase,
    base_multitask_text_transformer_decoder_arch,
)
from fairseq.models.transformer import TransformerModelBase
from torch import Tensor

from echostream_fairseq.checkpoints import adapt_streamspeech_state_dict
from echostream_fairseq.models.emformer import POSITION_BIASES
from echostream_fairseq.models.emformer_encoder import EchoStreamEncoder
from echostream_fairseq.models.t2u import CTCUnitDecoder, T2UEncoder
from echostream_fairseq.models.text_decoder import StreamingTransformerDecoder
from echostream_fairseq.optim.groups import tag_parameter_groups

logger = logging.getLogger(__name__)

__all__ = ["EchoStreamModel", "mt_cross_attention_mask"]

# StreamSpeech options an Emformer has no use for: accepted so its command line runs, logged once.
IGNORED_OPTIONS: Tuple[str, ...] = (
    "conv_version", "conv_out_channels", "depthwise_conv_kernel_size", "attn_type",
    "pos_enc_type", "encoder_normalize_before", "layernorm_embedding", "no_scale_embedding",
    "speaker_embed_dim", "encoder_freezing_updates",
)
# Options that would change what is trained and that EchoStream does not implement: refused.
UNSUPPORTED_OPTIONS: Dict[str, str] = {
    "synthesizer_augmented_cross_attention": "the T2U decoder attends to T2U states only",
    "load_pretrained_mt_from": "it reads a speech-to-text model's Conformer encoder and decoder; "
                               "use --load-pretrained-decoders-from with a StreamSpeech or "
                               "EchoStream checkpoint",
}
_reported_ignored: Set[str] = set()
# StreamSpeech's multitask YAML keys of the two CTC heads that drive the simultaneous policy
ASR_TASK, ST_TASK = "source_unigram", "ctc_target_unigram"


def _report_ignored_options(args: Namespace) -> None:
    """Logs (once per process and option) the StreamSpeech options that were set but do nothing."""
    for name in IGNORED_OPTIONS:
        value = getattr(args, name, None)  # absent when not on the command line (argparse SUPPRESS)
        if value not in (None, False) and name not in _reported_ignored:
            _reported_ignored.add(name)
            logger.warning("option --%s=%s is ignored by the Emformer-based echostream model",
                           name.replace("_", "-"), value)
    for name, why in UNSUPPORTED_OPTIONS.items():
        if getattr(args, name, None) not in (None, False):
            raise ValueError(f"--{name.replace('_', '-')} is not supported by echostream: {why}")


def _not_blank_probs(logits: Tensor, padding_mask: Optional[Tensor]) -> Tensor:
    """P(frame emits a new token) of a text CTC head (blank = index 0, as StreamSpeech's heads).

    logits: (S, B, V). Returns (B, S): 1 - P(blank) - sum_v P_t(v) P_{t-1}(v), 0 on padding.
    """
    probs = torch.softmax(logits.float().transpose(0, 1), dim=-1)  # (B, S, V)
    previous = torch.cat([torch.zeros_like(probs[:, :1, 1:]), probs[:, :-1, 1:]], dim=1)
    repeat = (previous * probs[:, :, 1:]).sum(-1)
    not_blank = 1.0 - probs[:, :, 0] - repeat
    if padding_mask is not None:
        not_blank = not_blank.masked_fill(padding_mask, 0.0)
    return not_blank


def mt_cross_attention_mask(
    asr_not_blank: Tensor, st_not_blank: Tensor, tgt_len: int, k1: int, n1: int, segment_length: int
) -> Tensor:
    """StreamSpeech's training mask for the MT decoder's cross-attention.

    Target step t may read up to the first frame where the expected ST-CTC token count reaches
    (t // n1 + 1) * n1 + k1 *and* the ASR CTC emits a token, rounded up to the end of its segment
    (what a streaming encoder would have delivered by then).

    Args:
        asr_not_blank, st_not_blank: (B, S) from :func:`_not_blank_probs`.
    Returns:
        (B, T, S) bool, True = blocked. Frame 0 is always visible.
    """
    bsz, src_len = st_not_blank.shape
    t = torch.arange(tgt_len, device=st_not_blank.device).view(1, -1, 1)
    needed = ((t // n1 + 1) * n1 + k1).clamp(1, src_len)
    reached = st_not_blank.cumsum(-1).unsqueeze(1) >= needed  # (B, T, S)
    candidate = (reached & (asr_not_blank.round() > 0).unsqueeze(1)).int()
    candidate[:, :, -1] = 1  # nothing found: read everything
    first = candidate.argmax(-1, keepdim=True).clamp(1, src_len)
    visible = ((first // segment_length + 1) * segment_length).clamp(1, src_len)
    return torch.arange(src_len, device=st_not_blank.device).view(1, 1, -1) >= visible


def _predicted_tokens(prev_output_tokens: Tensor, pad: int, eos: int) -> Tensor:
    """(B, T) the subword each teacher-forced MT position predicts: the next input, and ``</s>``
    after the last one (``prev_output_tokens`` is ``</s> y1 .. yn`` then padding)."""
    following = torch.cat([prev_output_tokens[:, 1:],
                           prev_output_tokens.new_full((prev_output_tokens.size(0), 1), pad)], 1)
    last = prev_output_tokens.ne(pad) & following.eq(pad)
    return following.masked_fill(last, eos)


@register_model("echostream")
class EchoStreamModel(S2STransformerMultitaskModelBase):
    """Emformer encoder + ASR/ST CTC heads + MT decoder + T2U encoder + unit CTC decoder."""

    @staticmethod
    def add_args(parser: ArgumentParser) -> None:
        """Every model option of StreamSpeech's recipe plus the Emformer's; defaults live in
        presets."""
        a = parser.add_argument
        # speech encoder front end and Emformer
        a("--conv-kernel-sizes", type=str,
          help="comma-separated kernel sizes of the Conv1d subsampler")
        a("--conv-channels", type=int, help="channels of the Conv1d subsampler (before GLU)")
        a("--segment-length", type=int,
          help="Emformer segment in 40 ms encoder frames (latency unit)")
        a("--right-context-length", type=int, help="Emformer look-ahead in encoder frames")
        a("--left-context-length", type=int, help="Emformer left-context cache in encoder frames")
        a("--max-memory-size", type=int, help="Emformer memory-bank size (summary vectors kept)")
        a("--position-bias", choices=POSITION_BIASES,
          help="relative position in the Emformer's attention: none (torchaudio's) or alibi "
               "(a per-head linear penalty on frame distance; no parameters)")
        a("--emformer-conv-kernel-size", type=int,
          help="kernel of a Conformer convolution module in every Emformer layer (odd; 0: none, "
               "torchaudio's Emformer); it sees kernel//2 frames back and ahead only inside the "
               "segment, like StreamSpeech's chunked Conformer (StreamSpeech's own "
               "--depthwise-conv-kernel-size stays ignored, so its training command is unchanged)")
        a("--chunk-size", type=int,
          help="StreamSpeech's encoder chunk in 40 ms frames; "
               "sets --segment-length if that is unset")
        a("--activation-fn", type=str, help="activation function of the Transformer layers")
        a("--dropout", type=float, help="dropout probability")
        a("--attention-dropout", type=float, help="dropout probability of attention weights")
        a("--activation-dropout", "--relu-dropout", type=float,
          help="dropout probability after the FFN activation")
        a("--encoder-embed-dim", type=int, help="speech encoder model dimension")
        a("--encoder-ffn-embed-dim", type=int, help="speech encoder FFN dimension")
        a("--encoder-layers", type=int, help="number of Emformer layers")
        a("--encoder-attention-heads", type=int, help="speech encoder attention heads")
        # text-to-unit part (StreamSpeech's "decoder" options) and MT decoder size
        a("--decoder-embed-dim", type=int,
          help="dimension of the MT decoder, T2U encoder and unit decoder")
        a("--decoder-ffn-embed-dim", type=int,
          help="FFN dimension of the T2U encoder and unit decoder")
        a("--decoder-layers", type=int, help="layers of the unit CTC decoder")
        a("--decoder-attention-heads", type=int,
          help="attention heads of MT decoder, T2U encoder, unit decoder")
        a("--decoder-normalize-before", action="store_true", help="pre-LN unit decoder layers")
        a("--share-decoder-input-output-embed", action="store_true",
          help="tie the unit decoder's embedding and output projection (StreamSpeech's layout)")
        a("--translation-decoder-layers", type=int, help="layers of the first-pass MT decoder")
        a("--synthesizer", type=str, choices=["transformer"],
          help="T2U architecture (only transformer)")
        a("--synthesizer-encoder-layers", type=int, help="layers of the T2U encoder (0 = none)")
        a("--uni-encoder", action="store_true", help="make the T2U encoder causal (unidirectional)")
        a("--ctc-upsample-rate", type=int,
          help="repeats of each T2U state before the unit CTC decoder")
        a("--unit-decoder-positions", type=str, choices=["time", "streamspeech"],
          help="unit decoder positions: along time, or StreamSpeech's batch-indexed quirk")
        a("--t2u-token-embeddings", action=BooleanOptionalAction,
          help="add to each T2U input state the MT embedding of the subword it predicts (the "
               "reference one in training, the written one when decoding), so the units say "
               "the text even where the MT decoder's prediction is weak (no new parameters)")
        # accepted for StreamSpeech compatibility: ignored (logged) or refused with a reason
        a("--conv-out-channels", type=int, help="ignored (convtransformer front end only)")
        a("--conv-version", type=str,
          help="ignored: the Emformer front end is a causal Conv1d subsampler")
        a("--encoder-normalize-before", action="store_true",
          help="ignored: Emformer layers are pre-LN")
        a("--layernorm-embedding", action="store_true",
          help="ignored (unused by StreamSpeech's decoders)")
        a("--no-scale-embedding", action="store_true",
          help="ignored (unused by StreamSpeech's decoders)")
        a("--speaker-embed-dim", type=int, help="ignored: no speaker embedding")
        a("--encoder-freezing-updates", type=int, help="ignored: the encoder is never frozen")
        a("--depthwise-conv-kernel-size", type=int, help="ignored: Conformer-only option")
        a("--attn-type", type=str, help="ignored: Conformer-only option")
        a("--pos-enc-type", type=str, help="ignored: Conformer-only option")
        a("--synthesizer-augmented-cross-attention", action="store_true",
          help="not supported (refused)")
        a("--load-pretrained-encoder-from", type=str, metavar="CKPT",
          help="start training with the encoder of this EchoStream checkpoint "
               "(shape-checked, reported)")
        a("--load-pretrained-decoders-from", type=str, metavar="CKPT",
          help="start training with the ASR/ST CTC heads, MT decoder and T2U + unit decoder of "
               "this EchoStream or StreamSpeech checkpoint (per group, shape-checked, reported)")
        a("--load-pretrained-mt-from", type=str,
          help="not supported (refused): see --load-pretrained-decoders-from")

    # ----------------------------------------------------------------------------------- build
    @classmethod
    def build_encoder(cls, args: Namespace) -> EchoStreamEncoder:
        return EchoStreamEncoder(args)

    @classmethod
    def build_decoder(cls, args: Namespace, tgt_dict: Dictionary) -> CTCUnitDecoder:
        """Unit CTC decoder; ``decoder.embed_tokens`` exists (tied output) as in StreamSpeech."""
        embed_tokens = StackedEmbedding(
            len(tgt_dict),
            args.decoder_embed_dim,
            tgt_dict.pad(),
            num_stacked=args.n_frames_per_step,
        )
        unit_args = copy.deepcopy(args)
        unit_args.encoder_embed_dim = args.decoder_embed_dim  # cross-attends to T2U states
        return CTCUnitDecoder(unit_args, tgt_dict, embed_tokens, args.unit_decoder_positions)

    @classmethod
    def build_t2u_encoder(cls, args: Namespace) -> Optional[T2UEncoder]:
        if args.synthesizer_encoder_layers <= 0:
            return None
        t2u_args = copy.deepcopy(args)
        t2u_args.encoder_layers = args.synthesizer_encoder_layers
        t2u_args.encoder_embed_dim = args.decoder_embed_dim
        t2u_args.encoder_ffn_embed_dim = args.decoder_ffn_embed_dim
        t2u_args.encoder_attention_heads = args.decoder_attention_heads
        t2u_args.encoder_normalize_before = True
        return T2UEncoder(t2u_args, causal=args.uni_encoder)

    @classmethod
    def build_text_head(
        cls, args: Namespace, task_cfg: Any, tgt_dict: Dictionary, in_dim: int, first_pass: bool
    ) -> nn.Module:
        """A multitask head as StreamSpeech builds it (dims of the MT decoder from the main
        args)."""
        if tgt_dict is None:
            raise ValueError(f"multitask '{task_cfg.task_name}': "
                             f"dictionary {task_cfg.config.get('dict')!r} "
                             "not found (the YAML's 'dict' must be an existing path)")
        decoder_args = task_cfg.decoder_args
        decoder_args.encoder_embed_dim = in_dim
        if task_cfg.decoder_type == "transformer":
            if first_pass:
                decoder_args.decoder_layers = args.translation_decoder_layers
                decoder_args.decoder_embed_dim = args.decoder_embed_dim
                decoder_args.decoder_attention_heads = args.decoder_attention_heads
            base_multitask_text_transformer_decoder_arch(decoder_args)
            embed = TransformerModelBase.build_embedding(
                decoder_args, tgt_dict, decoder_args.decoder_embed_dim
            )
            return StreamingTransformerDecoder(decoder_args, tgt_dict, embed_tokens=embed)
        if task_cfg.decoder_type == "ctc":
            if getattr(decoder_args, "encoder_layers", 0) > 0:  # YAML namespace, not model args
                raise NotImplementedError(
                    f"multitask '{task_cfg.task_name}': "
                    "CTC heads with Transformer layers are not supported"
                )
            return CTCDecoder(dictionary=tgt_dict, in_dim=in_dim)
        raise NotImplementedError(
            f"multitask decoder_type {task_cfg.decoder_type!r} (use transformer or ctc)"
        )

    @classmethod
    def build_model(cls, args: Namespace, task: Any) -> "EchoStreamModel":
        _report_ignored_options(args)
        if not task.args.target_is_code:
            raise ValueError(
                "echostream predicts units: pass --target-is-code --target-code-size K"
            )
        model = cls(cls.build_encoder(args), cls.build_decoder(args, task.target_dictionary))
        model.mt_task_name = None
        model.multitask_decoders = {}
        for task_name, task_obj in task.multitask_tasks.items():
            if task_obj.args.input_from != "encoder":
                raise NotImplementedError(
                    f"multitask '{task_name}': only encoder inputs are supported"
                )
            first_pass = task_obj.is_first_pass_decoder
            if first_pass:
                model.mt_task_name = task_name
            head = cls.build_text_head(
                args, task_obj.args, task_obj.target_dictionary, args.encoder_embed_dim, first_pass
            )
            setattr(model, f"{task_name}_decoder", head)
            wrapper = (
                FairseqEncoderModel if task_obj.args.decoder_type == "ctc"
                else FairseqLanguageModel
            )
            model.multitask_decoders[task_name] = wrapper(head)
        if model.mt_task_name is None:
            raise ValueError("the multitask YAML needs a first-pass text decoder: a 'transformer' "
                             "entry whose key starts with 'target' (e.g. target_unigram)")
        model.synthesizer_encoder = cls.build_t2u_encoder(args)
        model.t2u_token_embeddings = bool(args.t2u_token_embeddings)
        tag_parameter_groups(model)  # per-group learning rates and freezing read these tags
        return model

    def upgrade_state_dict_named(self, state_dict: Dict[str, Tensor], name: str) -> None:
        """fairseq's hook on every load: a StreamSpeech (Conformer) encoder is re-initialised."""
        super().upgrade_state_dict_named(state_dict, name)
        adapt_streamspeech_state_dict(self, state_dict, name)

    # --------------------------------------------------------------------------------- forward
    def forward(  # type: ignore[override]
        self,
        src_tokens: Tensor,
        src_lengths: Tensor,
        prev_output_tokens: Tensor,
        prev_output_tokens_mt: Tensor,
        streaming_config: Optional[Dict[str, Optional[int]]] = None,
        tgt_speaker: Optional[Tensor] = None,
        return_all_hiddens: bool = False,
    ) -> Tuple[Tensor, Dict[str, Any]]:
        """Full-sequence training pass through all heads.

        Args:
            src_tokens: (B, S_in, 80) fbank; src_lengths: (B,).
            prev_output_tokens: (B, U_tgt) unit decoder input (unused: non-autoregressive).
            prev_output_tokens_mt: (B, T) teacher-forced MT input.
            streaming_config: StreamSpeech's training config, read only: ``segment_length``
                (Emformer segment for this batch; None = the model's), ``k1``/``n1`` (MT mask;
                both present = masked), ``k2``/``n2`` (unit decoder mask). None = no masks.
        Returns:
            unit logits (B, U, V) and a dict with ``decoder_padding_mask`` (B, U),
            ``mt_decoder_out``, ``encoder_states`` (last = encoder output (S, B, D)) and
            ``encoder_padding_mask``.
        """
        config = dict(streaming_config or {})
        segment_length = config.get("segment_length")
        encoder_out = self.encoder(src_tokens, src_lengths, segment_length=segment_length)
        mt_decoder = getattr(self, f"{self.mt_task_name}_decoder")
        cross_mask = None
        if config.get("k1") is not None and config.get("n1") is not None:
            cross_mask = self._mt_streaming_mask(
                encoder_out, prev_output_tokens_mt.size(1), int(config["k1"]), int(config["n1"]),
                segment_length if segment_length is not None else self.encoder_segment_length(),
            )
        mt_decoder_out = mt_decoder(
            prev_output_tokens_mt, encoder_out=encoder_out, cross_attn_mask=cross_mask
        )
        x = mt_decoder_out[1]["inner_states"][-1]
        if mt_decoder.layer_norm is not None:
            x = mt_decoder.layer_norm(x)
        x = self.t2u_input(x, _predicted_tokens(prev_output_tokens_mt, mt_decoder.padding_idx,
                                                mt_decoder.dictionary.eos()).transpose(0, 1))
        mt_pad = prev_output_tokens_mt.eq(mt_decoder.padding_idx)
        mt_pad_or_none = mt_pad if mt_pad.any() else None
        if self.synthesizer_encoder is not None:
            t2u_out = self.synthesizer_encoder(
                x, mt_pad_or_none, return_all_hiddens=return_all_hiddens
            )
        else:
            t2u_out = {
                "encoder_out": [x],
                "encoder_padding_mask": [] if mt_pad_or_none is None else [mt_pad],
            }
        k2, n2 = config.get("k2"), config.get("n2")
        masked = k2 is not None and n2 is not None
        decoder_out = self.decoder(
            prev_output_tokens, encoder_out=t2u_out,
            k2=int(k2) if masked else None, n2=int(n2) if masked else None,
        )
        extra = decoder_out[1]
        extra["mt_decoder_out"] = mt_decoder_out
        extra["encoder_states"] = self._encoder_states(encoder_out)
        extra["encoder_padding_mask"] = encoder_out["encoder_padding_mask"]
        extra["encoder_out"] = encoder_out
        return decoder_out

    def t2u_input(self, states: Tensor, predicted: Tensor) -> Tensor:
        """The T2U encoder's input: the MT decoder's final (normed) states, plus with
        ``--t2u-token-embeddings`` the scaled MT embedding of the subword each state predicts.

        Args:
            states: (..., D) MT decoder states; predicted: (...) the subword ids they predict
                (teacher forcing: the reference; decoding: the written subword or ``</s>``).
        """
        if not self.t2u_token_embeddings:
            return states
        mt_decoder = getattr(self, f"{self.mt_task_name}_decoder")
        return states + mt_decoder.embed_scale * mt_decoder.embed_tokens(predicted)

    def encoder_segment_length(self) -> int:
        """The Emformer segment (encoder frames) the model was configured with."""
        return int(self.encoder.segment_length)

    @staticmethod
    def _encoder_states(encoder_out: Dict[str, List[Tensor]]) -> List[Tensor]:
        """Encoder states for fairseq's multitask criterion: index -1 must be the encoder output."""
        states = list(encoder_out.get("encoder_states") or [])
        final = encoder_out["encoder_out"][0]
        if not states or states[-1] is not final:
            states.append(final)
        return states

    def _mt_streaming_mask(
        self,
        encoder_out: Dict[str, List[Tensor]],
        tgt_len: int,
        k1: int,
        n1: int,
        segment_length: int,
    ) -> Optional[Tensor]:
        """(B, T, S) cross-attention mask of the MT decoder from the (detached) CTC heads."""
        enc = encoder_out["encoder_out"][0]
        if segment_length >= enc.size(0):
            return None  # one segment covers the utterance: the mask would block nothing
        heads = [getattr(self, f"{name}_decoder", None) for name in (ASR_TASK, ST_TASK)]
        if not all(isinstance(head, CTCDecoder) for head in heads):
            raise ValueError(f"the MT streaming mask (criterion --k1/--n1) needs CTC multitask "
                             f"heads named {ASR_TASK!r} and {ST_TASK!r} in the multitask YAML")
        pad = (
            encoder_out["encoder_padding_mask"][0] if encoder_out["encoder_padding_mask"] else None
        )
        with torch.no_grad():
            asr, st = (_not_blank_probs(head(enc.detach())["encoder_out"], pad) for head in heads)
        return mt_cross_attention_mask(asr, st, tgt_len, k1, n1, segment_length)

    def max_positions(self) -> Optional[Tuple[int, int]]:
        return None  # the task filters by --max-source-positions / --max-target-positions


# ------------------------------------------------------------------------------------- presets
@register_model_architecture(model_name="echostream", arch_name="echostream")
def echostream(args: Namespace) -> None:
    """StreamSpeech-sized: 256-d 12-layer Emformer, 4-layer 512-d MT decoder, 2+2 layer T2U."""
    args.conv_kernel_sizes = getattr(args, "conv_kernel_sizes", "5,5")
    args.conv_channels = getattr(args, "conv_channels", 1024)
    args.chunk_size = getattr(args, "chunk_size", None)
    chunk = args.chunk_size if args.chunk_size is not None and args.chunk_size > 0 else None
    args.segment_length = getattr(args, "segment_length", None) or chunk or 8
    args.right_context_length = getattr(args, "right_context_length", 0)
    args.left_context_length = getattr(args, "left_context_length", 32)
    args.max_memory_size = getattr(args, "max_memory_size", 4)
    args.position_bias = getattr(args, "position_bias", None) or "none"
    args.emformer_conv_kernel_size = getattr(args, "emformer_conv_kernel_size", None) or 0
    args.activation_fn = getattr(args, "activation_fn", "relu")
    args.dropout = getattr(args, "dropout", 0.1)
    args.attention_dropout = getattr(args, "attention_dropout", args.dropout)
    args.activation_dropout = getattr(args, "activation_dropout", args.dropout)
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", 256)
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", 2048)
    args.encoder_layers = getattr(args, "encoder_layers", 12)
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", 4)
    args.decoder_embed_dim = getattr(args, "decoder_embed_dim", 512)
    args.decoder_ffn_embed_dim = getattr(args, "decoder_ffn_embed_dim", 2048)
    args.decoder_layers = getattr(args, "decoder_layers", 2)
    args.decoder_attention_heads = getattr(args, "decoder_attention_heads", 8)
    args.decoder_normalize_before = getattr(args, "decoder_normalize_before", True)
    args.share_decoder_input_output_embed = getattr(args, "share_decoder_input_output_embed", True)
    args.translation_decoder_layers = getattr(args, "translation_decoder_layers", 4)
    args.synthesizer = getattr(args, "synthesizer", "transformer")
    args.synthesizer_encoder_layers = getattr(args, "synthesizer_encoder_layers", 2)
    args.uni_encoder = getattr(args, "uni_encoder", False)
    args.ctc_upsample_rate = getattr(args, "ctc_upsample_rate", 25)
    args.unit_decoder_positions = getattr(args, "unit_decoder_positions", "time")
    args.t2u_token_embeddings = getattr(args, "t2u_token_embeddings", False)
    # fairseq TransformerDecoder fields the unit decoder reads (s2ut_architecture_base's values)
    args.decoder_learned_pos = getattr(args, "decoder_learned_pos", False)
    args.no_token_positional_embeddings = getattr(args, "no_token_positional_embeddings", False)
    args.decoder_layerdrop = getattr(args, "decoder_layerdrop", 0.0)
    args.adaptive_softmax_cutoff = getattr(args, "adaptive_softmax_cutoff", None)
    args.decoder_output_dim = getattr(args, "decoder_output_dim", args.decoder_embed_dim)
    args.decoder_input_dim = getattr(args, "decoder_input_dim", args.decoder_embed_dim)
    args.quant_noise_pq = getattr(args, "quant_noise_pq", 0)
    args.max_target_positions = getattr(args, "max_target_positions", 1024)
    args.n_frames_per_step = getattr(args, "n_frames_per_step", 1)


@register_model_architecture(model_name="echostream", arch_name="echostream_mini")
def echostream_mini(args: Namespace) -> None:
    """CPU-trainable on the ~11k-pair mini corpus: 144-d 6-layer Emformer, 256-d text/unit heads
    (8.4M parameters with K = 500 units and a 1,000-piece text vocabulary)."""
    args.conv_channels = getattr(args, "conv_channels", 256)
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", 144)
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", 576)
    args.encoder_layers = getattr(args, "encoder_layers", 6)
    args.decoder_embed_dim = getattr(args, "decoder_embed_dim", 256)
    args.decoder_ffn_embed_dim = getattr(args, "decoder_ffn_embed_dim", 1024)
    args.decoder_attention_heads = getattr(args, "decoder_attention_heads", 4)
    args.translation_decoder_layers = getattr(args, "translation_decoder_layers", 2)
    args.synthesizer_encoder_layers = getattr(args, "synthesizer_encoder_layers", 1)
    args.uni_encoder = getattr(args, "uni_encoder", True)
    # x10 (StreamSpeech's code default) instead of the recipe's x25: the unit decoder's
    # self-attention over T*R steps dominates CPU time; the mini corpus has ~3-4 units per subword
    args.ctc_upsample_rate = getattr(args, "ctc_upsample_rate", 10)
    echostream(args)
