"""scripts/evaluate.py and echostream_fairseq.evaluation: real runs on the tiny corpus, latency
numbers checked by hand, bad input, and the README results table."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from _fairseq_cli import REPO, corpus_dir, load_script, tail
from test_streaming_pipeline import (
    WHOLE_UTTERANCE_SEGMENT,
    stream,
)
from echostream_fairseq.data.audio import read_wav
from echostream_fairseq.data.validate import ManifestError
from echostream_fairseq.evaluation.report import results_table
from echostream_fairseq.scoring.asr_bleu import score_texts
from echostream_fairseq.evaluation.streaming_eval import (
    SPEECH_LATENCY_METRICS,
    TEXT_LATENCY_METRICS,
    StepRecord,
    UtteranceRun,
    latency_scores,
    speech_instance,
    text_instance,
)
from echostream_fairseq.evaluation.testset import TestUtterance, load_test_set

EVALUATE, RESULTS_TABLE, EXAMPLES = "evaluate", "results_table", "examples"
CHUNKS = (320, 640)


_script = load_script


def _run(script: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``scripts/<script>.py`` in a subprocess: the seed's command line, as a user runs it."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, str(REPO / "scripts" / f"{script}.py"), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


@pytest.fixture(scope="module")
def checkpoint(talkative_checkpoint) -> Path:
    return talkative_checkpoint


@pytest.fixture(scope="module")
def two_utterance_set(tiny_corpus, tmp_path_factory) -> tuple[Path, Path]:
    """The tiny corpus' test and dev rows in one manifest, with their wav list (``--wav-list``)."""
    data = corpus_dir(tiny_corpus)
    folder = tmp_path_factory.mktemp("testset")
    rows = [line for name in ("test_sampled.tsv", "dev_sampled.units.tsv")
            for line in (data / name).read_text().splitlines()[1:]]
    header = (data / "test_sampled.tsv").read_text().splitlines()[0]
    (folder / "two.tsv").write_text("\n".join([header, *rows]) + "\n")
    wavs = [line for split in ("test", "dev")
            for line in (data / "simuleval" / split / "wav_list.txt").read_text().split()]
    (folder / "wav_list.txt").write_text("\n".join(wavs) + "\n")
    return folder / "two.tsv", folder / "wav_list.txt"


@pytest.fixture(scope="module")
def evaluation(tiny_corpus, checkpoint, two_utterance_set, tmp_path_factory) -> Path:
    """Output folder of one real evaluate.py run (2 utterances, 2 chunk sizes + offline)."""
    manifest, wav_list = two_utterance_set
    output = tmp_path_factory.mktemp("eval") / "out"
    result = _run(EVALUATE, "--config", str(REPO / "configs" / "train" / "echostream_mini.yaml"),
                  "--checkpoint", str(checkpoint), "--test-manifest", str(manifest),
                  "--data-dir", str(corpus_dir(tiny_corpus)), "--wav-list", str(wav_list),
                  "--output-dir", str(output),
                  "--chunk-sizes", ",".join(map(str, CHUNKS)), "--save-wavs", "1",
                  "--num-threads", "1", "--joined-speech-asr")
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    return output


def _report(output: Path) -> dict:
    return json.loads((output / "report.json").read_text())


def _utterances(output: Path, condition: str) -> list:
    return [json.loads(line) for line in (output / condition / "utterances.jsonl").read_text()
            .splitlines()]


