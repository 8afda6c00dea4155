"""Bad input end to end: the SimulEval speech->speech agent (real ``simuleval`` CLI) and
``scripts/evaluate.py`` on empty, silent, clipped, 8 kHz, 48 kHz, stereo and long wavs.

What each gives, and why:

* SimulEval agent (live input, any wav): every case is an utterance. The pipeline resamples
  8/48 kHz, averages stereo to mono, streams clipped and silent audio like any other, and an
  empty wav is finished at once with empty output (SimulEval skips it in the latency scores).
  So every case gets its line in ``instances.log`` and the run ends with status 0.
* ``scripts/evaluate.py`` (a test set of the 16 kHz corpus): its validators
  (``evaluation/testset.py`` with ``data/audio.py``) refuse an empty wav and a wav at another
  rate before any model runs, all problems at once, exit status 2, each message naming the wav
  list, its line and the wav: an empty utterance has no latency or quality to score, and a wav
  at another rate in a corpus test list means the list is not the corpus' (the corpus builder
  writes every wav at 16 kHz). This is the documented contract of ``evaluate.py`` (and
  ``tests/test_evaluate.py`` checks single cases). Silent, clipped, stereo (averaged to mono by
  ``read_wav``) and long wavs are valid and are evaluated.

The 10-minute stream is left to ``bench/long_stream_memory.py`` (SimulEval alone would take
minutes); the long wav here is 60 s, and a pipeline-level check bounds the memory of its
whole-utterance decode (one unit-decoder call over 15000 steps took +4.3 GB before the unit
decoder was run in blocks).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import soundfile as sf
import torch

from _fairseq_cli import REPO, corpus_dir, tail
from echostream_fairseq.data.audio import read_wav, resample

SIMULEVAL = str(Path(sys.executable).with_name("simuleval"))
SCORERS_USER_DIR = REPO / "echostream_fairseq" / "scoring" / "simuleval_scorers"
S2S_AGENT = "echostream_fairseq.agents.speech_to_speech.EchoStreamSpeechToSpeechAgent"
CASES = ("empty", "silent", "clipped", "8k", "48k", "stereo", "long")
REFUSED_BY_EVALUATE = {"empty": "empty audio (0 samples)",
                       "8k": "sample rate 8000 Hz, expected 16000 Hz",
                       "48k": "sample rate 48000 Hz, expected 16000 Hz"}
LONG_SECONDS = 60
GAP_SECONDS = 0.3
CHUNK_MS = 320
# A hang shows up as this timeout; the run itself takes well under a minute on 2 idle cores.
SIMULEVAL_TIMEOUT_S = 420


def _rate(wav: Path) -> int:
    return sf.info(str(wav)).samplerate


@pytest.fixture(scope="module")
def bad_wavs(tiny_corpus, tmp_path_factory) -> Dict[str, Path]:
    """The bad cases, made from the tiny corpus' test utterance (16 kHz mono)."""
    data = corpus_dir(tiny_corpus)
    source = Path((data / "simuleval" / "test" / "wav_list.txt").read_text().split()[0])
    samples, rate = read_wav(source)
    folder = tmp_path_factory.mktemp("bad_wavs")
    gap = np.zeros(int(GAP_SECONDS * rate), dtype=np.float32)
    repeats = math.ceil(LONG_SECONDS * rate / (len(samples) + len(gap)))
    audio = {
        "empty": (np.zeros(0, dtype=np.float32), rate),
        "silent": (np.zeros(rate, dtype=np.float32), rate),
        # 20x gain, hard-clipped at +-1 (most samples sit on the rails)
        "clipped": (np.clip(20.0 * samples, -1.0, 1.0), rate),
        "8k": (resample(samples, rate, 8000), 8000),
        "48k": (resample(samples, rate, 48000), 48000),
        "stereo": (np.stack([samples, 0.5 * samples], axis=1), rate),
        "long": (np.tile(np.concatenate([samples, gap]), repeats)[:LONG_SECONDS * rate], rate),
    }
    paths = {}
    for name in CASES:
        wav, wav_rate = audio[name]
        paths[name] = folder / f"{name}.wav"
        sf.write(str(paths[name]), wav, wav_rate)
    return paths


def _reference(data: Path) -> str:
    return (data / "simuleval" / "test" / "target.txt").read_text().splitlines()[0]


