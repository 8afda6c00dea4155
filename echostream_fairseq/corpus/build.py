"""Build the German->English mini corpus in StreamSpeech's layout (``scripts/prepare_mini.py``).

Stages (each logs ``Stage N: ...`` and writes ``<data>/.done/NN_<name>.json``)::

    1 text           freedict pairs, cleaned, sampled, split 90/5/5  -> pairs.tsv
    2 source speech  espeak-ng German, voice/speed/pitch varied      -> wav/source/<id>.wav
    3 target speech  piper joe English                               -> wav/target/<id>.wav
    4 features       80-d Kaldi fbank + global CMVN                  -> fbank/<id>.npy, gcmvn.npz
    5 units          k-means log-mel units, de-duplicated            -> units/unit_model.npz
    6 vocabularies   sentencepiece + multitask folders               -> {src,tgt}_unigram<N>/
    7 manifests      manifests, YAMLs, SimulEval lists; validated    -> *_sampled*.tsv, *.yaml
    8 report         sizes, hours, units, times, ASR-BLEU ceiling    -> REPORT.md, report.json

Resuming: a stage whose marker matches its settings is skipped; once one stage runs, every later
stage runs too. Per-utterance stages reuse each wav/npy that exists and is valid, so an
interrupted build loses at most the utterances in flight.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import random
import resource
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
from tqdm import tqdm

from echostream_fairseq.corpus.ding import DING_PHRASE, DING_SENTENCE, load_ding_pairs
from echostream_fairseq.corpus.freedict import SentencePair, dedup_key, load_freedict_pairs
from echostream_fairseq.corpus.report import split_summary, unit_learnability, write_report
from echostream_fairseq.corpus.tts import PIPER_SETTINGS, SynthesisJob, synthesize_all
from echostream_fairseq.corpus.units import fit_unit_model
from echostream_fairseq.data import manifests as mf
from echostream_fairseq.data.audio import SAMPLE_RATE, read_wav, wav_duration
from echostream_fairseq.data.features import compute_gcmvn, extract_fbank_files
from echostream_fairseq.data.text import format_units, parse_units
from echostream_fairseq.data.units import LogMelExtractor, analysis_frames, load_unit_model
from echostream_fairseq.provenance import provenance
from echostream_fairseq.data.manifests import PIPER_PHONEMES
from echostream_fairseq.data.validate import (ManifestError, find_multitask_problems,
                                              find_problems)

logger = logging.getLogger(__name__)

__all__ = ["BuildConfig", "build_corpus", "build_test_only", "single_threaded_math",
           "split_pairs"]

SPLITS = ("train", "dev", "test")
PAIR_COLUMNS = ("id", "split", "de", "en", "origin")


# --unit-type: k-means of the target speech's log-mel or of Whisper tiny.en's encoder states
# (fitted here, spoken by the embedded vocoder), or the target voice's own phoneme ids of the
# English text (spoken by piper itself)
UNIT_TYPES = ("logmel", "whisper", "piper-phonemes")
# chosen by measurement (docs/corpus.md, "Which units"): the best resynthesis and the shortest,
# most predictable unit sequences
DEFAULT_UNIT_TYPE = "piper-phonemes"
# --extra-pairs sources -> the origin label of their pairs
EXTRA_PAIR_ORIGINS = {"ding": DING_SENTENCE, "ding-phrases": DING_PHRASE}


@dataclass(frozen=True)
class BuildConfig:
    """Settings of one corpus build (see ``main`` for their meaning)."""

    data_dir: Path
    max_pairs: Optional[int] = None
    extra_pairs: tuple[str, ...] = ()  # keys of EXTRA_PAIR_ORIGINS: more training pairs
    max_extra_pairs: Optional[int] = None
    unit_type: str = DEFAULT_UNIT_TYPE  # one of UNIT_TYPES
    seed: int = 1
    num_units: int = 500
    jobs: int = 2
    vocab_size: Optional[int] = None
    kmeans_utts: int = 500
    skip_asr: bool = False
    first_stage: int = 1
    last_stage: int = 8


class _Layout:
    """Paths inside the data dir (all absolute)."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir).resolve()
        self.pairs = self.root / "pairs.tsv"
        self.units_dir = self.root / "units"
        self.units_tsv = self.units_dir / "units.tsv"
        self.unit_model = self.units_dir / "unit_model.npz"
        self.gcmvn = self.root / "gcmvn.npz"
        self.markers = self.root / ".done"

    def src_wav(self, utt_id: str) -> Path:
        return self.root / "wav" / "source" / f"{utt_id}.wav"

    def tgt_wav(self, utt_id: str) -> Path:
        return self.root / "wav" / "target" / f"{utt_id}.wav"

    def fbank(self, utt_id: str) -> Path:
        return self.root / "fbank" / f"{utt_id}.npy"

    def vocab(self, prefix: str) -> mf.SpmVocab:
        """The one ``<prefix><N>`` folder stage 6 left."""
        folders = [p for p in self.root.glob(f"{prefix}*")
                   if p.is_dir() and p.name[len(prefix):].isdigit()]
        if len(folders) != 1:
            raise FileNotFoundError(f"expected one {self.root}/{prefix}<N>/, found {folders}")
        size = int(folders[0].name[len(prefix):])
        return mf.SpmVocab(folders[0] / f"spm_unigram{size}.model",
                           folders[0] / f"spm_unigram{size}.txt", size)


