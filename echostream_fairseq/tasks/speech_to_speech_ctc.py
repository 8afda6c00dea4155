"""Task ``speech_to_speech_ctc``: fairseq's speech-to-speech task with a CTC blank on the units.

Same name, options and data layout as StreamSpeech's task: the unit dictionary is built in code
(``--target-is-code --target-code-size K``: 4 specials + "0".."K-1", unit u at index u + 4) and
``<blank>`` is appended (index K + 4). On top, the manifests are checked when loaded: a unit outside
the dictionary is an error naming the file and line (fairseq would silently map it to ``<unk>``).
"""

import csv
import logging
from pathlib import Path
from typing import Any, Optional

from fairseq.data import Dictionary
from fairseq.tasks import register_task
from fairseq.tasks.speech_to_speech import SpeechToSpeechTask

logger = logging.getLogger(__name__)

__all__ = ["SpeechToSpeechCTCTask", "BLANK_SYMBOL", "check_unit_manifest"]

BLANK_SYMBOL = "<blank>"
UNIT_COLUMN = "tgt_audio"


def check_unit_manifest(path: Path, code_size: int) -> int:
    """Raises ValueError at the first unit that is not an integer in [0, code_size).

    Args:
        path: a fairseq speech-to-speech manifest (TSV with a ``tgt_audio`` column of units).
        code_size: K of ``--target-code-size``.
    Returns:
        the number of rows checked.
    """
    with open(path, newline="", encoding="utf-8") as f:
        # the same dialect as fairseq's manifest reader, so both see the same rows
        reader = csv.DictReader(
            f, delimiter="\t", quotechar=None, doublequote=False, lineterminator="\n",
            quoting=csv.QUOTE_NONE,
        )
        if reader.fieldnames is None or UNIT_COLUMN not in reader.fieldnames:
            raise ValueError(f"{path}: no '{UNIT_COLUMN}' column in the header {reader.fieldnames}")
        rows = 0
        for rows, row in enumerate(reader, start=1):
            for unit in (row[UNIT_COLUMN] or "").split():
                if not unit.isdigit() or int(unit) >= code_size:
                    raise ValueError(
                        f"{path}:{rows + 1} (id {row.get('id')!r}): unit {unit!r} is outside the unit "
                        f"dictionary (integers 0..{code_size - 1}, --target-code-size {code_size})"
                    )
    return rows


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
                check_unit_manifest(path, self.args.target_code_size)
        super().load_dataset(split, epoch=epoch, combine=combine, **kwargs)
