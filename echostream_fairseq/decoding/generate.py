"""Generators for offline decoding of ``echostream`` models with ``fairseq-generate``.

The task (``speech_to_speech_ctc``) builds one of them from ``--gen-output``:

* :class:`TextGenerator` (``text``): fairseq's own search (beam, sampling, ...) over the speech
  encoder and the first-pass MT decoder (StreamSpeech's ``target_unigram`` head). Its options are
  fairseq's usual ``--beam``, ``--max-len-a/b``, ``--lenpen``, ...
* :class:`UnitGenerator` (``units``): StreamSpeech's two-pass flow (its
  ``CTCMultiDecoderSequenceGenerator``): the MT decoder searches a text (``--beam-mt``,
  ``--max-len-a-mt``, ``--max-len-b-mt``, ``--lenpen-mt``), the model's training graph is run
  on that text (MT decoder states -> T2U encoder -> non-autoregressive unit decoder), and the
  unit CTC output is decoded greedily. A hypothesis' tokens are unit-dictionary indices, which
  fairseq prints as the unit ids ``0..K-1``.

Both work on any batch: padding never reaches a hypothesis. Dimension legend: B batch,
U upsampled unit steps, V unit vocabulary.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from fairseq.data import Dictionary
from fairseq.models import FairseqEncoderDecoderModel
from fairseq.tasks import FairseqTask
from torch import Tensor

from echostream_fairseq.decoding.ctc import CtcCollapser, best_unit_labels
from echostream_fairseq.decoding.text import detokenize

__all__ = ["SpeechToTextModel", "SubwordDetokenizer", "TextGenerator", "UnitGenerator",
           "greedy_unit_ctc", "read_generate_output"]

Hypotheses = List[List[Dict[str, Any]]]


class SpeechToTextModel(FairseqEncoderDecoderModel):
    """The speech encoder and the MT decoder of an ``echostream`` model seen as one
    encoder-decoder, which is what fairseq's SequenceGenerator searches. It shares the modules
    (no copy) and is never trained or saved."""

    def __init__(self, model: Any) -> None:
        super().__init__(model.encoder, getattr(model, f"{model.mt_task_name}_decoder"))


class _Overrides:
    """Generation options with some fields replaced (the first pass reads ``--beam-mt`` as
    ``beam``, ...); absent fields raise AttributeError, so ``getattr`` defaults still apply."""

    def __init__(self, args: Any, **overrides: Any) -> None:
        self._args, self._overrides = args, overrides

    def __getattr__(self, name: str) -> Any:
        if name in self._overrides:
            return self._overrides[name]
        return getattr(self._args, name)


class _SearchTask:
    """Just enough of a task for :meth:`FairseqTask.build_generator`, which reads only
    ``target_dictionary``: lets the unit task build fairseq's text search over the MT dictionary."""

    def __init__(self, dictionary: Dictionary) -> None:
        self.target_dictionary = dictionary


def _text_search(models: Sequence[Any], dictionary: Dictionary, args: Any,
                 extra_gen_cls_kwargs: Optional[Dict[str, Any]]) -> Any:
    """fairseq's generic SequenceGenerator (every search option of fairseq-generate) over the
    MT decoders of ``models`` (an ensemble is averaged as fairseq does)."""
    if getattr(args, "score_reference", False):
        raise NotImplementedError("--score-reference is not supported by the echostream generators")
    task: Any = _SearchTask(dictionary)
    return FairseqTask.build_generator(task, [SpeechToTextModel(m) for m in models], args,
                                       extra_gen_cls_kwargs=dict(extra_gen_cls_kwargs or {}))


def _encoder_sample(sample: Dict[str, Any]) -> Dict[str, Any]:
    """The batch as the speech encoder takes it: the S2S batch's ``net_input`` also holds unit
    decoder inputs and ``tgt_speaker``, which the encoder's forward does not accept."""
    net_input = sample["net_input"]
    return {"net_input": {"src_tokens": net_input["src_tokens"],
                          "src_lengths": net_input["src_lengths"]}}


def _no_prefix(prefix_tokens: Optional[Tensor]) -> None:
    # fairseq-generate cuts --prefix-size tokens from the *unit* target: meaningless for the MT pass
    if prefix_tokens is not None:
        raise NotImplementedError("--prefix-size is not supported by the echostream generators")


def read_generate_output(lines: Iterable[str], kind: str = "D") -> Dict[int, str]:
    """``{sentence id: text}`` of fairseq-generate's ``{kind}-`` lines: ``D`` (detokenized) or
    ``H`` (tokens) for the best hypothesis (the first of an n-best list), ``T`` for references."""
    prefix, texts = f"{kind}-", {}
    for line in lines:
        if not line.startswith(prefix):
            continue
        fields = line.rstrip("\r\n").split("\t")
        head = fields[0][len(prefix):]
        if not head.isdigit():
            continue
        # H-/D-: id, score, text; T-/S-: id, text
        text = fields[2] if kind in ("H", "D") and len(fields) > 2 else fields[-1]
        texts.setdefault(int(head), text)
    return texts


class SubwordDetokenizer:
    """fairseq-generate's ``--bpe`` role for MT subwords: ``decode`` turns a printed hypothesis
    (space-separated pieces) into the words the streaming pipeline writes for the same tokens."""

    def __init__(self, dictionary: Dictionary) -> None:
        self.dictionary = dictionary

    def decode(self, text: str) -> str:
        return detokenize([self.dictionary.index(piece) for piece in text.split()], self.dictionary)