# --------------------------------------------------------------------------- the real run
def test_report_has_every_condition_with_finite_latencies(evaluation):
    report = _report(evaluation)
    assert report["num_utterances"] == 2 and report["settings"]["chunk_sizes_ms"] == list(CHUNKS)
    assert report["settings"]["config"]["arch"] == "echostream_mini"
    assert report["machine"]["num_threads"] == 1 and report["wall_s"] > 0
    streaming = report["results"]["streaming"]
    assert [c["chunk_ms"] for c in streaming] == list(CHUNKS)
    # the agents' rule: chunk / 40 ms encoder frames
    assert [c["segment_frames"] for c in streaming] == [8, 16]
    for condition in streaming:
        for output, metrics in (("text", TEXT_LATENCY_METRICS), ("speech", SPEECH_LATENCY_METRICS)):
            latency = condition[output]["latency"]
            assert set(latency) == {m + s for m in metrics for s in ("", "_CA")}
            assert all(math.isfinite(v) for v in latency.values()), latency
            # computation-aware timestamps add the measured (positive) compute time
            assert latency["AL_CA"] > latency["AL"], latency
            assert latency["StartOffset_CA"] > latency["StartOffset"], latency
        assert 0.0 <= condition["speech"]["asr_bleu"] <= 100.0
        assert 0.0 <= condition["text"]["bleu"] <= 100.0
        assert 0.0 <= condition["text"]["bleu_vs_offline"] <= 100.0
        assert condition["asr"]["wer"] >= 0.0 and condition["asr"]["cer"] >= 0.0
        assert condition["compute"]["rtf"] > 0.0 and condition["compute"]["compute_s"] > 0.0
    offline = report["results"]["offline"]
    assert offline["chunk_ms"] is None and "latency" not in offline["text"]
    assert offline["compute"]["rtf"] > 0.0 and offline["speech"]["output_s"] > 0.0


def test_joined_speech_is_scored_from_the_logged_transcripts(evaluation):
    """--joined-speech-asr: each streamed output is also transcribed with its pieces joined;
    the score is the BLEU of those logged transcripts; offline has one piece and no such score."""
    report = _report(evaluation)
    for condition in report["results"]["streaming"]:
        records = _utterances(evaluation, condition["name"])
        joined = [r["speech"]["transcript_joined"] for r in records]
        expected = score_texts(joined, [r["reference"] for r in records])
        assert condition["speech"]["asr_bleu_joined"] == pytest.approx(expected.bleu)
        assert condition["speech"]["num_empty_joined"] == sum(not t for t in joined)
        assert all(r["speech"]["durations"] for r in records), "the talkative model speaks"
    assert "asr_bleu_joined" not in report["results"]["offline"]["speech"]
    assert "ASR-BLEU joined" in results_table([report])


def test_utterance_logs_hold_one_delay_per_word_and_per_speech_segment(evaluation):
    for chunk in CHUNKS:
        for record in _utterances(evaluation, f"chunk_{chunk}ms"):
            words = record["target_text"].split()
            assert len(record["text"]["delays"]) == len(record["text"]["elapsed"]) == len(words)
            speech = record["speech"]
            assert len(speech["delays"]) == len(speech["elapsed"]) == len(speech["durations"])
            assert all(e > d for d, e in zip(speech["delays"], speech["elapsed"]))
            # delays are source milliseconds consumed: chunk multiples, the last one the source
            assert all(d % chunk == 0 or d == record["source_ms"] for d in speech["delays"])
            assert max(speech["delays"] + record["text"]["delays"]) <= record["source_ms"]


