"""Task ``speech_to_speech_ctc``: fairseq's speech-to-speech task with a CTC blank on the units.

Same name, options and data layout as StreamSpeech's task: the unit dictionary is built in code
(``--target-is-code --target-code-size K``: 4 specials + "0".."K-1", unit u at index u + 4) and
``<blank>`` is appended (index K + 4). On top, the manifests are checked when loaded: a unit outside
the dictionary is an error naming the file and line (fairseq would silently map it to ``<unk>``).

Offline decoding (``fairseq-generate``, see ``docs/offline_decoding.md``): ``--gen-output units``
(default) writes the two-pass model's unit sequences, ``--gen-output text`` the MT decoder's
subwords; the generators live in :mod:`echostream_fairseq.decoding.generate`. A non-train manifest
without target units (``tgt_audio``), as a test split may be, loads with empty unit targets.
"""

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, List, Optional

from fairseq.data import Dictionary
from fairseq.data.audio.speech_to_speech_dataset import SpeechToSpeechDatasetCreator
from fairseq.tasks import register_task
from fairseq.tasks.speech_to_speech import SpeechToSpeechTask

from echostream_fairseq.checkpoints import load_pretrained_groups
from echostream_fairseq.data.manifests import read_tsv_lines
from echostream_fairseq.data.validate import ManifestError, Problem, find_unit_problems
from echostream_fairseq.decoding.ctc import UNIT_BLANK_PENALTY_HELP

logger = logging.getLogger(__name__)

__all__ = ["SpeechToSpeechCTCTask", "BLANK_SYMBOL", "GEN_OUTPUTS"]

BLANK_SYMBOL = "<blank>"
GEN_OUTPUTS = ("units", "text")


class _OptionalUnitsCreator(SpeechToSpeechDatasetCreator):
    """fairseq's dataset creator; rows without target units get empty ones (``</s>`` only),
    as StreamSpeech's test split does, so that a manifest to decode needs no units."""

    @classmethod
    def _from_list(cls, split_name: str, is_train_split: bool, samples: Any, *args: Any,
                   **kwargs: Any) -> Any:
        for sample in samples:
            sample.setdefault(cls.KEY_TGT_AUDIO, "")
            sample.setdefault(cls.KEY_TGT_N_FRAMES, "0")
        return super()._from_list(split_name, is_train_split, samples, *args, **kwargs)


def _header(manifest: Path) -> List[str]:
    """The manifest's columns (ManifestReadError naming it when missing or not UTF-8)."""
    return read_tsv_lines(manifest)[0].rstrip("\r").split("\t")


# what fairseq's dataset creator reads from every row (the target columns: train splits only)
_SOURCE_COLUMNS = ("id", "src_audio", "src_n_frames")
_TARGET_COLUMNS = ("tgt_audio", "tgt_n_frames")


