"""examples/stream_a_wav.py streams a corpus wav chunk by chunk and writes the translated speech;
a bad wav is a one-line error."""

import subprocess
import sys

import numpy as np
import soundfile as sf

from _fairseq_cli import REPO, corpus_dir
from echostream_fairseq.cli.examples import written_timeline
from echostream_fairseq.data.audio import read_wav, resample, write_wav

SCRIPT = REPO / "examples" / "stream_a_wav.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=180, cwd=REPO)


def test_stream_a_wav_prints_each_chunk_and_writes_the_speech(tiny_corpus, talkative_checkpoint,
                                                              tmp_path):
    data = corpus_dir(tiny_corpus)
    wav = (data / "simuleval" / "test" / "wav_list.txt").read_text().split()[0]
    samples, rate = read_wav(wav)
    stereo_44k = tmp_path / "source.wav"  # another rate and two channels: the pipeline adapts
    mono = resample(samples, rate, 44100)
    write_wav(stereo_44k, np.stack([mono, mono], axis=1), 44100)
    output = tmp_path / "translated.wav"
    result = _run("--checkpoint", str(talkative_checkpoint), "--data-dir", str(data),
                  "--wav", str(stereo_44k), "--chunk-ms", "160", "--output", str(output))
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    steps = [line for line in lines if "s heard |" in line]
    assert steps and lines[-2].startswith(f"done: {len(samples) / rate:.2f} s of source")
    heard = [float(line.split("s heard")[0]) for line in steps]
    assert heard == sorted(heard) and heard[-1] <= len(samples) / rate + 0.005  # printed to 10 ms
    speech, speech_rate = read_wav(output, expected_sr=None)
    assert len(speech) > 0 and f"{len(speech) / speech_rate:.2f} s of speech so far" in steps[-1]


def test_stream_a_wav_refuses_a_bad_wav_in_one_line(tiny_corpus, talkative_checkpoint, tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, dtype=np.float32), 16000)  # write_wav itself refuses this
    result = _run("--checkpoint", str(talkative_checkpoint),
                  "--data-dir", str(corpus_dir(tiny_corpus)), "--wav", str(empty))
    assert result.returncode == 2
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: ") and str(empty) in errors[0]


def test_the_examples_page_shows_when_each_word_was_written():
    record = {"target_text": "the car is red", "text": {"delays": [640.0, 960.0, 960.0, 2110.0]}}
    assert written_timeline(record) == "0.64 s: the | 0.96 s: car is | 2.11 s: red"
    assert written_timeline({"target_text": "", "text": {"delays": []}}) is None
    assert written_timeline({"target_text": "a b", "text": {"delays": [1.0]}}) is None