def split_pairs(ids: Sequence[str], seed: int, max_pairs: Optional[int] = None
                ) -> dict[str, list[str]]:
    """Sample and split ids deterministically: a seeded shuffle, then 5% test, 5% dev, rest train.

    Dev and test get at least one pair each; needs at least 3 ids after sampling.
    """
    order = sorted(ids)
    random.Random(seed).shuffle(order)
    if max_pairs is not None:
        order = order[:max_pairs]
    if len(order) < 3:
        raise ValueError(f"need at least 3 pairs to split, have {len(order)}")
    n_held = max(1, round(0.05 * len(order)))
    return {"test": order[:n_held], "dev": order[n_held:2 * n_held],
            "train": order[2 * n_held:]}


def _read_pairs(layout: _Layout) -> list[dict[str, str]]:
    return mf.read_tsv(layout.pairs)


def _ids(pairs: Sequence[dict[str, str]], split: Optional[str] = None) -> list[str]:
    return [p["id"] for p in pairs if split is None or p["split"] == split]


def extra_training_pairs(sources: Sequence[str], taken: Sequence[SentencePair], seed: int,
                         limit: Optional[int] = None) -> list[SentencePair]:
    """Ding pairs of the chosen ``sources`` whose German and English sides are both unseen in
    ``taken`` (every FreeDict pair, so dev and test never meet them), a seeded sample when
    ``limit`` is given, in id order."""
    origins = {EXTRA_PAIR_ORIGINS[source] for source in sources}
    seen_de = {dedup_key(p.de) for p in taken}
    seen_en = {dedup_key(p.en) for p in taken}
    fresh = sorted((p for p in load_ding_pairs() if p.origin in origins
                    and dedup_key(p.de) not in seen_de and dedup_key(p.en) not in seen_en),
                   key=lambda p: p.id)
    if limit is not None and limit < len(fresh):
        fresh = sorted(random.Random(seed).sample(fresh, limit), key=lambda p: p.id)
    return fresh


