"""Task ``speech_to_speech_ctc``: fairseq's speech-to-speech task with a CTC blank on the units.

Same name, options and data layout as StreamSpeech's task: the unit dictionary is built in code
(``--target-is-code --target-code-size K``: 4 specials + "0".."K-1", unit u at index u + 4) and
``<blank>`` is appended (index K + 4). On top, the manifests are checked when loaded: a unit outside
the dictionary is an error naming the file and line (fairseq would silently map it to ``<unk>``).
"""

import logging
from pathlib import Path
from typing import Any, Optional

from fairseq.data import Dictionary
from fairseq.tasks import register_task
from fairseq.tasks.speech_to_speech import SpeechToSpeechTask

from echostream_fairseq.data.validate import ManifestError, find_unit_problems

logger = logging.getLogger(__name__)

__all__ = ["SpeechToSpeechCTCTask", "BLANK_SYMBOL"]

BLANK_SYMBOL = "<blank>"


@register_task("speech_to_speech_ctc")
class SpeechToSpeechCTCTask(SpeechToSpeechTask):
    """fairseq's SpeechToSpeechTask; the target dictionary gets ``<blank>`` for the unit CTC loss."""

    def __init__(self, args: Any, tgt_dict: Dictionary, infer_tgt_lang_id: Optional[int] = None) -> None:
        if tgt_dict is None:
            raise ValueError("speech_to_speech_ctc predicts units: pass --target-is-code --target-code-size K")
        tgt_dict.blank_index = tgt_dict.add_symbol(BLANK_SYMBOL)
        super().__init__(args, tgt_dict, infer_tgt_lang_id)
        self.blank_symbol = BLANK_SYMBOL

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, **kwargs: Any) -> None:
        """Loads ``{data}/{split}.tsv`` (comma-separated splits allowed) after checking its units."""
        if self.args.target_is_code and not self.data_cfg.prepend_tgt_lang_tag_as_bos:
            for name in split.split(","):
                path = Path(self.args.data) / f"{name}.tsv"
                if not path.is_file():
                    raise FileNotFoundError(f"split '{name}': manifest {path} not found")
                problems = find_unit_problems(path, self.args.target_code_size)
                if problems:
                    raise ManifestError(problems)
        super().load_dataset(split, epoch=epoch, combine=combine, **kwargs)