@register_task("speech_to_speech_ctc")
class SpeechToSpeechCTCTask(SpeechToSpeechTask):
    """fairseq's SpeechToSpeechTask; the target dictionary gets ``<blank>`` for the unit CTC
    loss."""

    @classmethod
    def add_args(cls, parser: Any) -> None:
        super().add_args(parser)
        parser.add_argument(
            "--gen-output", choices=GEN_OUTPUTS, default="units",
            help="what fairseq-generate writes: 'units' (two-pass: MT decoder, T2U, unit CTC; "
                 "the MT search takes --beam-mt/--max-len-a-mt/--max-len-b-mt/--lenpen-mt) or "
                 "'text' (the MT decoder's subwords, searched with --beam/--max-len-a/-b/...)",
        )
        parser.add_argument("--unit-blank-penalty", type=float, default=0.0,
                            help=f"--gen-output units: {UNIT_BLANK_PENALTY_HELP} (default 0)")

    def __init__(
        self, args: Any, tgt_dict: Dictionary, infer_tgt_lang_id: Optional[int] = None
    ) -> None:
        if tgt_dict is None:
            raise ValueError(
                "speech_to_speech_ctc predicts units: pass --target-is-code --target-code-size K"
            )
        tgt_dict.blank_index = tgt_dict.add_symbol(BLANK_SYMBOL)
        super().__init__(args, tgt_dict, infer_tgt_lang_id)
        self.blank_symbol = BLANK_SYMBOL
        # absent from the saved args of older checkpoints (the streaming pipeline loads those)
        self.text_output = getattr(args, "gen_output", "units") == "text"
        if self.text_output and self.tgt_dict_mt is None:
            raise ValueError(
                "--gen-output text needs a first-pass text decoder in --multitask-config-yaml"
            )

    # ------------------------------------------------------------------------- dictionaries
    @property
    def target_dictionary(self) -> Dictionary:
        """The unit dictionary; under ``--gen-output text`` the MT one, because fairseq-generate
        prints hypotheses and references (and scores BLEU) with this dictionary. The model and
        the datasets are always built with the units (see :meth:`_units_as_target`)."""
        return self.tgt_dict_mt if self.text_output else self.tgt_dict

    @contextmanager
    def _units_as_target(self) -> Iterator[None]:
        saved, self.text_output = self.text_output, False
        try:
            yield
        finally:
            self.text_output = saved

    def build_model(self, args: Any, from_checkpoint: bool = False) -> Any:
        with self._units_as_target():
            model = super().build_model(args, from_checkpoint)
        if not from_checkpoint:  # a checkpoint about to be loaded brings its own weights
            load_pretrained_groups(model, args)
        return model

    # ------------------------------------------------------------------------------ data
    def load_dataset(
        self, split: str, epoch: int = 1, combine: bool = False, **kwargs: Any
    ) -> None:
        """Loads ``{data}/{split}.tsv`` (comma-separated splits allowed) after checking its units.

        A non-train split without a ``tgt_audio`` column loads with empty unit targets (decoding
        only: fairseq-generate prints empty T- lines for them in unit mode)."""
        if self.args.target_is_code and not self.data_cfg.prepend_tgt_lang_tag_as_bos:
            for name in split.split(","):
                path = Path(self.args.data) / f"{name}.tsv"
                header = _header(path)
                required = _SOURCE_COLUMNS + (_TARGET_COLUMNS if name.startswith("train") else ())
                missing = [column for column in required if column not in header]
                if missing:  # fairseq would raise a bare KeyError on the first row
                    raise ManifestError([Problem(str(path), 1, column,
                                                 "column missing from the header")
                                         for column in missing])
                if not name.startswith("train") and "tgt_audio" not in header:
                    logger.info("split '%s' has no target units: loaded with empty ones", name)
                    continue
                problems = find_unit_problems(path, self.args.target_code_size)
                if problems:
                    raise ManifestError(problems)
        # SpeechToSpeechTask.load_dataset, with the creator that accepts missing units and the
        # unit dictionary named directly (target_dictionary is the MT one under --gen-output text)
        self.datasets[split] = _OptionalUnitsCreator.from_tsv(
            root=self.args.data, data_cfg=self.data_cfg, splits=split,
            is_train_split=split.startswith("train"), epoch=epoch, seed=self.args.seed,
            target_is_code=self.args.target_is_code, tgt_dict=self.tgt_dict,
            n_frames_per_step=self.args.n_frames_per_step, multitask=self.multitask_tasks,
        )

    # ------------------------------------------------------------------------ generation
    def build_generator(self, models: Any, args: Any, seq_gen_cls: Any = None,
                        extra_gen_cls_kwargs: Any = None) -> Any:
        """:class:`~echostream_fairseq.decoding.generate.TextGenerator` or ``UnitGenerator`` (per
        ``--gen-output``); fairseq's own needs its ``examples`` package and prints no units."""
        from echostream_fairseq.decoding.generate import TextGenerator, UnitGenerator

        if seq_gen_cls is not None:
            raise NotImplementedError("speech_to_speech_ctc builds its own generators")
        if getattr(self.args, "required_batch_size_multiple", 1) > 1:
            # fairseq 0.12's batch_by_size drops a last batch that is not a multiple of it
            # (facebookresearch/fairseq#5036): sentences would be silently left out
            raise ValueError("pass --required-batch-size-multiple 1: with the default 8, "
                             "fairseq-generate silently skips the last sentences of the split")
        if self.text_output:
            return TextGenerator(models, self.tgt_dict_mt, args, extra_gen_cls_kwargs)
        return UnitGenerator(models, self.tgt_dict, self.tgt_dict_mt, args, extra_gen_cls_kwargs)

    def build_bpe(self, args: Any) -> Any:
        """Under ``--gen-output text`` without ``--bpe``/``--post-process``, a subword joiner:
        fairseq-generate's H- lines stay MT subwords, D- lines (and T- references, and the
        ``--scoring sacrebleu`` BLEU) are words."""
        bpe = super().build_bpe(args)
        if bpe is not None or not self.text_output or getattr(self.args, "post_process", None):
            return bpe
        from echostream_fairseq.decoding.generate import SubwordDetokenizer

        return SubwordDetokenizer(self.tgt_dict_mt)

    def inference_step(self, generator: Any, models: Any, sample: Any, prefix_tokens: Any = None,
                       constraints: Any = None) -> Any:
        if self.text_output:
            # fairseq-generate reads the reference (T- lines, BLEU) from sample["target"] after
            # this call: make it the MT reference instead of the units
            sample["target"] = sample["multitask"][self._mt_task_name()]["target"]
        return super().inference_step(generator, models, sample, prefix_tokens, constraints)

    def _mt_task_name(self) -> str:
        return next(name for name, sub in self.multitask_tasks.items() if sub.is_first_pass_decoder)
