"""Criterion ``speech_to_unit_2pass_ctc_asr_st``: StreamSpeech's multitask loss.

total = unit CTC (blank ``<blank>``) + sum_k loss_weight_k * multitask_k, where the multitask
losses (MT cross-entropy with the YAML's label smoothing, ASR CTC, ST CTC; text CTC blank = 0)
come from fairseq's MultitaskCriterion with the weights the task reads from each YAML entry's
``loss_weight``. All losses are summed over the batch; fairseq divides by ``sample_size`` = number
of unit target tokens including ``</s>``.

Logged (base 2, per unit target token as fairseq does): ``loss`` (total), ``unit_ctc_loss``, and
``multitask_<name>_loss`` per YAML entry (e.g. ``multitask_target_unigram_loss`` = MT CE,
``multitask_source_unigram_loss`` = ASR CTC, ``multitask_ctc_target_unigram_loss`` = ST CTC,
each per its own target token).

Streaming: every batch gets StreamSpeech's training masks (``--k1 --n1`` for the MT decoder,
``--k2 --n2`` for the unit decoder, ``--n2 -1`` = random per batch) and, with ``--multichunk``, an
Emformer segment length drawn from ``--multichunk-segments`` (validation uses the largest, i.e.
offline, as StreamSpeech does).
"""

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import editdistance
import torch
import torch.nn.functional as F
from fairseq import utils
from fairseq.criterions import register_criterion
from fairseq.criterions.label_smoothed_cross_entropy_with_rdrop import (
    RdropLabelSmoothedCrossEntropyCriterionConfig,
)
from fairseq.criterions.speech_to_speech_criterion import SpeechToUnit2passMultitaskTaskCriterion
from fairseq.logging import metrics
from torch import Tensor

logger = logging.getLogger(__name__)

__all__ = ["SpeechToUnit2passCTCASRSTConfig", "SpeechToUnit2passCTCASRSTCriterion"]

_MT_PREFIX = "multitask:"  # logging keys "multitask:<yaml key>:<field>"


@dataclass
class SpeechToUnit2passCTCASRSTConfig(RdropLabelSmoothedCrossEntropyCriterionConfig):
    k1: int = field(
        default=3, metadata={"help": "MT mask: extra ST-CTC tokens to wait for (wait-k)"}
    )
    k2: int = field(default=3, metadata={"help": "unit decoder mask: extra T2U states to wait for"})
    n1: int = field(default=3, metadata={"help": "MT mask: target subwords written per step"})
    n2: int = field(
        default=3,
        metadata={"help": "unit decoder mask: T2U states per step; -1 = random per batch"},
    )
    post_process: str = field(
        default="letter",
        metadata={"help": "kept for StreamSpeech compatibility (fairseq post_process name); "
                          "the unit error rate is computed on raw units"},
    )
    multichunk: bool = field(
        default=False,
        metadata={"help": "draw the Emformer segment length per training batch from "
                          "--multichunk-segments, so one model serves several latencies"},
    )
    multichunk_segments: str = field(
        default="8,16,24,32,99999",
        metadata={"help": "comma-separated segment lengths (40 ms encoder frames) for "
                          "--multichunk; a value longer than any utterance means offline "
                          "(full context)"},
    )


