"""``echostream-text-mt``: the translation ceiling of a corpus. A text-to-text MT model trained on
the same training pairs, with the same sentencepiece models, as the speech model; its test BLEU
is what this data allows a translation to reach, and the cascade (gold German text -> this MT ->
the target voice -> the recogniser) what it allows translated speech to reach.

Example::

    echostream-text-mt --data-dir data --output-dir exp/text_mt --max-update 4000

Steps, each by fairseq's own commands, into ``--output-dir``: the corpus's subword files
(``<vocab folder>/<split>.tsv``, what the MT decoder of the speech model trains on) as parallel
text and ``fairseq-preprocess`` with the corpus's dictionaries (``bin/``); ``fairseq-train``
(translation task, arch ``echostream_text_mt``, resumes from ``checkpoints/``); ``fairseq-generate``
on the test split (beam 5, checkpoint_best.pt); the text BLEU and WER with every score's
normalisation (``scoring.asr_bleu``); then, unless ``--no-speech``, the hypotheses spoken by the
piper voice the corpus's target speech was made with and heard by Whisper tiny.en (ASR-BLEU).
Writes ``text_mt.json`` there (or ``--output``). Bad input (no corpus, no multitask YAML) exits 2
naming the file.

``--source-text FILE`` translates other German text instead of the gold test sentences (one a
line, in test order, or an ``echostream-evaluate`` ``utterances.jsonl``, whose streaming German
ASR it takes; ``fairseq-interactive`` on the model trained as above): how much of the data's
translation ceiling is left once the source is what a speech model's encoder recognised::

    echostream-text-mt --data-dir data --output-dir exp/text_mt --no-speech \\
        --source-text exp/eval/chunk_320ms/utterances.jsonl --output exp/text_mt/from_asr.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from echostream_fairseq.cli.common import (UserError, add_log_level_argument,
                                           add_num_threads_argument, check_output_dir,
                                           positive_int, provenance, run_main, setup_logging)

logger = logging.getLogger("echostream.text_mt")

SOURCE_ENTRY, TARGET_ENTRY = "source_unigram", "target_unigram"
#: fairseq's split names for the corpus's
FAIRSEQ_SPLITS = {"train": "train", "dev": "valid", "test": "test"}
_PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: fairseq-train settings of the ceiling model (small data: IWSLT-like regularisation)
TRAIN_SETTINGS = ("--task", "translation", "--arch", "echostream_text_mt",
                  "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--clip-norm", "1.0",
                  "--lr", "1e-3", "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "400",
                  "--warmup-init-lr", "1e-7", "--criterion", "label_smoothed_cross_entropy",
                  "--label-smoothing", "0.1", "--weight-decay", "0.0001",
                  "--max-tokens", "4000", "--no-epoch-checkpoints", "--seed", "1",
                  # fairseq's default of 8 drops a split smaller than 8 sentences
                  "--required-batch-size-multiple", "1",
                  "--log-format", "simple", "--log-interval", "50")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    a = parser.add_argument
    a("--data-dir", type=Path, required=True, help="corpus folder built by echostream-prepare")
    a("--output-dir", type=Path, required=True,
      help="work folder: binarised text, checkpoints, hypotheses, scores (reused on a rerun)")
    a("--max-update", type=positive_int, default=4000,
      help="training updates (fairseq resumes a shorter run; default 4000)")
    a("--max-utterances", type=positive_int, default=None,
      help="score only the first N test sentences (default: all)")
    a("--no-speech", action="store_true", help="text BLEU only: no synthesis or recogniser")
    a("--source-text", type=Path,
      help="German sentences to translate instead of the gold test text: one a line in test "
           "order, or an echostream-evaluate utterances.jsonl (its asr_text); needs --output")
    a("--device", choices=("cpu", "cuda"), default="cpu", help="where fairseq trains")
    a("--output", type=Path, help="JSON file for the scores (default: OUTPUT_DIR/text_mt.json)")
    add_num_threads_argument(parser, "torch and synthesis CPU threads, and recogniser "
                             "transcriptions at once")
    add_log_level_argument(parser)
    return parser


def _split_file(folder: Path, split: str) -> Path:
    from echostream_fairseq.data.manifests import SPLIT_NAMES

    return folder / f"{SPLIT_NAMES[split]}.tsv"


def text_folders(data_dir: Path) -> Dict[str, tuple]:
    """The multitask YAML's source and target entries: (subword folder, fairseq dictionary)."""
    from echostream_fairseq.data.manifests import multitask_folders

    folders = multitask_folders(data_dir)
    for entry in (SOURCE_ENTRY, TARGET_ENTRY):
        if entry not in folders:
            raise UserError(f"{data_dir}: the multitask YAML has no {entry!r} entry")
    return folders