# ------------------------------------------------------------------------ SimulEval agent
def test_simuleval_speech_agent_gives_every_bad_case_an_instance(tiny_corpus, talkative_checkpoint,
                                                                 bad_wavs, tmp_path):
    data = corpus_dir(tiny_corpus)
    (tmp_path / "source.txt").write_text("".join(f"{bad_wavs[c]}\n" for c in CASES))
    (tmp_path / "target.txt").write_text(f"{_reference(data)}\n" * len(CASES))
    output = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    # Quality: SimulEval's text BLEU, cheap and meaningless on speech; ASR-BLEU (Whisper over the
    # ~3 minutes of speech the randomised model writes for the long wav) would take most of this
    # file's time budget, and tests/test_agents.py covers it.
    result = subprocess.run([
        SIMULEVAL, "--user-dir", str(SCORERS_USER_DIR), "--agent-class", S2S_AGENT,
        "--checkpoint", str(talkative_checkpoint), "--data-dir", str(data),
        "--source", str(tmp_path / "source.txt"), "--target", str(tmp_path / "target.txt"),
        "--source-segment-size", str(CHUNK_MS), "--output", str(output),
        "--quality-metrics", "BLEU", "--latency-metrics", "AL", "StartOffset", "EndOffset",
        "--computation-aware",
    ], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=SIMULEVAL_TIMEOUT_S,
        check=False)
    assert result.returncode == 0, tail(result.stdout + result.stderr)

    instances = [json.loads(line) for line in (output / "instances.log").read_text().splitlines()]
    assert [i["index"] for i in instances] == list(range(len(CASES)))
    by_case = dict(zip(CASES, instances))
    for case, instance in by_case.items():
        assert instance["source"] == str(bad_wavs[case])
        info = sf.info(str(bad_wavs[case]))
        # SimulEval measures the source at the wav's own rate
        assert instance["source_length"] == pytest.approx(1000.0 * info.frames / info.samplerate)
        assert len(instance["delays"]) == len(instance["durations"]) == len(instance["elapsed"])
        assert all(0 < d <= instance["source_length"] + 1e-6 for d in instance["delays"]), case
        if instance["delays"]:
            assert (output / "wavs" / f"{instance['index']}_pred.wav").is_file()
    empty = by_case["empty"]
    assert empty["delays"] == [] and empty["source_length"] == 0.0
    # the talkative model speaks for any input, at any rate or channel count. When it speaks
    # is left to tests/test_streaming_pipeline.py: even a model that never picks blank or
    # </s> may repeat one unit for a whole stream, which CTC merges into one.
    for case in ("clipped", "8k", "48k", "stereo", "long"):
        assert by_case[case]["delays"], f"{case}: no speech written"

    with open(output / "scores.tsv") as handle:
        header, values = (line.rstrip("\n").split("\t") for line in handle.readlines()[:2])
    scores = dict(zip(header, values))
    for name in ("AL", "AL_CA", "StartOffset", "EndOffset"):
        assert math.isfinite(float(scores[name])), scores


# ------------------------------------------------------------------------------ evaluate.py
def _evaluate_main():
    """``scripts/evaluate.py``'s ``main``, called in this process (no second torch import)."""
    from echostream_fairseq.cli.evaluate import main

    return main


def _test_set(data: Path, wavs: Dict[str, Path], cases, folder: Path):
    """A manifest of ``cases`` (each the corpus' test row under the case's id) and its wav list."""
    header, row = (data / "test_sampled.tsv").read_text().splitlines()[:2]
    fields = row.split("\t")
    folder.mkdir(parents=True, exist_ok=True)
    manifest, wav_list = folder / "bad.tsv", folder / "wav_list.txt"
    manifest.write_text("\n".join([header] + ["\t".join([case] + fields[1:]) for case in cases])
                        + "\n")
    wav_list.write_text("".join(f"{wavs[case]}\n" for case in cases))
    return manifest, wav_list


