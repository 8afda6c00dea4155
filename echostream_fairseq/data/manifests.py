"""StreamSpeech-layout files: manifests, sentencepiece + multitask folders, YAMLs, SimulEval lists.

Layout (``streamspeech-interface.md``, "Data layout")::

    train_sampled.units.tsv  dev_sampled.units.tsv  test_sampled.tsv
        id  src_audio  src_n_frames  src_text  tgt_text  tgt_audio  tgt_n_frames
    gcmvn.npz  config_gcmvn.yaml  config_mtl_asr_st_ctcst.yaml
    src_unigram<N>/{split}.tsv  spm_unigram<N>.model  spm_unigram<N>.txt     (ASR CTC)
    tgt_unigram<N>/...                                                     (MT + ST CTC)
    simuleval/{dev,test}/wav_list.txt  target.txt

TSVs are written the way fairseq reads them (tab separated, no quoting), so no field may hold a
tab or a newline.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import yaml

from echostream_fairseq.data.text import normalize_for_spm
from echostream_fairseq.errors import ConfigError, UserError

logger = logging.getLogger(__name__)

__all__ = [
    "MANIFEST_COLUMNS",
    "MULTITASK_COLUMNS",
    "MULTITASK_YAML",
    "GCMVN_YAML",
    "ManifestReadError",
    "SPLIT_NAMES",
    "SpmVocab",
    "choose_vocab_size",
    "multitask_folders",
    "read_tsv",
    "read_tsv_lines",
    "train_spm_vocab",
    "write_config_gcmvn",
    "write_multitask_split",
    "write_multitask_yaml",
    "write_simuleval_lists",
    "write_tsv",
    "write_yaml",
]

MANIFEST_COLUMNS = ("id", "src_audio", "src_n_frames", "src_text", "tgt_text", "tgt_audio",
                    "tgt_n_frames")
MULTITASK_COLUMNS = ("id", "tgt_text")
#: corpus split -> fairseq split name (the manifest is ``<name>.tsv``), as in StreamSpeech.
SPLIT_NAMES = {"train": "train_sampled.units", "dev": "dev_sampled.units", "test": "test_sampled"}
GCMVN_YAML = "config_gcmvn.yaml"
# config_gcmvn.yaml's vocoder type of a corpus whose units are piper phoneme ids (--unit-type
# piper-phonemes): spoken by the voice itself, and a phoneme may repeat (espeak's "ɹɹ")
PIPER_PHONEMES = "piper_phonemes"
MULTITASK_YAML = "config_mtl_asr_st_ctcst.yaml"
# fairseq's speech_to_text data_utils.gen_vocab ids: the dict file lists every other piece.
_SPM_SPECIALS = {"unk_id": 3, "bos_id": 0, "eos_id": 2, "pad_id": 1}
_SPECIAL_PIECES = {"<unk>", "<s>", "</s>", "<pad>"}
# StreamSpeech's SpecAugment block (configs/fr-en/config_gcmvn.yaml).
_SPECAUGMENT = {"freq_mask_F": 27, "freq_mask_N": 1, "time_mask_N": 1, "time_mask_T": 100,
                "time_mask_p": 1.0, "time_wrap_W": 0}
# StreamSpeech's multitask decoders (configs/fr-en/config_mtl_asr_st_ctcst.yaml).
_DECODER_ARGS = {"decoder_embed_dim": 512, "decoder_ffn_embed_dim": 2048,
                 "decoder_attention_heads": 8}


def _check_field(value: str, path: Path) -> str:
    if "\t" in value or "\n" in value or "\r" in value:
        raise ValueError(f"{path}: field {value!r} holds a tab or newline")
    return value


def write_tsv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    """Write a header + rows TSV atomically; returns the row count.

    Raises:
        ValueError: a row has the wrong length or a field holds a tab or newline.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
        handle.write("\t".join(header) + "\n")
        for row in rows:
            fields = [_check_field(str(v), path) for v in row]
            if len(fields) != len(header):
                raise ValueError(f"{path}: row {fields[:1]} has {len(fields)} fields, "
                                 f"header has {len(header)}")
            handle.write("\t".join(fields) + "\n")
            count += 1
    tmp.replace(path)
    return count


class ManifestReadError(UserError, ValueError):
    """A manifest that is not there or not UTF-8 text; the message names the file (and line)."""

    def __init__(self, path: Path, reason: str, line: int = 0) -> None:
        self.path, self.reason, self.line = str(path), reason, line
        super().__init__(f"{path}:{line}: {reason}" if line else f"{path}: {reason}")