def write_parallel_text(folders: Dict[str, tuple], text_dir: Path) -> Dict[str, List[str]]:
    """``text_dir/{train,valid,test}.{de,en}``: the corpus's subwords, one sentence a line, in
    manifest order; returns split -> utterance ids."""
    from echostream_fairseq.data.manifests import read_tsv

    text_dir.mkdir(parents=True, exist_ok=True)
    ids: Dict[str, List[str]] = {}
    for split, name in FAIRSEQ_SPLITS.items():
        sides = {lang: {r["id"]: r["tgt_text"]
                        for r in read_tsv(_split_file(folders[entry][0], split))}
                 for lang, entry in (("de", SOURCE_ENTRY), ("en", TARGET_ENTRY))}
        order = [utt for utt in sides["en"] if utt in sides["de"]]
        if not order:
            raise UserError(f"{_split_file(folders[TARGET_ENTRY][0], split)}: no sentence "
                            "shared with the source side")
        for lang, texts in sides.items():
            tmp = text_dir / f"{name}.{lang}.tmp"
            tmp.write_text("".join(texts[utt] + "\n" for utt in order), encoding="utf-8")
            tmp.replace(text_dir / f"{name}.{lang}")
        ids[split] = order
    return ids


def _run(command: Sequence[str], log: Path, threads: int) -> None:
    """One fairseq command, its output to ``log``; a failure names the log and its last line."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_DIR.parent),
                                                    env.get("PYTHONPATH")) if p)
    logger.info("%s (log: %s)", " ".join(command[2:4]), log)
    with open(log, "a", encoding="utf-8") as out:
        status = subprocess.run(list(command), stdout=out, stderr=subprocess.STDOUT, env=env,
                                check=False).returncode
    if status != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
        raise RuntimeError(f"{' '.join(command[:4])} failed ({status}); see {log}: "
                           f"{tail[0] if tail else ''}")


def _fairseq(tool: str) -> List[str]:
    return [sys.executable, "-m", f"fairseq_cli.{tool}"]


def binarise(folders: Dict[str, tuple], text_dir: Path, bin_dir: Path, threads: int) -> None:
    """``fairseq-preprocess`` with the corpus's own dictionaries (so the subwords are the
    speech model's); skipped when ``bin_dir`` holds its output."""
    if (bin_dir / "test.de-en.en.bin").is_file():
        return
    _run([*_fairseq("preprocess"), "--source-lang", "de", "--target-lang", "en",
          "--trainpref", str(text_dir / "train"), "--validpref", str(text_dir / "valid"),
          "--testpref", str(text_dir / "test"), "--destdir", str(bin_dir),
          "--srcdict", str(folders[SOURCE_ENTRY][1]), "--tgtdict", str(folders[TARGET_ENTRY][1]),
          "--workers", "1"], bin_dir.parent / "preprocess.log", threads)


def train(bin_dir: Path, save_dir: Path, max_update: int, device: str, threads: int) -> int:
    """``fairseq-train`` (resumes from ``save_dir``); returns the updates of checkpoint_last.
    Not started when checkpoint_last has ``max_update`` already: resumed there, fairseq-train
    takes one more update before it checks the limit."""
    if (save_dir / "checkpoint_last.pt").is_file():
        done = _updates(save_dir / "checkpoint_last.pt")
        if done >= max_update:
            return done
    command = [*_fairseq("train"), str(bin_dir), "--user-dir", str(_PACKAGE_DIR),
               *TRAIN_SETTINGS, "--max-update", str(max_update), "--save-dir", str(save_dir),
               "--num-workers", "0"]
    if device == "cpu":
        command.append("--cpu")
    _run(command, save_dir.parent / "train.log", threads)
    return _updates(save_dir / "checkpoint_last.pt")


def _updates(checkpoint: Path) -> int:
    from echostream_fairseq.checkpoint_safety import safe_torch_load

    return int(safe_torch_load(checkpoint)["optimizer_history"][-1]["num_updates"])