def _stage_text(cfg: BuildConfig, layout: _Layout) -> dict[str, Any]:
    freedict = load_freedict_pairs()
    pairs = {p.id: p for p in freedict}
    # the split is of the FreeDict pairs alone, as before extra pairs existed: same dev and test
    splits = split_pairs(list(pairs), cfg.seed, cfg.max_pairs)
    extra = extra_training_pairs(cfg.extra_pairs, freedict, cfg.seed, cfg.max_extra_pairs)
    pairs.update((p.id, p) for p in extra)
    splits["train"] = splits["train"] + [p.id for p in extra if p.id not in splits["train"]]
    rows = [(i, split, pairs[i].de, pairs[i].en, pairs[i].origin)
            for split in SPLITS for i in splits[split]]
    mf.write_tsv(layout.pairs, PAIR_COLUMNS, rows)
    logger.info("%d distinct FreeDict pairs available, %d extra training pairs; kept %s",
                len(freedict), len(extra), {s: len(v) for s, v in splits.items()})
    return {"available": len(freedict), "extra": len(extra), "made": len(rows),
            **{s: len(splits[s]) for s in SPLITS}}


def _stage_speech(cfg: BuildConfig, layout: _Layout, side: str) -> dict[str, Any]:
    pairs = _read_pairs(layout)
    if side == "source":
        jobs = [SynthesisJob(p["id"], p["de"], layout.src_wav(p["id"])) for p in pairs]
        stats = synthesize_all(jobs, "espeak", cfg.jobs, desc="espeak-ng (de)")
    else:
        jobs = [SynthesisJob(p["id"], p["en"], layout.tgt_wav(p["id"])) for p in pairs
                if p["split"] in _target_speech_splits(cfg)]
        _discard_wavs_of_other_settings(layout.tgt_wav("x").parent, PIPER_SETTINGS)
        stats = synthesize_all(jobs, "piper", cfg.jobs, desc="piper (en)")
    return asdict(stats)


def _target_speech_splits(cfg: BuildConfig) -> tuple[str, ...]:
    """Splits whose English speech is synthesised: phoneme units come from the English text, so
    their training pairs need none (piper is 90 % of a build's CPU time); dev and test keep theirs
    for the ceilings and the vocoder studies. K-means units are made from every pair's speech."""
    return ("dev", "test") if cfg.unit_type == "piper-phonemes" else SPLITS


def _discard_wavs_of_other_settings(wav_dir: Path, settings: dict[str, Any]) -> None:
    """Make ``wav_dir`` hold only wavs synthesised with ``settings``.

    Existing wavs are reused (resumable builds), so a folder made with other synthesis settings
    (e.g. the noisy piper of builds before 2026-12) is emptied first; the stamp is written before
    any new wav, so an interrupted rebuild resumes instead of starting over.
    """
    stamp = wav_dir / "synthesis.json"
    wanted = json.dumps(settings, sort_keys=True)
    if stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == wanted:
        return
    stale = sorted(wav_dir.glob("*.wav")) if wav_dir.is_dir() else []
    if stale:
        logger.info("%s: %d wavs made with other synthesis settings, removed", wav_dir, len(stale))
    for wav in stale:
        wav.unlink()
    wav_dir.mkdir(parents=True, exist_ok=True)
    tmp = stamp.with_name(stamp.name + ".tmp")
    tmp.write_text(wanted + "\n", encoding="utf-8")
    tmp.replace(stamp)


def _stage_features(cfg: BuildConfig, layout: _Layout) -> dict[str, Any]:
    pairs = _read_pairs(layout)
    stats = extract_fbank_files([(layout.src_wav(i), layout.fbank(i)) for i in _ids(pairs)],
                                workers=cfg.jobs)
    mean, std = compute_gcmvn(layout.fbank(i) for i in _ids(pairs, "train"))
    tmp = layout.gcmvn.with_name("gcmvn.tmp.npz")
    np.savez(tmp, mean=mean, std=std)
    tmp.replace(layout.gcmvn)
    return asdict(stats)


def _frames_of(extractor: LogMelExtractor, wav: Path, features: str
               ) -> tuple[np.ndarray, np.ndarray]:
    """``(logmel, analysis frames)`` of a target wav (the same array for log-mel units)."""
    samples, _ = read_wav(wav, SAMPLE_RATE)
    logmel = extractor(samples)
    return logmel, analysis_frames(features, samples, logmel)


