"""Real SimulEval 1.1.4 runs of EchoStream's agents, and the ASR-BLEU scorer registration."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _fairseq_cli import REPO, corpus_dir, tail
from test_streaming_pipeline import corpus_wavs

SIMULEVAL = str(Path(sys.executable).with_name("simuleval"))
SCORERS_USER_DIR = REPO / "echostream_fairseq" / "scoring" / "simuleval_scorers"
S2T_AGENT = "echostream_fairseq.agents.speech_to_text.EchoStreamSpeechToTextAgent"
S2S_AGENT = "echostream_fairseq.agents.speech_to_speech.EchoStreamSpeechToSpeechAgent"
# the *_CA columns come from --computation-aware (AL_CA is no --latency-metrics name in 1.1.4)
LATENCY = ["AL", "LAAL", "StartOffset", "EndOffset", "RTF"]


@pytest.fixture(scope="module")
def checkpoint(talkative_checkpoint) -> Path:
    return talkative_checkpoint


def _simuleval(args: list, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([SIMULEVAL, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def _simuleval_lists(data: Path, folder: Path) -> list:
    """SimulEval source and target lists of the tiny corpus' test and dev wavs in ``folder``."""
    wavs = corpus_wavs(data)
    references = [line for split in ("test", "dev")
                  for line in (data / "simuleval" / split / "target.txt").read_text().splitlines()]
    assert len(wavs) == len(references) == 2
    (folder / "wav_list.txt").write_text("\n".join(map(str, wavs)) + "\n")
    (folder / "target.txt").write_text("\n".join(references) + "\n")
    return ["--source", str(folder / "wav_list.txt"), "--target", str(folder / "target.txt")]


def _scores(output: Path, names: list) -> dict:
    with open(output / "scores.tsv") as handle:
        scores = next(csv.DictReader(handle, delimiter="\t"))
    values = {name: float(scores[name]) for name in names}
    assert all(math.isfinite(value) for value in values.values()), scores
    return values


def test_simuleval_runs_the_speech_to_text_agent(tiny_corpus, checkpoint, tmp_path):
    data = corpus_dir(tiny_corpus)
    output = tmp_path / "out"
    result = _simuleval([
        "--user-dir", str(SCORERS_USER_DIR), "--agent-class", S2T_AGENT,
        "--checkpoint", str(checkpoint), "--data-dir", str(data), *_simuleval_lists(data, tmp_path),
        "--source-segment-size", "320", "--output", str(output),
        "--quality-metrics", "BLEU", "--latency-metrics", *LATENCY, "--computation-aware",
    ], tmp_path)
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    instances = [json.loads(line) for line in (output / "instances.log").read_text().splitlines()]
    assert [i["index"] for i in instances] == [0, 1]
    assert all(i["prediction"].strip() for i in instances)
    assert all(len(i["delays"]) == len(i["prediction"].split()) for i in instances)
    values = _scores(output, ["BLEU", *LATENCY, "AL_CA"])
    # AL itself may be negative (a noisy model can write before the oracle would); computation-aware
    # AL adds the measured compute time to every delay, so it is above AL. (SimulEval 1.1.4 alone
    # makes AL computation-aware too under --computation-aware; the scorers module fixes that.)
    assert values["BLEU"] >= 0.0 and values["RTF"] > 0.0 and values["StartOffset"] >= 0.0, values
    assert values["AL_CA"] > values["AL"], values


def test_simuleval_computation_aware_scores_of_the_speech_to_speech_agent(tiny_corpus, checkpoint,
                                                                         tmp_path):
    """SimulEval 1.1.4 logs ``"elapsed": []`` for speech output, so without our fix in
    ``scoring/simuleval_scorers.py`` every *_CA score crashes with StatisticsError."""
    data = corpus_dir(tiny_corpus)
    output = tmp_path / "out"
    result = _simuleval([
        "--user-dir", str(SCORERS_USER_DIR), "--agent-class", S2S_AGENT,
        "--checkpoint", str(checkpoint), "--data-dir", str(data), *_simuleval_lists(data, tmp_path),
        "--source-segment-size", "320", "--output", str(output), "--computation-aware",
        "--quality-metrics", "ECHOSTREAM_ASR_BLEU", "--latency-metrics", *LATENCY,
    ], tmp_path)
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    values = _scores(output, ["ECHOSTREAM_ASR_BLEU", *LATENCY, *(m + "_CA" for m in LATENCY)])
    assert 0.0 <= values["ECHOSTREAM_ASR_BLEU"] <= 100.0, values
    assert (values["AL_CA"] > values["AL"]
            and values["StartOffset_CA"] > values["StartOffset"]), values
    assert values["RTF_CA"] > values["RTF"] > 0.0, values
    instances = [json.loads(line) for line in (output / "instances.log").read_text().splitlines()]
    assert [i["index"] for i in instances] == [0, 1]
    for instance in instances:
        assert instance["delays"] and len(instance["elapsed"]) == len(instance["delays"])
        assert all(e > d for d, e in zip(instance["delays"], instance["elapsed"]))
        assert len(instance["durations"]) == len(instance["delays"])