def read_tsv_lines(path: Path) -> list[str]:
    """The lines of a TSV (``\\n``-separated, as :func:`write_tsv` writes them).

    Raises:
        ManifestReadError: the path is missing or a folder, or the file is not UTF-8.
    """
    path = Path(path)
    if path.is_dir():
        raise ManifestReadError(path, "a folder, not a manifest TSV")
    if not path.exists():
        raise ManifestReadError(path, "no such manifest")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise ManifestReadError(path, f"not UTF-8 text (byte {data[error.start]:#04x} at offset "
                                      f"{error.start})", line) from None
    return text.split("\n")


def read_tsv(path: Path) -> list[dict[str, str]]:
    """Read a header + rows TSV written by :func:`write_tsv` into dicts.

    Raises:
        ManifestReadError: see :func:`read_tsv_lines`; or a row's field count differs from the
            header's.
    """
    lines = read_tsv_lines(path)
    header = lines[0].split("\t")
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise ManifestReadError(path, f"{len(fields)} fields, header has {len(header)}",
                                    lineno)
        rows.append(dict(zip(header, fields)))
    return rows


def choose_vocab_size(num_sentences: int) -> int:
    """Sentencepiece vocabulary for a corpus of ``num_sentences`` training sentences.

    About one piece per six sentences, rounded to 100, within [100, 2000]: ~1,500 for the full
    ~9,000 training sentences. StreamSpeech's 6,000 fits CVSS's 200k sentences, not ours.
    """
    return int(max(100, min(2000, 100 * round(num_sentences / 600))))


@dataclass(frozen=True)
class SpmVocab:
    """A trained sentencepiece model and its fairseq dictionary."""

    model_path: Path
    dict_path: Path
    size: int  # pieces including the 4 specials, the N of ``spm_unigram<N>``


def train_spm_vocab(sentences: Sequence[str], folder_prefix: Path, vocab_size: int,
                    num_threads: int = 1) -> SpmVocab:
    """Train a unigram sentencepiece model on normalised sentences and write its folder.

    The folder is ``<folder_prefix><N>`` (e.g. ``data/src_unigram812``), N being the size spm
    really reached (``hard_vocab_limit=False`` lets it stop short on a small corpus); it holds
    ``spm_unigram<N>.model`` and the fairseq dictionary ``spm_unigram<N>.txt`` (one
    ``piece 1`` line per non-special piece, as fairseq's ``gen_vocab`` writes it). Folders with
    the same prefix from earlier builds are removed.
    """
    import sentencepiece as spm

    folder_prefix = Path(folder_prefix)
    work = folder_prefix.parent / f".{folder_prefix.name}_work"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    normalized = [normalize_for_spm(s) for s in sentences]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(normalized), model_prefix=str(work / "spm"),
        vocab_size=vocab_size, model_type="unigram", character_coverage=1.0,
        hard_vocab_limit=False, num_threads=num_threads, minloglevel=2, **_SPM_SPECIALS)
    processor = spm.SentencePieceProcessor(model_file=str(work / "spm.model"))
    size = processor.get_piece_size()
    folder = folder_prefix.parent / f"{folder_prefix.name}{size}"
    for stale in folder_prefix.parent.glob(f"{folder_prefix.name}*"):
        if stale.is_dir() and stale.name[len(folder_prefix.name):].isdigit():
            shutil.rmtree(stale)
    folder.mkdir(parents=True)
    model_path = folder / f"spm_unigram{size}.model"
    shutil.move(str(work / "spm.model"), model_path)
    shutil.rmtree(work)
    dict_path = folder / f"spm_unigram{size}.txt"
    pieces = [processor.id_to_piece(i) for i in range(size)]
    with open(dict_path, "w", encoding="utf-8") as handle:
        for piece in pieces:
            if piece not in _SPECIAL_PIECES:
                handle.write(f"{piece} 1\n")
    logger.info("sentencepiece %s: %d pieces (asked for %d)", folder, size, vocab_size)
    return SpmVocab(model_path=model_path.resolve(), dict_path=dict_path.resolve(), size=size)


def write_multitask_split(vocab: SpmVocab, split_name: str,
                          texts: Sequence[tuple[str, str]]) -> Path:
    """Write ``<vocab folder>/<split_name>.tsv`` (``id  tgt_text``) from ``(id, text)`` pairs."""
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_file=str(vocab.model_path))
    path = vocab.model_path.parent / f"{split_name}.tsv"
    # Through ids, so a character never seen in training (e.g. an accent only in dev) is written
    # as <unk>, the symbol fairseq's dictionary maps it to anyway, not as an unknown piece.
    rows = ((utt_id, " ".join(processor.id_to_piece(i)
                              for i in processor.encode(normalize_for_spm(text), out_type=int)))
            for utt_id, text in texts)
    write_tsv(path, MULTITASK_COLUMNS, rows)
    return path