def _stage_phoneme_units(cfg: BuildConfig, layout: _Layout) -> dict[str, Any]:
    from echostream_fairseq.corpus.tts import PiperSynthesizer
    from echostream_fairseq.vocoder.piper_phonemes import PiperPhonemeVocoder, phoneme_units

    pairs = _read_pairs(layout)
    voice = PiperSynthesizer()
    num_units = PiperPhonemeVocoder(voice).num_units
    rows = [(p["id"], format_units(phoneme_units(p["en"], voice)))
            for p in tqdm(pairs, desc="phoneme units", unit="utt")]
    mf.write_tsv(layout.units_tsv, ("id", "units"), rows)
    layout.unit_model.unlink(missing_ok=True)  # a log-mel build's, which would mislead
    (layout.units_dir / "README").write_text(
        f"Unit vocabulary K = {num_units}: the piper joe voice's phoneme ids of the English text "
        f"(vocoder: piper itself). Train with --target-is-code --target-code-size {num_units}.\n",
        encoding="utf-8")
    return {"made": len(rows), "num_units": num_units, "unit_type": cfg.unit_type}


def _stage_units(cfg: BuildConfig, layout: _Layout) -> dict[str, Any]:
    if cfg.unit_type == "piper-phonemes":
        return _stage_phoneme_units(cfg, layout)
    pairs = _read_pairs(layout)
    extractor = LogMelExtractor()
    features = cfg.unit_type  # the k-means unit types are named by their frames (UNIT_FEATURES)
    train = _ids(pairs, "train")
    fit_ids = sorted(random.Random(cfg.seed).sample(train, min(cfg.kmeans_utts, len(train))))
    fitting = [_frames_of(extractor, layout.tgt_wav(i), features) for i in
               tqdm(fit_ids, desc=f"{features} (k-means sample)", unit="utt")]
    model = fit_unit_model([logmel for logmel, _ in fitting], cfg.num_units, seed=cfg.seed,
                           settings=extractor.settings,
                           analysis=[frames for _, frames in fitting], features=features)
    model.save(layout.unit_model)
    del fitting

    def encode(utt_id: str) -> tuple[str, str]:
        return utt_id, format_units(model.encode(
            _frames_of(extractor, layout.tgt_wav(utt_id), features)[1]))

    # torch's STFT and numpy's matmul release the GIL, so threads share the cores.
    with ThreadPoolExecutor(max_workers=max(1, cfg.jobs)) as pool:
        rows = list(tqdm(pool.map(encode, _ids(pairs)), total=len(pairs), desc="units",
                         unit="utt"))
    mf.write_tsv(layout.units_tsv, ("id", "units"), rows)
    (layout.units_dir / "README").write_text(
        f"Unit vocabulary K = {model.num_units}: train with --target-is-code "
        f"--target-code-size {model.num_units}.\nunit_model.npz: k-means centroids, per-unit "
        "mean log-mel and mean run length (20 ms frames), mel settings (mel_* keys).\n",
        encoding="utf-8")
    return {"made": len(rows), "num_units": model.num_units, "unit_type": cfg.unit_type,
            "requested": cfg.num_units,
            "fit_utterances": len(fit_ids), "fit_frames": int(model.unit_counts.sum())}


def _stage_vocab(cfg: BuildConfig, layout: _Layout) -> dict[str, Any]:
    pairs = _read_pairs(layout)
    train = [p for p in pairs if p["split"] == "train"]
    vocab_size = cfg.vocab_size or mf.choose_vocab_size(len(train))
    out: dict[str, Any] = {"requested": vocab_size, "made": 2}
    for prefix, column in (("src_unigram", "de"), ("tgt_unigram", "en")):
        vocab = mf.train_spm_vocab([p[column] for p in train], layout.root / prefix, vocab_size,
                                   num_threads=cfg.jobs)
        for split, name in mf.SPLIT_NAMES.items():
            mf.write_multitask_split(vocab, name,
                                     [(p["id"], p[column]) for p in pairs if p["split"] == split])
        out[prefix] = vocab.size
    return out