def test_asr_bleu_scorers_are_registered_and_raise_on_a_missing_wav(tmp_path):
    from simuleval.evaluator.scorers import get_scorer_class

    from echostream_fairseq.scoring.asr_bleu import AsrError
    from echostream_fairseq.scoring.simuleval_scorers import EchoStreamAsrBleuScorer

    assert get_scorer_class("quality", "ECHOSTREAM_ASR_BLEU") is EchoStreamAsrBleuScorer
    assert get_scorer_class("quality", "ECHOSTREAM_ASR_BLEU_RAW") is not None

    class Instance:
        prediction = str(tmp_path / "0_pred.wav")
        prediction_length = 1.5
        reference = "hello world"

    with pytest.raises(AsrError, match="missing"):
        EchoStreamAsrBleuScorer(model=None)({0: Instance()})
    with pytest.raises(AsrError, match="no instances"):
        EchoStreamAsrBleuScorer(model=None)({})


def test_agent_options_reach_the_pipeline_config(tiny_corpus, checkpoint):
    """Each agent flag lands in the pipeline it builds (SimulEval adds --source-segment-size)."""
    from argparse import ArgumentParser

    from echostream_fairseq.agents.speech_to_speech import EchoStreamSpeechToSpeechAgent

    parser = ArgumentParser()
    EchoStreamSpeechToSpeechAgent.add_args(parser)
    parser.add_argument("--source-segment-size", type=float, default=320)
    args = parser.parse_args(["--checkpoint", str(checkpoint), "--data-dir",
                              str(corpus_dir(tiny_corpus)), "--decode-config",
                              str(REPO / "configs" / "decode" / "deen_mini.yaml"),
                              "--unit-k2", "1", "--unit-n2", "2", "--whole-word", "on"])
    config = EchoStreamSpeechToSpeechAgent.build_pipeline(args).config
    # the penalty from the file, the mask from the options given after it
    assert (config.unit_blank_penalty, config.unit_k2, config.unit_n2) == (3.0, 1, 2)
    assert config.whole_word is True and config.speech is True
    assert config.segment_length == 8  # 320 ms of 40 ms encoder frames


def test_single_sentence_flag_keeps_simulevals_per_sentence_output(tiny_corpus, checkpoint,
                                                                   tmp_path):
    """With ``--single-sentence`` the agent writes what the one-sentence pipeline writes, even
    where the default would cut the stream (here at a 640 ms sentence bound)."""
    from echostream_fairseq.data.audio import read_wav
    from echostream_fairseq.evaluation.streaming_eval import stream_utterance
    from echostream_fairseq.streaming import PipelineConfig, StreamingS2STPipeline

    data = corpus_dir(tiny_corpus)
    predictions = {}
    for name, flags in (("single", ["--single-sentence"]), ("cut", [])):
        output = tmp_path / name
        result = _simuleval([
            "--agent-class", S2T_AGENT, "--checkpoint", str(checkpoint), "--data-dir", str(data),
            *_simuleval_lists(data, tmp_path), "--source-segment-size", "320",
            "--output", str(output), "--max-sentence-ms", "640", *flags,
        ], tmp_path)
        assert result.returncode == 0, tail(result.stdout + result.stderr)
        predictions[name] = [json.loads(line)["prediction"]
                             for line in (output / "instances.log").read_text().splitlines()]
    pipe = StreamingS2STPipeline.from_checkpoint(
        str(checkpoint), str(data), PipelineConfig(speech=False, single_sentence=True,
                                                   segment_length=8))
    expected = []
    for wav in corpus_wavs(data):
        samples, rate = read_wav(wav)
        steps = stream_utterance(pipe, samples, rate, 320)
        expected.append(" ".join(w for step in steps for w in step.target_words))
    assert all(expected)
    assert predictions["single"] == expected
    assert predictions["cut"] != expected  # the flag is what kept the sentence whole