@register_criterion("speech_to_unit_2pass_ctc_asr_st", dataclass=SpeechToUnit2passCTCASRSTConfig)
class SpeechToUnit2passCTCASRSTCriterion(SpeechToUnit2passMultitaskTaskCriterion):
    def __init__(
        self,
        task: Any,
        sentence_avg: bool,
        label_smoothing: float,
        ignore_prefix_size: int = 0,
        report_accuracy: bool = False,
        rdrop_alpha: float = 0.0,
        k1: int = 3,
        k2: int = 3,
        n1: int = 3,
        n2: int = 3,
        post_process: str = "letter",
        multichunk: bool = False,
        multichunk_segments: str = "8,16,24,32,99999",
    ) -> None:
        if rdrop_alpha > 0:
            raise ValueError("--rdrop-alpha > 0 is not supported (StreamSpeech trains with 0.0)")
        super().__init__(
            task, sentence_avg, label_smoothing, ignore_prefix_size, report_accuracy, rdrop_alpha
        )
        if n1 == 0 or n2 == 0:
            raise ValueError(
                "--n1 and --n2 must be positive (or negative for the defaults / random)"
            )
        self.k1, self.k2, self.n1, self.n2 = k1, k2, n1, n2
        self.post_process = post_process
        self.multichunk = multichunk
        try:
            self.segment_choices = [int(v) for v in multichunk_segments.split(",") if v.strip()]
        except ValueError as err:
            raise ValueError(f"--multichunk-segments {multichunk_segments!r}: {err}") from err
        if not self.segment_choices or min(self.segment_choices) <= 0:
            raise ValueError(
                f"--multichunk-segments needs positive integers, got {multichunk_segments!r}"
            )
        for name, task_obj in task.multitask_tasks.items():
            # the task refreshes these every update (loss_weight schedules); set the first ones so
            # the criterion also works when called directly (evaluation scripts, tests)
            if name in self.multitask_criterion:
                self.set_multitask_loss_weight(name, task_obj.args.get_loss_weight(0))
        self.blank_idx = task.target_dictionary.index(task.blank_symbol)
        self.pad_idx = task.target_dictionary.pad()
        self.eos_idx = task.target_dictionary.eos()

    def streaming_config(self, training: bool, mt_len: int) -> Dict[str, Optional[int]]:
        """The per-batch training config handed to the model (StreamSpeech's semantics)."""
        n2 = self.n2
        if n2 < 0:  # StreamSpeech: random in [1, 1 + T_mt]; torch's RNG is seeded by fairseq
            n2 = int(torch.randint(1, mt_len + 2, (1,)).item())
        segment: Optional[int] = None
        if self.multichunk:
            if training:
                segment = self.segment_choices[
                    int(torch.randint(len(self.segment_choices), (1,)).item())
                ]
            else:
                segment = max(self.segment_choices)
        return {
            "k1": max(self.k1, 0),
            "n1": self.n1 if self.n1 > 0 else 1,
            "k2": max(self.k2, 0),
            "n2": n2,
            "segment_length": segment,
        }

    def forward(
        self, model: Any, sample: Dict[str, Any], reduce: bool = True
    ) -> Tuple[Tensor, int, Dict[str, Any]]:
        if model.mt_task_name not in sample.get("multitask", {}):
            raise ValueError(f"the batch has no '{model.mt_task_name}' multitask targets: "
                             "pass --multitask-config-yaml")
        prev_mt = sample["multitask"][model.mt_task_name]["net_input"]["prev_output_tokens"]
        net_output, extra = model(
            src_tokens=sample["net_input"]["src_tokens"],
            src_lengths=sample["net_input"]["src_lengths"],
            prev_output_tokens=sample["net_input"]["prev_output_tokens"],
            prev_output_tokens_mt=prev_mt,
            streaming_config=self.streaming_config(model.training, prev_mt.size(1)),
            tgt_speaker=sample["net_input"].get("tgt_speaker"),
            return_all_hiddens=True,
        )
        unit_loss = self.unit_ctc_loss(model, net_output, extra, sample)
        sample_size = sample["target"].size(0) if self.sentence_avg else sample["ntokens"]
        logging_output: Dict[str, Any] = {
            "unit_ctc_loss": utils.item(unit_loss.data),
            "nll_loss": utils.item(unit_loss.data),
            "ntokens": sample["ntokens"],
            "nsentences": sample["target"].size(0),
            "sample_size": sample_size,
        }
        if self.report_accuracy and not model.training:
            logging_output.update(self.unit_errors(model, net_output, extra, sample))
        loss = unit_loss
        if len(self.multitask_criterion) > 0:
            multitask_loss, multitask_log = self.get_multitask_loss(model, sample, extra)
            loss = loss + multitask_loss
            # flat numeric keys, so fairseq can sum logs across workers with all_reduce (its
            # nested-dict path, all_gather_list, needs CUDA and breaks CPU distributed training)
            for name, log in multitask_log.items():
                logging_output[f"{_MT_PREFIX}{name}:loss"] = float(log.get("loss", 0.0))
                logging_output[f"{_MT_PREFIX}{name}:sample_size"] = float(log.get("sample_size", 0))
                logging_output[f"{_MT_PREFIX}{name}:weight"] = float(log.get("loss_weight", 0.0))
            logging_output["num_logs"] = 1
        logging_output["loss"] = utils.item(loss.data)
        return loss, sample_size, logging_output

    def _unit_log_probs(
        self, model: Any, net_output: Tensor, extra: Dict[str, Any]
    ) -> Tuple[Tensor, Tensor]:
        """(U, B, V) log-probs and (B,) input lengths of the unit CTC decoder."""
        lprobs = model.get_normalized_probs([net_output, extra], log_probs=True).transpose(0, 1)
        pad = extra.get("decoder_padding_mask")
        if pad is not None:
            lengths = (~pad).long().sum(-1)
        else:
            lengths = lprobs.new_full((lprobs.size(1),), lprobs.size(0), dtype=torch.long)
        return lprobs, lengths

    def unit_ctc_loss(
        self, model: Any, net_output: Tensor, extra: Dict[str, Any], sample: Dict[str, Any]
    ) -> Tensor:
        """Summed CTC loss of the unit decoder; targets are the padded units incl. ``</s>``."""
        lprobs, input_lengths = self._unit_log_probs(model, net_output, extra)
        with torch.backends.cudnn.flags(enabled=False):
            return F.ctc_loss(
                lprobs.float(), sample["target"], input_lengths, sample["target_lengths"],
                blank=self.blank_idx, reduction="sum", zero_infinity=True,
            )

    def unit_errors(
        self, model: Any, net_output: Tensor, extra: Dict[str, Any], sample: Dict[str, Any]
    ) -> Dict[str, int]:
        """Greedy CTC unit edit errors (``unit_errors``/``unit_total``) for validation logs."""
        lprobs, input_lengths = self._unit_log_probs(model, net_output, extra)
        best = lprobs.argmax(-1).t().cpu()  # (B, U)
        errors = total = 0
        for hyp_row, length, ref_row in zip(best, input_lengths.cpu(), sample["target"].cpu()):
            hyp = [
                t for t in hyp_row[: int(length)].unique_consecutive().tolist()
                if t != self.blank_idx
            ]
            ref = [t for t in ref_row.tolist() if t not in (self.pad_idx, self.eos_idx)]
            errors += editdistance.eval(hyp, ref)
            total += len(ref)
        return {"unit_errors": errors, "unit_total": total}

    @classmethod
    def reduce_metrics(cls, logging_outputs: List[Dict[str, Any]]) -> None:
        sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
        for key in ("loss", "unit_ctc_loss", "nll_loss"):
            value = sum(log.get(key, 0) for log in logging_outputs)
            metrics.log_scalar(key, value / max(sample_size, 1) / math.log(2), sample_size, round=3)
        total = sum(log.get("unit_total", 0) for log in logging_outputs)
        if total > 0:
            errors = sum(log.get("unit_errors", 0) for log in logging_outputs)
            metrics.log_scalar("unit_error_rate", 100.0 * errors / total, total, round=2)
        num_logs = max(sum(log.get("num_logs", 0) for log in logging_outputs), 1)
        names = sorted({key.split(":")[1] for log in logging_outputs for key in log
                        if key.startswith(_MT_PREFIX)})
        for name in names:
            def total(field: str) -> float:
                return sum(log.get(f"{_MT_PREFIX}{name}:{field}", 0.0) for log in logging_outputs)
            size = total("sample_size")
            metrics.log_scalar(f"multitask_{name}_loss", total("loss") / max(size, 1) / math.log(2),
                               size, round=3)
            # every log carries the same weight: the sum over logs / their count restores it
            metrics.log_scalar(f"multitask_{name}_loss_weight", total("weight") / num_logs,
                               weight=0, priority=250)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True  # every logged value is a number (see forward)