class TextGenerator:
    """``--gen-output text``: hypotheses are MT-dictionary subwords (fairseq's H-/D- lines)."""

    def __init__(self, models: Sequence[Any], mt_dict: Dictionary, args: Any,
                 extra_gen_cls_kwargs: Optional[Dict[str, Any]] = None) -> None:
        self.search = _text_search(models, mt_dict, args, extra_gen_cls_kwargs)
        # fairseq-generate strips these from hypotheses and references
        self.symbols_to_strip_from_output = self.search.symbols_to_strip_from_output

    @torch.no_grad()
    def generate(self, models: Any, sample: Dict[str, Any], prefix_tokens: Optional[Tensor] = None,
                 **kwargs: Any) -> Hypotheses:
        _no_prefix(prefix_tokens)
        return self.search.generate(models, _encoder_sample(sample), **kwargs)


def greedy_unit_ctc(logits: Tensor, padding: Optional[Tensor], unit_dict: Dictionary,
                    blank_penalty: float = 0.0) -> List[Tuple[List[int], Tensor]]:
    """Greedy CTC over unit logits (B, U, V) with padding (B, U) or None, by the streaming
    pipeline's rule (:func:`~echostream_fairseq.decoding.ctc.best_unit_labels`): per sentence,
    the unit-dictionary indices (repeats merged, blanks and specials dropped) and the (U_b,)
    log-probabilities of the chosen labels (without the penalty)."""
    lprobs = torch.log_softmax(logits.float(), dim=-1)
    labels = best_unit_labels(lprobs, unit_dict, blank_penalty)
    scores = lprobs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    out = []
    for b in range(labels.size(0)):
        valid = slice(None) if padding is None else ~padding[b]
        merged = CtcCollapser(unit_dict.blank_index)(labels[b][valid].tolist())
        out.append(([label for label in merged if label >= unit_dict.nspecial], scores[b][valid]))
    return out


class UnitGenerator:
    """``--gen-output units``: MT search, then the model's second pass, then greedy unit CTC.

    The second pass is the training forward (:meth:`EchoStreamModel.forward` without streaming
    masks) on ``</s>`` + the best MT hypothesis, so the T2U encoder sees exactly what it was
    trained on (one state per target subword plus the one that predicted ``</s>``). It encodes
    the speech a second time, in exchange for no second copy of that graph.
    """

    def __init__(self, models: Sequence[Any], unit_dict: Dictionary, mt_dict: Dictionary,
                 args: Any, extra_gen_cls_kwargs: Optional[Dict[str, Any]] = None) -> None:
        if len(models) != 1:
            raise NotImplementedError("unit generation takes one model (--path without ':')")
        self.model = models[0]
        self.unit_dict, self.mt_dict = unit_dict, mt_dict
        first_pass = _Overrides(
            args, beam=max(1, getattr(args, "beam_mt", 1)),
            max_len_a=getattr(args, "max_len_a_mt", 0),
            max_len_b=getattr(args, "max_len_b_mt", 200),
            lenpen=getattr(args, "lenpen_mt", 1.0),
        )
        self.search = _text_search(models, mt_dict, first_pass, extra_gen_cls_kwargs)
        self.blank_penalty = float(getattr(args, "unit_blank_penalty", 0.0))
        self.symbols_to_strip_from_output = {unit_dict.eos()}

    @torch.no_grad()
    def generate(self, models: Any, sample: Dict[str, Any], prefix_tokens: Optional[Tensor] = None,
                 **kwargs: Any) -> Hypotheses:
        _no_prefix(prefix_tokens)
        nbest = self.search.generate(models, _encoder_sample(sample), **kwargs)
        texts = [hypos[0]["tokens"] for hypos in nbest]
        net_input = sample["net_input"]
        logits, extra = self.model(
            net_input["src_tokens"], net_input["src_lengths"],
            prev_output_tokens=None,  # the unit decoder is non-autoregressive: unused
            prev_output_tokens_mt=self._mt_decoder_input(texts, net_input["src_tokens"].device),
        )
        return self._ctc_hypotheses(logits, extra["decoder_padding_mask"], texts)

    def _mt_decoder_input(self, texts: List[Tensor], device: torch.device) -> Tensor:
        """(B, 1 + longest text): ``</s>`` + each text without its final ``</s>``, right-padded
        (the layout of the multitask targets' ``prev_output_tokens`` in training)."""
        eos, pad = self.mt_dict.eos(), self.mt_dict.pad()
        bodies = [t[:-1] if len(t) and t[-1] == eos else t for t in texts]
        out = torch.full((len(bodies), 1 + max(len(b) for b in bodies)), pad, dtype=torch.long,
                         device=device)
        out[:, 0] = eos
        for row, body in zip(out, bodies):
            row[1:1 + len(body)] = body
        return out

    def _ctc_hypotheses(self, logits: Tensor, padding: Optional[Tensor],
                        texts: List[Tensor]) -> Hypotheses:
        """One hypothesis per sentence from unit logits (B, U, V) and padding (B, U) or None."""
        hypos: Hypotheses = []
        decoded = greedy_unit_ctc(logits, padding, self.unit_dict, self.blank_penalty)
        for b, (units, frame_scores) in enumerate(decoded):
            hypos.append([{
                # ending in </s> as fairseq's hypotheses do (fairseq-generate strips it); an
                # empty tensor would crash fairseq's C BLEU scorer on a unit-less hypothesis
                "tokens": torch.tensor(units + [self.unit_dict.eos()], dtype=torch.long),
                "score": float(frame_scores.sum()),
                "positional_scores": frame_scores,  # per CTC step, as StreamSpeech's
                "attn": None,
                "alignment": None,
                "mt_tokens": texts[b],  # the first-pass text (not printed by fairseq-generate)
            }])
        return hypos