def _manifest_rows(layout: _Layout, pairs: Sequence[dict[str, str]],
                   units: dict[str, str]) -> list[tuple[Any, ...]]:
    rows = []
    for p in pairs:
        fbank = layout.fbank(p["id"])
        n_frames = np.load(fbank, mmap_mode="r").shape[0]
        utt_units = units[p["id"]]
        rows.append((p["id"], str(fbank), n_frames, p["de"], p["en"], utt_units,
                     len(utt_units.split())))
    return rows


def _stage_manifests(cfg: BuildConfig, layout: _Layout) -> dict[str, Any]:
    pairs = _read_pairs(layout)
    units = {r["id"]: r["units"] for r in mf.read_tsv(layout.units_tsv)}
    phonemes = cfg.unit_type == "piper-phonemes"
    num_units = (_read_marker(layout, 5, "units") or {}).get("stats", {}).get("num_units") \
        if phonemes else load_unit_model(layout.unit_model).num_units
    source, target = layout.vocab("src_unigram"), layout.vocab("tgt_unigram")
    # first: the validation below reads the unit type from it
    mf.write_config_gcmvn(layout.root / mf.GCMVN_YAML, layout.gcmvn,
                          {"type": PIPER_PHONEMES} if phonemes else None)
    problems = []
    for split, name in mf.SPLIT_NAMES.items():
        split_pairs_ = [p for p in pairs if p["split"] == split]
        manifest = layout.root / f"{name}.tsv"
        mf.write_tsv(manifest, mf.MANIFEST_COLUMNS, _manifest_rows(layout, split_pairs_, units))
        problems += find_problems(manifest, num_units)
        for vocab in (source, target):
            problems += find_multitask_problems(vocab.model_path.parent / f"{name}.tsv",
                                                vocab.dict_path, _ids(split_pairs_))
        if split != "train":
            mf.write_simuleval_lists(layout.root / "simuleval" / split,
                                     [layout.src_wav(p["id"]) for p in split_pairs_],
                                     [p["en"] for p in split_pairs_])
    mf.write_multitask_yaml(layout.root / mf.MULTITASK_YAML, source, target)
    if problems:
        raise ManifestError(problems)
    return {"made": len(pairs), "num_units": num_units}


def _stage_report(cfg: BuildConfig, layout: _Layout) -> dict[str, Any]:
    pairs = _read_pairs(layout)
    units = {r["id"]: parse_units(r["units"]) for r in mf.read_tsv(layout.units_tsv)}
    durations = {s: [(wav_duration(layout.src_wav(i)),
                      wav_duration(layout.tgt_wav(i)) if s in _target_speech_splits(cfg) else None,
                      len(units[i])) for i in _ids(pairs, s)] for s in SPLITS}
    markers = {n: _read_marker(layout, n, name) or {} for n, name, _ in STAGES if n < 8}
    train = _ids(pairs, "train")
    # the MT decoder's targets: the pieces the multitask files hold
    pieces = {r["id"]: len(r["tgt_text"].split()) for r in mf.read_tsv(
        layout.vocab("tgt_unigram").model_path.parent / f"{mf.SPLIT_NAMES['train']}.tsv")}
    report: dict[str, Any] = {
        "data_dir": str(layout.root), "seed": cfg.seed, "max_pairs": cfg.max_pairs,
        "split_names": dict(mf.SPLIT_NAMES), "splits": split_summary(durations),
        "origins": {split: dict(sorted(Counter(p["origin"] for p in pairs
                                               if p["split"] == split).items()))
                    for split in SPLITS},
        "units": markers[5].get("stats", {}),
        "learnability": unit_learnability([units[i] for i in train],
                                          [pieces[i] for i in train]),
        "vocab": {"source": layout.vocab("src_unigram").size,
                  "target": layout.vocab("tgt_unigram").size},
        "stages": [{"stage": n, "name": name, "seconds": m.get("seconds", 0.0),
                    "cpu_seconds": m.get("cpu_seconds", 0.0),
                    "made": m.get("stats", {}).get("made"),
                    "reused": m.get("stats", {}).get("reused")}
                   for (n, name, _), m in zip(STAGES, markers.values())],
        "provenance": provenance(configs={"build": {key: str(value) if isinstance(value, Path)
                                                    else value
                                                    for key, value in asdict(cfg).items()}}),
    }
    examples = None
    if not cfg.skip_asr:
        from echostream_fairseq.scoring.asr_bleu import asr_bleu, load_whisper_tiny_en

        start = time.perf_counter()
        test = [p for p in pairs if p["split"] == "test"]
        result = asr_bleu(load_whisper_tiny_en(workers=max(1, cfg.jobs)),
                          [layout.tgt_wav(p["id"]) for p in test], [p["en"] for p in test],
                          progress=True)
        report["asr"] = {**result.as_dict(), "seconds": time.perf_counter() - start}
        examples = list(zip(result.hypotheses, result.references))[:5]
    print(write_report(layout.root, report, examples))
    return {"made": 1, "asr": report.get("asr")}