def test_evaluate_refuses_empty_and_other_rate_wavs_naming_list_line_and_file(
        tiny_corpus, tiny_checkpoint, bad_wavs, tmp_path, capsys):
    data = corpus_dir(tiny_corpus)
    manifest, wav_list = _test_set(data, bad_wavs, CASES, tmp_path)
    status = _evaluate_main()([
        "--checkpoint", str(tiny_checkpoint), "--manifest", str(manifest),
        "--data-dir", str(data), "--wav-list", str(wav_list), "--output-dir", str(tmp_path / "out"),
        "--chunk-ms", str(CHUNK_MS), "--no-speech", "--no-progress"])
    error = capsys.readouterr().err
    assert status == 2, error
    for case, reason in REFUSED_BY_EVALUATE.items():
        line = CASES.index(case) + 1
        assert f"{wav_list}:{line}: column 'wav': {bad_wavs[case]}: {reason}" in error, error
    for case in set(CASES) - set(REFUSED_BY_EVALUATE):
        assert str(bad_wavs[case]) not in error, error
    assert not (tmp_path / "out").exists()  # refused before any model ran


def test_evaluate_streams_silent_clipped_stereo_and_long_wavs(tiny_corpus, talkative_checkpoint,
                                                              bad_wavs, tmp_path, capsys):
    data = corpus_dir(tiny_corpus)
    accepted = [case for case in CASES if case not in REFUSED_BY_EVALUATE]
    manifest, wav_list = _test_set(data, bad_wavs, accepted, tmp_path)
    output = tmp_path / "out"
    # text only: ASR-BLEU of minutes of speech would dominate the run (test_evaluate scores it)
    status = _evaluate_main()([
        "--checkpoint", str(talkative_checkpoint), "--manifest", str(manifest),
        "--data-dir", str(data), "--wav-list", str(wav_list), "--output-dir", str(output),
        "--chunk-ms", str(CHUNK_MS), "--no-speech", "--no-progress"])
    assert status == 0, capsys.readouterr().err
    report = json.loads((output / "report.json").read_text())
    assert report["num_utterances"] == len(accepted)
    assert report["source_s"] == pytest.approx(1.0 + 2 * sf.info(str(bad_wavs["clipped"])).duration
                                               + LONG_SECONDS)
    for condition in ("offline", f"chunk_{CHUNK_MS}ms"):
        records = [json.loads(line) for line in
                   (output / condition / "utterances.jsonl").read_text().splitlines()]
        assert [r["id"] for r in records] == accepted
        by_case = {r["id"]: r for r in records}
        for case, record in by_case.items():
            duration_ms = 1000.0 * sf.info(str(bad_wavs[case])).duration
            assert record["source_ms"] == pytest.approx(duration_ms), case
            assert len(record["text"]["delays"]) == len(record["target_text"].split())
        assert by_case["long"]["target_text"], condition
    (streaming,) = report["results"]["streaming"]
    assert all(math.isfinite(v) for v in streaming["text"]["latency"].values()
               if v is not None), streaming["text"]["latency"]


# ------------------------------------------------------------------- memory of a long decode
def _status_mb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(field)


def test_whole_utterance_decode_of_the_long_wav_keeps_memory_bounded(tiny_corpus,
                                                                     talkative_checkpoint,
                                                                     bad_wavs):
    """evaluate.py's offline condition (and a final step that writes a lot) decodes all units in
    one ``finish``. With the MT cap at 1 subword per encoder frame, 60 s -> 1510 subwords ->
    15100 unit-decoder steps: in one call their (steps x steps) attention scores and masks took
    +4.3 GB of peak RSS; decoded in blocks (``streaming/units.py``) it is ~0.2 GB."""
    from echostream_fairseq.streaming import PipelineConfig, StreamingS2STPipeline

    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")  # reset the peak RSS (VmHWM) to the current RSS
    except OSError:
        pytest.skip("cannot reset the peak RSS here (/proc/self/clear_refs)")
    torch.set_num_threads(1)
    samples, rate = read_wav(bad_wavs["long"])
    pipe = StreamingS2STPipeline.from_checkpoint(
        str(talkative_checkpoint), str(corpus_dir(tiny_corpus)),
        PipelineConfig(segment_length=LONG_SECONDS * 25 + 2, max_len_a=1.0,
                       single_sentence=True))  # as evaluate.py's offline condition
    with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
        handle.write("5")
    before = _status_mb("VmRSS")
    out = pipe.finish(samples, rate)
    peak_growth = _status_mb("VmHWM") - before
    steps = len(pipe.target_tokens) * pipe.model.decoder.ctc_upsample_rate
    assert steps > 5000, "the talkative model writes to the MT length cap"
    assert out.units and out.speech.size
    assert peak_growth < 1024, f"peak RSS +{peak_growth:.0f} MB for {steps} unit steps"