_HYPOTHESIS = re.compile(r"^D-(\d+)\t[^\t]*\t(.*)$")
#: how fairseq-generate and fairseq-interactive decode (the ceiling's and --source-text's)
DECODING = ("--beam", "5", "--max-tokens", "8000", "--post-process", "sentencepiece", "--cpu")


def generate(bin_dir: Path, checkpoint: Path, out_dir: Path, threads: int) -> List[str]:
    """``fairseq-generate`` on the test split (beam 5, subwords joined back into words);
    returns the hypotheses in test-file order."""
    log = out_dir / "generate-test.txt"
    log.unlink(missing_ok=True)
    _run([*_fairseq("generate"), str(bin_dir), "--user-dir", str(_PACKAGE_DIR), "--path",
          str(checkpoint), "--gen-subset", "test", *DECODING, "--num-workers", "0",
          "--required-batch-size-multiple", "1"], log, threads)
    hypotheses = _read_hypotheses(log)
    return [hypotheses.get(i, "") for i in range(max(hypotheses, default=-1) + 1)]


def _read_hypotheses(log: Path) -> Dict[int, str]:
    """Sentence id -> detokenised hypothesis, from fairseq-generate's or -interactive's output."""
    hypotheses: Dict[int, str] = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        match = _HYPOTHESIS.match(line)
        if match:
            hypotheses[int(match.group(1))] = match.group(2).strip()
    return hypotheses


def translate(bin_dir: Path, checkpoint: Path, spm_model: Path, sentences: Sequence[str],
              out_dir: Path, threads: int) -> List[str]:
    """``fairseq-interactive`` over German sentences, cut into the corpus's source subwords as
    its multitask files are (:data:`DECODING`, as :func:`generate`); the hypotheses in input
    order. A sentence without a word is not translated (an empty hypothesis): the model would
    invent one from nothing."""
    import sentencepiece as spm

    from echostream_fairseq.data.text import normalize_for_spm

    processor = spm.SentencePieceProcessor(model_file=str(spm_model))
    pieces = [" ".join(processor.id_to_piece(i)
                       for i in processor.encode(normalize_for_spm(text), out_type=int))
              for text in sentences]
    spoken = [i for i, line in enumerate(pieces) if line]
    source = out_dir / "source_text.de"
    source.write_text("".join(pieces[i] + "\n" for i in spoken), encoding="utf-8")
    log = out_dir / "interactive.txt"
    log.unlink(missing_ok=True)
    _run([*_fairseq("interactive"), str(bin_dir), "--user-dir", str(_PACKAGE_DIR), "--path",
          str(checkpoint), "--source-lang", "de", "--target-lang", "en", "--input", str(source),
          *DECODING, "--buffer-size", "64"], log, threads)
    hypotheses = _read_hypotheses(log)
    if sorted(hypotheses) != list(range(len(spoken))):
        raise RuntimeError(f"{log}: hypotheses for {len(hypotheses)} of the {len(spoken)} "
                           "sentences given")
    out = [""] * len(sentences)
    for line, index in enumerate(spoken):
        out[index] = hypotheses[line]
    return out