STAGES: list[tuple[int, str, Callable[[BuildConfig, _Layout], dict[str, Any]]]] = [
    (1, "text", _stage_text),
    (2, "source speech", lambda cfg, lay: _stage_speech(cfg, lay, "source")),
    (3, "target speech", lambda cfg, lay: _stage_speech(cfg, lay, "target")),
    (4, "features", _stage_features),
    (5, "units", _stage_units),
    (6, "vocabularies", _stage_vocab),
    (7, "manifests", _stage_manifests),
    (8, "report", _stage_report),
]


def _fingerprint(cfg: BuildConfig, layout: _Layout, stage: int) -> str:
    """Digest of what a stage's output depends on (its settings and the pair list)."""
    relevant: dict[str, Any] = {"stage": stage}
    if stage == 1:
        relevant.update(max_pairs=cfg.max_pairs, seed=cfg.seed)
        if cfg.extra_pairs:  # absent otherwise, so that earlier builds stay valid
            relevant.update(extra_pairs=list(cfg.extra_pairs),
                            max_extra_pairs=cfg.max_extra_pairs)
    else:
        relevant["pairs"] = hashlib.sha1(layout.pairs.read_bytes()).hexdigest()
    if stage == 3:
        relevant.update(synthesis=PIPER_SETTINGS)
        if _target_speech_splits(cfg) != SPLITS:  # absent otherwise: earlier builds stay valid
            relevant.update(target_splits=list(_target_speech_splits(cfg)))
    if stage == 5:
        relevant.update(num_units=cfg.num_units, kmeans_utts=cfg.kmeans_utts, seed=cfg.seed)
        if cfg.unit_type != "logmel":  # absent otherwise, so that earlier builds stay valid
            relevant.update(unit_type=cfg.unit_type)
    if stage == 6:
        relevant.update(vocab_size=cfg.vocab_size)
    if stage >= 7:  # YAMLs and manifests hold absolute paths
        relevant.update(root=str(layout.root), skip_asr=cfg.skip_asr and stage == 8)
    return hashlib.sha1(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


def built_unit_type(data_dir: Path) -> Optional[str]:
    """The unit type of the corpus already built in ``data_dir`` (None: no units yet); builds
    from before ``--unit-type`` existed have log-mel units."""
    marker = _read_marker(_Layout(data_dir), 5, "units")
    return None if marker is None else marker.get("stats", {}).get("unit_type", "logmel")


def _marker_path(layout: _Layout, stage: int, name: str) -> Path:
    return layout.markers / f"{stage:02d}_{name.replace(' ', '_')}.json"


def _read_marker(layout: _Layout, stage: int, name: str) -> Optional[dict[str, Any]]:
    path = _marker_path(layout, stage, name)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        logger.warning("ignoring unreadable marker %s", path)
        return None


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (pool workers, espeak-ng)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@contextlib.contextmanager
def single_threaded_math() -> Iterator[None]:
    """Run torch, BLAS and OpenMP single-threaded inside the block, then restore them.

    The builder parallelises over utterances itself. Measured on a busy 2-core machine, a
    2-thread torch MelSpectrogram took 60 ms an utterance against 1.1 ms single-threaded, and
    MiniBatchKMeans (K=500, 30k frames) 57 s against 4 s: OpenMP threads spin-waiting on
    cores they share with other work.
    """
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(previous)


def build_corpus(cfg: BuildConfig) -> dict[int, dict[str, Any]]:
    """Run (or resume) every stage; returns stage number -> ``{ran, seconds, stats}``."""
    with single_threaded_math():
        return _build_stages(cfg)


def _build_stages(cfg: BuildConfig) -> dict[int, dict[str, Any]]:
    layout = _Layout(cfg.data_dir)
    layout.markers.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict[str, Any]] = {}
    cascade = False
    for number, name, run in STAGES:
        if not cfg.first_stage <= number <= cfg.last_stage:
            continue
        marker = _read_marker(layout, number, name)
        fingerprint = _fingerprint(cfg, layout, number)
        if not cascade and marker is not None and marker.get("fingerprint") == fingerprint:
            logger.info("Stage %d: %s: done already, skipped", number, name)
            results[number] = {"ran": False, **marker}
            continue
        logger.info("Stage %d: %s", number, name)
        cascade = True
        _marker_path(layout, number, name).unlink(missing_ok=True)
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        stats = run(cfg, layout)
        seconds = time.perf_counter() - start
        # CPU seconds say what a stage costs whatever else the machine is doing.
        record = {"fingerprint": _fingerprint(cfg, layout, number), "seconds": seconds,
                  "cpu_seconds": _cpu_seconds() - cpu_start, "stats": stats}
        _marker_path(layout, number, name).write_text(json.dumps(record, indent=2) + "\n",
                                                      encoding="utf-8")
        logger.info("Stage %d: %s: finished in %.1f s %s", number, name, seconds,
                    {k: v for k, v in stats.items() if k != "asr"})
        results[number] = {"ran": True, **record}
    return results