def test_offline_text_equals_streaming_with_one_whole_utterance_segment(evaluation, checkpoint,
                                                                        tiny_corpus):
    from echostream_fairseq.streaming import PipelineConfig, StreamingS2STPipeline

    whole = StreamingS2STPipeline.from_checkpoint(
        str(checkpoint), str(corpus_dir(tiny_corpus)),
        PipelineConfig(segment_length=WHOLE_UTTERANCE_SEGMENT, speech=False))
    records = _utterances(evaluation, "offline")
    assert len(records) == 2
    for record in records:
        samples, rate = read_wav(record["wav"])
        steps, last = stream(whole, samples, rate, rate * 320 // 1000)
        outputs = steps + [last]
        assert record["target_text"], "the randomised model should write something"
        assert record["target_text"] == " ".join(o.target_text for o in outputs if o.target_text)
        assert record["asr_text"] == " ".join(o.asr_text for o in outputs if o.asr_text)
    streamed = _utterances(evaluation, f"chunk_{CHUNKS[0]}ms")
    assert [r["offline_text"] for r in streamed] == [r["target_text"] for r in records]


def test_markdown_plot_and_wavs_come_from_the_report(evaluation):
    report = _report(evaluation)
    markdown = (evaluation / "report.md").read_text()
    assert results_table([report]) in markdown
    first = report["results"]["streaming"][0]
    assert f"| {CHUNKS[0]} | {first['speech']['asr_bleu']:.2f} |" in markdown
    assert f"{first['speech']['latency']['AL']:.0f} | {first['speech']['latency']['AL_CA']:.0f}" \
        in markdown
    png = evaluation / "latency_quality.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    for condition in [f"chunk_{c}ms" for c in CHUNKS] + ["offline"]:
        wavs = evaluation / condition / "wavs"
        assert sorted(p.name for p in wavs.iterdir()) == ["0_pred.wav", "0_ref.txt"]
        assert (wavs / "0_ref.txt").read_text().strip() == _utterances(evaluation, condition)[0][
            "reference"]


def test_results_table_script_renders_several_reports(evaluation, tmp_path, capsys):
    other = json.loads((evaluation / "report.json").read_text())
    other["label"] = "second-model"
    (tmp_path / "other.json").write_text(json.dumps(other))
    main = _script(RESULTS_TABLE).main
    assert main([str(evaluation / "report.json"), str(tmp_path / "other.json"),
                 "--output", str(tmp_path / "table.md")]) == 0
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| second-model |")]
    assert len(rows) == 2 * (len(CHUNKS) + 1)  # quality and latency table, 3 conditions each
    assert printed == (tmp_path / "table.md").read_text()
    assert printed == results_table([_report(evaluation), other])
    assert main([str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err


def test_results_table_script_adds_ceilings_and_rewrites_only_the_readme_block(evaluation,
                                                                               tmp_path, capsys):
    score = {"bleu": 71.66, "wer": 17.7, "num_sentences": 504, "num_empty": 0,
             "bleu_signature": "nrefs:1"}
    (tmp_path / "corpus.json").write_text(json.dumps(
        {"splits": {}, "asr": dict(score, bleu=90.27, wer=5.43)}))
    (tmp_path / "vocoder.json").write_text(json.dumps(
        {"sentences": 100, "ceiling_piper": dict(score, bleu=91.1, num_sentences=100),
         "variants": {"default": dict(score, num_sentences=100),
                      "default_stream8": dict(score, bleu=70.2, num_sentences=100)}}))
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:begin -->\nold table\n<!-- results:end -->\noutro\n")
    main = _script(RESULTS_TABLE).main
    assert main([str(evaluation / "report.json"), "--ceilings", str(tmp_path / "corpus.json"),
                 str(tmp_path / "vocoder.json"), "--readme", str(readme)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(results_table([_report(evaluation)]))
    ceilings = [line for line in printed.splitlines() if "`" + str(tmp_path) in line]
    assert [line.split(" | ")[1:4] for line in ceilings] == [
        ["504", "90.27", "5.4"], ["100", "91.10", "17.7"], ["100", "71.66", "17.7"],
        ["100", "70.20", "17.7"]]
    assert "streamed 8 units" in ceilings[3]
    text = readme.read_text()
    assert text == f"intro\n<!-- results:begin -->\n{printed}<!-- results:end -->\noutro\n"
    # a second run replaces the block instead of adding another
    assert main([str(evaluation / "report.json"), "--readme", str(readme)]) == 0
    assert "old table" not in readme.read_text() and "Ceilings" not in readme.read_text()
    readme.write_text("no markers\n")
    assert main([str(evaluation / "report.json"), "--readme", str(readme)]) == 2
    assert "results:begin" in capsys.readouterr().err and readme.read_text() == "no markers\n"
    assert main([str(evaluation / "report.json"), "--ceilings",
                 str(evaluation / "report.json")]) == 2
    assert "neither a corpus report.json" in capsys.readouterr().err


def test_examples_page_is_generated_from_the_utterance_logs(evaluation, tmp_path, capsys):
    page_path = tmp_path / "examples.md"
    assert _script(EXAMPLES).main([str(evaluation), "--condition", "chunk_320ms",
                                   "--max-utterances", "1",
                                   "--output", str(page_path)]) == 0
    page = page_path.read_text()
    record = _utterances(evaluation, "chunk_320ms")[0]
    offline = _utterances(evaluation, "offline")[0]
    assert page.count("\n## ") == 1 and record["id"] in page
    for text in (record["source_text"], record["reference"], record["target_text"],
                 offline["target_text"]):
        assert text and text.replace("|", "\\|") in page
    assert record["st_ctc_text"] is not None and "ST-CTC" in page
    assert _script(EXAMPLES).main([str(evaluation), "--condition", "chunk_999ms"]) == 2
    assert "chunk_999ms/utterances.jsonl not found" in capsys.readouterr().err


# ------------------------------------------------------------------- latency by hand (ms)
def _synthetic_run() -> UtteranceRun:
    """Source 1000 ms, reference of 4 words; 4 steps of 10/20/30/40 ms compute, so the
    computation-aware timestamps are the delays plus 10, 30, 60 and 100 ms."""
    utterance = TestUtterance(0, "synthetic", Path("synthetic.wav"), 1000.0, "a b c d", "a b c d")
    rate = 16000

    def speech(ms: int) -> np.ndarray:
        return np.full(rate * ms // 1000, 0.1, dtype=np.float32)

    steps = [StepRecord(250.0, 0.010, ["a"], [], speech(100)),
             StepRecord(500.0, 0.020),
             StepRecord(750.0, 0.030, ["b", "c"], [], speech(300)),
             StepRecord(1000.0, 0.040, ["d"], [], speech(200))]
    return UtteranceRun(utterance, steps, rate)


def test_text_latency_equals_a_hand_computation():
    run = _synthetic_run()
    assert run.word_timestamps() == ([250.0, 750.0, 750.0, 1000.0],
                                     pytest.approx([260.0, 810.0, 810.0, 1100.0]))
    scores = latency_scores([text_instance(0, run)], TEXT_LATENCY_METRICS)
    # AL = mean over words up to the first at the source end of d_i - (i-1) * |X| / |Y*|
    assert scores["AL"] == pytest.approx((250 + 500 + 250 + 250) / 4)
    assert scores["AL_CA"] == pytest.approx((260 + 560 + 310 + 350) / 4)
    assert scores["LAAL"] == scores["AL"]  # as many words written as in the reference
    assert scores["StartOffset"] == 250.0 and scores["StartOffset_CA"] == pytest.approx(260.0)
    assert scores["EndOffset"] == 0.0 and scores["EndOffset_CA"] == pytest.approx(100.0)
    assert scores["RTF"] == 1.0 and scores["RTF_CA"] == pytest.approx(1.1)


def test_speech_latency_equals_a_hand_computation(tmp_path):
    run = _synthetic_run()
    instance = speech_instance(0, run, tmp_path)
    assert instance.delays == [250.0, 750.0, 1000.0]
    assert instance.elapsed == pytest.approx([260.0, 810.0, 1100.0])
    assert instance.durations == pytest.approx([100.0, 300.0, 200.0])
    # SimulEval plays a segment when it is written or when the previous one ends
    assert instance.intervals == [[250.0, 100.0], [750.0, 300.0], [1050.0, 200.0]]
    samples, rate = sf.read(str(instance.prediction))
    assert rate == 16000 and len(samples) == 16000  # 100 + 400 silence + 300 + 200 ms
    assert instance.prediction_length == pytest.approx(1.0)
    scores = latency_scores([instance], SPEECH_LATENCY_METRICS)
    assert scores["AL"] == pytest.approx((250 + 500 + 500) / 3)
    assert scores["AL_CA"] == pytest.approx((260 + 560 + 600) / 3)
    assert scores["StartOffset"] == 250.0 and scores["StartOffset_CA"] == pytest.approx(260.0)
    assert scores["EndOffset"] == scores["EndOffset_CA"] == 250.0  # end of the last interval
    assert run.compute_s == pytest.approx(0.1)


def test_joined_speech_is_the_pieces_back_to_back_without_silence(monkeypatch):
    """What the recogniser gets for ``asr_bleu_joined``: the written pieces concatenated (no
    silence, unlike SimulEval's layout of the same run), at 16 kHz; no call for a run that
    wrote no speech."""
    from echostream_fairseq.evaluation import streaming_eval
    from echostream_fairseq.scoring import asr_bleu

    heard = []

    def fake_transcribe_one(model, audio, sample_rate, beam_size):
        heard.append((audio.copy(), sample_rate))
        return "a b"

    monkeypatch.setattr(asr_bleu, "_transcribe_one", fake_transcribe_one)
    run = _synthetic_run()
    silent = UtteranceRun(TestUtterance(1, "silent", Path("silent.wav"), 500.0, "a", "a b"),
                          [StepRecord(500.0, 0.01)], 16000)
    scores, transcripts = streaming_eval._joined_speech_scores([run, silent], asr_model=None)
    [(audio, rate)] = heard
    pieces = [step.speech for step in run.steps if step.speech.size]
    assert rate == run.speech_rate == 16000 and np.array_equal(audio, np.concatenate(pieces))
    assert audio.size == 16000 * 600 // 1000  # 100 + 300 + 200 ms, the 400 ms gap left out
    assert transcripts == ["a b", ""] and scores["num_empty_joined"] == 1


def test_latency_of_runs_without_output_is_none():
    utterance = TestUtterance(0, "silent", Path("silent.wav"), 500.0, "a", "a")
    run = UtteranceRun(utterance, [StepRecord(500.0, 0.01)], 16000)
    scores = latency_scores([text_instance(0, run)], TEXT_LATENCY_METRICS)
    assert set(scores.values()) == {None}


# ------------------------------------------------------------------------------ bad input
def _corpus_copy(data: Path, tmp_path: Path) -> Path:
    """The test manifest and its SimulEval wav list in a fresh folder (features shared)."""
    copy = tmp_path / "corpus"
    (copy / "simuleval" / "test").mkdir(parents=True)
    shutil.copy(data / "test_sampled.tsv", copy / "test_sampled.tsv")
    shutil.copy(data / "simuleval" / "test" / "wav_list.txt",
                copy / "simuleval" / "test" / "wav_list.txt")
    return copy


@pytest.mark.parametrize("case", ["missing", "empty", "8k"])
def test_a_bad_wav_is_named_with_its_list_line(tiny_corpus, tmp_path, case):
    copy = _corpus_copy(corpus_dir(tiny_corpus), tmp_path)
    wav = tmp_path / "bad.wav"
    if case == "empty":
        sf.write(str(wav), np.zeros(0, dtype=np.float32), 16000)
    elif case == "8k":
        sf.write(str(wav), np.zeros(8000, dtype=np.float32), 8000)
    (copy / "simuleval" / "test" / "wav_list.txt").write_text(f"{wav}\n")
    with pytest.raises(ManifestError) as error:
        load_test_set(copy / "test_sampled.tsv")
    expected = {"missing": "does not exist", "empty": "empty audio", "8k": "8000 Hz"}[case]
    assert f"wav_list.txt:1: column 'wav': {wav}: " in str(error.value)
    assert expected in str(error.value)


def test_a_wav_list_out_of_manifest_order_is_refused(two_utterance_set):
    manifest, wav_list = two_utterance_set
    reordered = manifest.with_name("reordered.txt")
    reordered.write_text("\n".join(reversed(wav_list.read_text().split())) + "\n")
    with pytest.raises(ManifestError, match=r"reordered.txt:1: .*must follow the manifest"):
        load_test_set(manifest, reordered)


@pytest.mark.parametrize("case", ["missing_column", "empty_wav", "bad_checkpoint"])
def test_evaluate_cli_names_the_bad_input(tiny_corpus, checkpoint, tmp_path, capsys, case):
    copy = _corpus_copy(corpus_dir(tiny_corpus), tmp_path)
    manifest = copy / "test_sampled.tsv"
    used_checkpoint = checkpoint
    if case == "missing_column":
        lines = [line.split("\t") for line in manifest.read_text().splitlines()]
        column = lines[0].index("tgt_text")
        manifest.write_text("\n".join("\t".join(f[:column] + f[column + 1:]) for f in lines)
                            + "\n")
        expected = f"{manifest}:1: column 'tgt_text': column missing from the header"
    elif case == "empty_wav":
        sf.write(str(tmp_path / "empty.wav"), np.zeros(0, dtype=np.float32), 16000)
        (copy / "simuleval" / "test" / "wav_list.txt").write_text(f"{tmp_path / 'empty.wav'}\n")
        expected = "wav_list.txt:1: column 'wav'"
    else:
        used_checkpoint = tmp_path / "broken.pt"
        used_checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
        expected = f"cannot load checkpoint {used_checkpoint}"
    status = _script(EVALUATE).main([
        "--checkpoint", str(used_checkpoint), "--manifest", str(manifest),
        "--data-dir", str(corpus_dir(tiny_corpus)), "--output-dir", str(tmp_path / "out"),
        "--chunk-ms", "320", "--no-progress"])
    error = capsys.readouterr().err
    assert status == 2 and expected in error, error
    assert not (tmp_path / "out").exists()  # refused before any work


def test_text_only_streaming_without_offline(tiny_corpus, checkpoint, tmp_path, capsys):
    output = tmp_path / "out"
    decode = tmp_path / "decode.yaml"
    decode.write_text("unit_blank_penalty: 2.5\nunit_k2: 1\nstride_n: 2\n")
    argv = ["--checkpoint", str(checkpoint), "--manifest",
            str(corpus_dir(tiny_corpus) / "test_sampled.tsv"), "--output-dir", str(output),
            "--chunk-ms", "640", "--no-speech", "--no-offline", "--no-progress",
            "--decode-config", str(decode), "--unit-k2", "2", "--unit-n2", "3"]
    status = _script(EVALUATE).main(argv)
    assert status == 0, capsys.readouterr().err
    report = _report(output)
    assert report["results"]["offline"] is None
    # the decode config, then the options given, reach every condition's pipeline and the report
    pipeline = report["results"]["streaming"][0]["pipeline"]
    assert (pipeline["unit_blank_penalty"], pipeline["unit_k2"], pipeline["unit_n2"],
            pipeline["stride_n"]) == (2.5, 2, 3, 2)
    assert report["settings"]["decode"]["config"] == str(decode)
    assert "unit blank penalty: 2.5; unit mask k2/n2: 2/3" in (output / "report.md").read_text()
    # how it was made: the code's commit, whether the tree was dirty, the command, the configs
    provenance = report["provenance"]
    assert re.fullmatch(r"[0-9a-f]{40}", provenance["git_commit"])
    assert isinstance(provenance["git_dirty"], bool) and provenance["argv"][1:] == argv
    assert provenance["configs"] == {"train": None, "decode": str(decode)}
    assert report["settings"]["wav_list"].endswith("simuleval/test/wav_list.txt")
    (condition,) = report["results"]["streaming"]
    assert "speech" not in condition and "bleu_vs_offline" not in condition["text"]
    assert condition["text"]["latency"]["AL_CA"] > condition["text"]["latency"]["AL"]
    assert "| 640 | - | - |" in (output / "report.md").read_text()  # no ASR-BLEU columns
    assert ((output / "latency_quality.png").is_file()
            and not (output / "chunk_640ms" / "wavs").exists())


def _without_timings(value):
    """A report's results with what the clock decides removed: compute times, RTFs and the
    computation-aware (_CA) latencies."""
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items()
                if k not in ("compute", "wall_s") and not k.endswith("_CA")}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def test_two_evaluations_of_one_checkpoint_give_identical_numbers(evaluation, tiny_corpus,
                                                                  checkpoint, two_utterance_set,
                                                                  tmp_path):
    """Greedy decoding and temperature-0 Whisper: every score, latency and transcript of a
    second run equals the first."""
    manifest, wav_list = two_utterance_set
    again = tmp_path / "again"
    result = _run(EVALUATE, "--config", str(REPO / "configs" / "train" / "echostream_mini.yaml"),
                  "--checkpoint", str(checkpoint), "--test-manifest", str(manifest),
                  "--data-dir", str(corpus_dir(tiny_corpus)), "--wav-list", str(wav_list),
                  "--output-dir", str(again), "--chunk-sizes", ",".join(map(str, CHUNKS)),
                  "--num-threads", "1", "--joined-speech-asr")
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    first, second = (_without_timings(_report(o)["results"]) for o in (evaluation, again))
    assert first["streaming"][0]["speech"]["asr_bleu"] is not None
    assert second == first
    for condition in ("offline", *(c["name"] for c in _report(evaluation)["results"]["streaming"])):
        assert ([r["speech"]["transcript"] for r in _utterances(again, condition)]
                == [r["speech"]["transcript"] for r in _utterances(evaluation, condition)])