def write_yaml(path: Path, content: Mapping[str, object]) -> None:
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        yaml.safe_dump(dict(content), handle, sort_keys=False, default_flow_style=False)
    tmp.replace(path)


def vocoder_type(data_dir: Path) -> Optional[str]:
    """The ``vocoder: {type}`` of a corpus folder's ``config_gcmvn.yaml`` (None: none named)."""
    path = Path(data_dir) / GCMVN_YAML
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (yaml.YAMLError, UnicodeDecodeError):
        return None  # the config's own readers report it
    entry = content.get("vocoder") if isinstance(content, dict) else None
    return entry.get("type") if isinstance(entry, dict) else None


def write_config_gcmvn(path: Path, gcmvn_npz: Path, vocoder: Optional[dict] = None) -> None:
    """Write fairseq's data config (``config_gcmvn.yaml``) as StreamSpeech's, paths absolute.

    ``vocoder`` (``{type, config, checkpoint}``) is left out until a vocoder exists.
    """
    content: dict[str, object] = {
        "global_cmvn": {"stats_npz_path": str(Path(gcmvn_npz).resolve())},
        "input_channels": 1,
        "input_feat_per_channel": 80,
        "specaugment": dict(_SPECAUGMENT),
        "transforms": {"*": ["global_cmvn"], "_train": ["global_cmvn", "specaugment"]},
    }
    if vocoder is not None:
        content["vocoder"] = dict(vocoder)
    write_yaml(path, content)


def _multitask_entry(decoder_type: str, vocab: SpmVocab, loss_weight: float,
                     decoder_layers: int) -> dict[str, object]:
    return {
        "decoder_type": decoder_type,
        "dict": str(vocab.dict_path),
        "data": str(vocab.dict_path.parent),
        "loss_weight": loss_weight,
        "rdrop_alpha": 0.0,
        "decoder_args": {"decoder_layers": decoder_layers, **_DECODER_ARGS},
        "label_smoothing": 0.1,
    }


def write_multitask_yaml(path: Path, source: SpmVocab, target: SpmVocab) -> None:
    """Write the multitask YAML: ``target_unigram`` (MT, transformer, x8), ``source_unigram``
    (ASR CTC, x4), ``ctc_target_unigram`` (ST CTC, x4), in StreamSpeech's order and values."""
    write_yaml(path, {
        "target_unigram": _multitask_entry("transformer", target, 8.0, 4),
        "source_unigram": _multitask_entry("ctc", source, 4.0, 0),
        "ctc_target_unigram": _multitask_entry("ctc", target, 4.0, 0),
    })


def multitask_folders(data_dir: Path) -> dict[str, tuple[Path, Path]]:
    """The multitask YAML's entries of a corpus folder: name -> (its data folder, its fairseq
    dictionary), e.g. ``target_unigram`` -> (``tgt_unigram1000``, ``.../spm_unigram1000.txt``).

    Raises:
        ConfigError: the YAML is missing, unreadable or lacks an entry's ``data``/``dict``.
    """
    path = Path(data_dir) / MULTITASK_YAML
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (build the corpus with echostream-prepare)")
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: not a readable YAML file ({error})") from error
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: expected a mapping of multitask entries")
    folders = {}
    for name, entry in content.items():
        if not (isinstance(entry, dict) and entry.get("data") and entry.get("dict")):
            raise ConfigError(f"{path}: entry {name!r} lacks 'data' or 'dict'")
        folders[str(name)] = (Path(entry["data"]), Path(entry["dict"]))
    return folders


def write_simuleval_lists(folder: Path, wavs: Sequence[Path], references: Sequence[str]) -> None:
    """Write SimulEval's ``wav_list.txt`` (absolute paths) and ``target.txt`` (one a line)."""
    if len(wavs) != len(references):
        raise ValueError(f"{len(wavs)} wavs but {len(references)} references")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in (("wav_list.txt", [str(Path(w).resolve()) for w in wavs]),
                        ("target.txt", list(references))):
        tmp = folder / (name + ".tmp")
        tmp.write_text("".join(_check_field(line, folder / name) + "\n" for line in lines),
                       encoding="utf-8")
        tmp.replace(folder / name)