def build_test_only(data_dir: Path, count: int, seed: int = 1, jobs: int = 2) -> Path:
    """Only the first ``count`` test sentences of the full corpus (``seed``'s split, as
    :func:`build_corpus` makes it), as a folder an evaluation streams: their German speech (the
    builder's espeak-ng voices, so the wavs equal the full build's), ``test_sampled.tsv`` naming
    the wavs, with the piper phoneme units of the English text as ground truth, and a
    ``config_gcmvn.yaml`` naming only the phoneme vocoder. What ``make demo`` streams a shipped
    model on (it carries its own dictionaries and CMVN); returns the manifest's path.
    """
    from echostream_fairseq.data.audio import wav_num_samples
    from echostream_fairseq.vocoder.piper_phonemes import phoneme_units

    layout = _Layout(data_dir)
    freedict = {p.id: p for p in load_freedict_pairs()}
    test = [freedict[i] for i in split_pairs(list(freedict), seed)["test"][:count]]
    synthesize_all([SynthesisJob(p.id, p.de, layout.src_wav(p.id)) for p in test], "espeak",
                   jobs, desc="espeak-ng (de)")
    rows = []
    for pair in test:
        units = phoneme_units(pair.en)
        rows.append((pair.id, str(layout.src_wav(pair.id)),
                     wav_num_samples(layout.src_wav(pair.id), SAMPLE_RATE)[0], pair.de, pair.en,
                     format_units(units), len(units)))
    mf.write_yaml(layout.root / mf.GCMVN_YAML, {"vocoder": {"type": PIPER_PHONEMES}})
    manifest = layout.root / f"{mf.SPLIT_NAMES['test']}.tsv"
    mf.write_tsv(manifest, mf.MANIFEST_COLUMNS, rows)
    problems = find_problems(manifest)
    if problems:
        raise ManifestError(problems)
    logger.info("%d test sentences of seed %d in %s", len(rows), seed, manifest)
    return manifest