def run(opts: argparse.Namespace, argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    from echostream_fairseq.data.manifests import SPLIT_NAMES, read_tsv
    from echostream_fairseq.scoring.asr_bleu import score_texts

    start = time.perf_counter()
    data_dir, out_dir = opts.data_dir, opts.output_dir
    if not data_dir.is_dir():
        raise UserError(f"{data_dir}: no such corpus folder")
    check_output_dir(out_dir)
    if opts.output is not None:
        check_output_dir(opts.output.parent)
    if opts.source_text is not None and opts.output is None:  # keep the ceiling's own file
        raise UserError("--source-text needs --output (text_mt.json is the gold text's)")
    out_dir.mkdir(parents=True, exist_ok=True)
    folders = text_folders(data_dir)
    ids = write_parallel_text(folders, out_dir / "text")
    # a bad --source-text fails before training, not after it
    sources = (None if opts.source_text is None
               else _source_sentences(opts.source_text, ids["test"]))
    binarise(folders, out_dir / "text", out_dir / "bin", opts.num_threads)
    updates = train(out_dir / "bin", out_dir / "checkpoints", opts.max_update, opts.device,
                    opts.num_threads)
    checkpoint = out_dir / "checkpoints" / "checkpoint_best.pt"
    test_ids = ids["test"]
    if opts.source_text is None:
        hypotheses = generate(out_dir / "bin", checkpoint, out_dir, opts.num_threads)
        if len(hypotheses) != len(test_ids):
            raise RuntimeError(f"{out_dir / 'generate-test.txt'}: {len(hypotheses)} hypotheses "
                               f"for {len(test_ids)} test sentences")
    else:  # translate() checks its own count
        hypotheses = translate(out_dir / "bin", checkpoint,
                               folders[SOURCE_ENTRY][1].with_suffix(".model"), sources, out_dir,
                               opts.num_threads)
    references = {r["id"]: r["tgt_text"] for r in read_tsv(data_dir / f"{SPLIT_NAMES['test']}.tsv")}
    count = len(test_ids) if opts.max_utterances is None else min(opts.max_utterances,
                                                                   len(test_ids))
    hypotheses, refs = hypotheses[:count], [references[utt] for utt in test_ids[:count]]
    text = score_texts(hypotheses, refs, num_empty=sum(not h.strip() for h in hypotheses))
    result: Dict[str, Any] = {
        "data_dir": str(data_dir.resolve()), "updates": updates,
        "checkpoint": str(checkpoint.resolve()),
        "source_text": str(opts.source_text) if opts.source_text else "gold test sentences",
        "text": text.as_dict(),
        "examples": [{"hypothesis": h, "reference": r} for h, r in zip(hypotheses, refs)][:5],
    }
    if not opts.no_speech:
        result["cascade"] = speak_and_score(hypotheses, refs, opts.num_threads)
    result["wall_s"] = time.perf_counter() - start
    result["provenance"] = provenance(argv)
    output = opts.output or out_dir / "text_mt.json"
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(output)
    logger.info("wrote %s", output)
    return result


def _source_sentences(path: Path, test_ids: Sequence[str]) -> List[str]:
    """The sentences of ``--source-text``, one a test sentence in test order: its lines, or the
    ``asr_text`` of an ``utterances.jsonl`` by the utterances' ``id``."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        if path.suffix == ".jsonl":
            heard = {}
            for line in lines:
                record = json.loads(line)
                heard[record["id"]] = " ".join(record["asr_text"].split())
            missing = [utt for utt in test_ids if utt not in heard]
            if missing or len(heard) != len(test_ids):
                raise UserError(f"{path}: {len(heard)} utterances, not the test set's "
                                f"{len(test_ids)} (missing {missing[:3]})")
            return [heard[utt] for utt in test_ids]
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read the source text ({error})") from error
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(f"{path}: not an utterances.jsonl with id and asr_text "
                        f"({type(error).__name__}: {error})") from error
    if len(lines) != len(test_ids):
        raise UserError(f"{path}: {len(lines)} sentences, but the test set has {len(test_ids)}")
    return lines


def speak_and_score(hypotheses: Sequence[str], references: Sequence[str],
                    threads: int) -> Dict[str, Any]:
    """The hypotheses through the target voice (the corpus's synthesis settings) and the
    recogniser: the cascade's ASR-BLEU."""
    import numpy as np

    from echostream_fairseq.corpus.tts import PiperSynthesizer
    from echostream_fairseq.data.audio import SAMPLE_RATE
    from echostream_fairseq.scoring.asr_bleu import (load_whisper_tiny_en, normalize_text,
                                                     score_texts, transcribe_all)

    voice = PiperSynthesizer(num_threads=threads, release_memory=False)  # one batch
    audios = [voice(h) if h.strip() else np.zeros(0, np.float32) for h in hypotheses]
    asr = load_whisper_tiny_en(workers=threads)
    # a sentence without speech is an empty transcript (as in echostream-measure-t2u)
    transcripts = transcribe_all(asr, [audio if audio.size else None for audio in audios])
    result = score_texts(transcripts, references,
                         num_empty=sum(not normalize_text(t) for t in transcripts))
    return {**result.as_dict(), "speech_s": sum(a.size for a in audios) / SAMPLE_RATE}


def main(argv: Optional[Sequence[str]] = None) -> int:
    opts = build_parser().parse_args(argv)
    setup_logging(opts.log_level)

    def body() -> None:
        result = run(opts, argv)
        line = (f"text MT ({result['updates']} updates): BLEU {result['text']['bleu']:.2f} on "
                f"{result['text']['num_sentences']} test sentences ({result['source_text']})")
        if "cascade" in result:
            line += f"; cascade through the target voice: ASR-BLEU {result['cascade']['bleu']:.2f}"
        print(line)

    return run_main(body, (OSError,))


if __name__ == "__main__":
    raise SystemExit(main())
