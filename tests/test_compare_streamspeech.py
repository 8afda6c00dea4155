"""The StreamSpeech comparison harness: ``echostream-compare-streamspeech`` and
recipes/streamspeech_compare/ (its shims, StreamSpeech's agent, the per-chunk cost driver).

StreamSpeech's source is never in this repository; the tests that run its code need a checkout in
``$STREAMSPEECH_SRC`` (at commit 375a73a) and are skipped without one. Everything on EchoStream's
side, the shims' vocoder adapter and the table run here on the tiny corpus.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
import torch

from _fairseq_cli import REPO, corpus_dir, tail
from echostream_fairseq.cli import compare_streamspeech as cmp
from echostream_fairseq.models.echostream import ASR_TASK, ST_TASK
from echostream_fairseq.shipped import file_sha256

HARNESS = REPO / "recipes" / "streamspeech_compare"
STREAMSPEECH_SRC = os.environ.get("STREAMSPEECH_SRC")
needs_streamspeech = pytest.mark.skipif(
    not STREAMSPEECH_SRC, reason="STREAMSPEECH_SRC (a StreamSpeech checkout) not set")


def _echostream_cfg() -> dict:
    model = Namespace(segment_length=8, encoder_embed_dim=144, encoder_ffn_embed_dim=576,
                      encoder_attention_heads=4, conv_channels=256, conv_kernel_sizes="5,5",
                      translation_decoder_layers=2, synthesizer_encoder_layers=1,
                      decoder_layers=2, decoder_embed_dim=256, decoder_ffn_embed_dim=1024,
                      decoder_attention_heads=4, ctc_upsample_rate=8, dropout=0.1,
                      attention_dropout=0.1, activation_dropout=0.1, uni_encoder=True,
                      share_decoder_input_output_embed=True)
    task = Namespace(config_yaml="config_gcmvn.yaml",
                     multitask_config_yaml="config_mtl_asr_st_ctcst.yaml", target_code_size=151,
                     max_source_positions=6000, max_target_positions=1200)
    return {"model": model, "task": task, "common": {"seed": 1},
            "dataset": {"train_subset": "train_sampled.units", "valid_subset": "dev_sampled.units",
                        "max_tokens": 20000, "batch_size": 16, "required_batch_size_multiple": 1,
                        "validate_interval_updates": 2000},
            "optimization": {"lr": [0.002], "clip_norm": 1.0, "update_freq": [1]},
            "optimizer": {"adam_betas": "(0.9,0.98)"},
            "lr_scheduler": {"_name": "inverse_sqrt", "warmup_updates": 1000,
                             "warmup_init_lr": 1e-7},
            "criterion": {"label_smoothing": 0.1, "rdrop_alpha": 0.0, "k1": 0, "k2": 0, "n1": 1,
                          "n2": -1, "multichunk": True}}


def _option(args: list, name: str) -> str:
    return args[args.index(name) + 1]


def test_the_streamspeech_run_copies_every_setting_but_the_encoder(tmp_path):
    args = cmp.streamspeech_train_args(_echostream_cfg(), tmp_path / "data", tmp_path / "ckpt",
                                       max_update=14023, conformer_layers=3)
    expected = {"--decoder-embed-dim": "256", "--decoder-ffn-embed-dim": "1024",
                "--decoder-attention-heads": "4", "--decoder-layers": "2",
                "--translation-decoder-layers": "2", "--synthesizer-encoder-layers": "1",
                "--ctc-upsample-rate": "8", "--target-code-size": "151", "--lr": "0.002",
                "--warmup-updates": "1000", "--max-tokens": "20000", "--batch-size": "16",
                "--required-batch-size-multiple": "1", "--max-update": "14023", "--seed": "1",
                "--train-subset": "train_sampled.units", "--n1": "1", "--n2": "-1",
                # the encoder: the Emformer's width, StreamSpeech's Conformer options
                "--arch": "streamspeech", "--encoder-embed-dim": "144",
                "--encoder-ffn-embed-dim": "576", "--encoder-layers": "3", "--chunk-size": "8",
                "--attn-type": "espnet", "--pos-enc-type": "rel_pos"}
    assert {name: _option(args, name) for name in expected} == expected
    for flag in ("--multichunk", "--uni-encoder", "--share-decoder-input-output-embed"):
        assert flag in args
    assert args[0] == str(tmp_path / "data")


def test_the_shipped_model_is_matched_by_name_with_its_own_recipe(tmp_path):
    matched = cmp._echostream_cfg("echostream-mini-de-en")
    assert matched["num_updates"] == 14023
    args = cmp.streamspeech_train_args(matched["cfg"], tmp_path, tmp_path / "ckpt",
                                       max_update=3333, conformer_layers=3)
    # configs/train/echostream_mini_ding.yaml and the recipe's --batch-size 16
    assert {name: _option(args, name) for name in ("--ctc-upsample-rate", "--target-code-size",
                                                   "--batch-size", "--max-update")} == {
        "--ctc-upsample-rate": "8", "--target-code-size": "151", "--batch-size": "16",
        "--max-update": "3333"}


def test_a_folder_that_is_no_streamspeech_checkout_is_one_line_and_exit_2(tmp_path, capsys):
    status = cmp.main(["train", "--streamspeech-src", str(tmp_path),
                       "--checkpoint", str(tmp_path / "none.pt"), "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert status == 2 and err.count("\n") == 0
    assert err.startswith(f"error: {tmp_path.resolve()}: not a StreamSpeech checkout")


def test_streamspeech_runs_need_its_source_and_checkpoint(tmp_path, capsys):
    assert cmp.main(["evaluate", "--data-dir", str(tmp_path)]) == 2
    assert "--streamspeech-src: needed" in capsys.readouterr().err
    src = tmp_path / "src"
    for needed in ("researches/ctc_unity/models/streamspeech_model.py",
                   "agent/speech_to_speech.streamspeech.agent.py"):
        (src / needed).parent.mkdir(parents=True, exist_ok=True)
        (src / needed).write_text("")
    assert cmp.main(["compute", "--streamspeech-src", str(src), "--data-dir", str(tmp_path),
                     "--output-dir", str(tmp_path / "exp")]) == 2
    assert "no StreamSpeech checkpoint" in capsys.readouterr().err


def test_chunk_costs_are_read_at_each_stream_length():
    positions = [round(0.32 * (i + 1), 2) for i in range(int(100 / 0.32))]
    result = {"positions_s": positions, "chunk_cpu_s": [p / 1000 for p in positions],
              "chunk_ms": 320}  # a chunk at t seconds costs t ms: a re-encoding system
    rows = {row["seconds"]: row for row in cmp.chunk_cost_summary(result)}
    assert sorted(rows) == [20.0, 60.0]  # a 100 s stream has no 180 s point
    last_ten = positions[positions.index(19.84) - 9:positions.index(19.84) + 1]
    assert rows[20.0]["chunk_ms_max"] == pytest.approx(19.84)
    assert rows[20.0]["chunk_ms_p50"] == pytest.approx(sorted(last_ten)[4] / 2
                                                       + sorted(last_ten)[5] / 2)
    assert rows[60.0]["compute_rtf"] == pytest.approx(
        sum(p for p in positions if p <= 60) / 1000 / 60)


def _fairseq_log(path: Path, records: list) -> Path:
    lines = []
    for updates, asr in records:
        fields = {"epoch": 1, "dev_sampled.units_loss": asr / 2,
                  "dev_sampled.units_multitask_source_unigram_loss": asr,
                  "dev_sampled.units_multitask_ctc_target_unigram_loss": asr + 1,
                  "dev_sampled.units_multitask_target_unigram_loss": asr + 2,
                  "dev_sampled.units_num_updates": updates}
        lines.append(f"2026-12-06 10:00:00 | INFO | dev_sampled.units | {json.dumps(fields)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_dev_losses_are_paired_at_the_updates_both_runs_validated(tmp_path):
    logs = {"streamspeech": _fairseq_log(tmp_path / "a.log", [(1000, 50.0), (2000, 40.0)]),
            "echostream": _fairseq_log(tmp_path / "b.log", [(1111, 45.0), (2000, 38.0)]),
            "ablation": _fairseq_log(tmp_path / "c.log", [(1000, 47.0), (2000, 37.0)])}
    rows = cmp.dev_losses_at_equal_updates(logs, "dev_sampled.units")
    assert rows == [{"updates": 2000, "run": run, "ASR CTC": asr, "ST CTC": asr + 1,
                     "MT CE": asr + 2, "total": asr / 2}
                    for run, asr in (("streamspeech", 40.0), ("echostream", 38.0),
                                     ("ablation", 37.0))]
    text = cmp.render_markdown({"quality_latency": [], "dev_losses": rows})
    assert "| 2000 | ablation | 37.00 | 38.00 | 39.00 | 18.50 |" in text


def test_the_vocoder_adapter_speaks_units_as_streamspeechs_agent_slices_them():
    """Shim 4 in its own process (as in the agent's): the pieces StreamSpeech's agent keeps
    (``wav[-durations[-n:].sum() * 320:]`` for its n new units) are as long as piper's whole
    synthesis (each call re-synthesises all units, as the CodeHiFiGAN does, so only the last piece
    is the whole synthesis's own tail), EchoStream's fairseq plugin stays unregistered, and
    shims 1-3 are in place."""
    script = r"""
import json, sys, numpy as np, torch
import streamspeech_shims as shims
shims.install()
adapter = shims.PiperUnitsForStreamSpeech()
piper = sys.modules["echostream_fairseq.vocoder.piper_phonemes"]
units = piper.phoneme_units("The hot desert sun had parched the land.")
pieces, given = [], 0
for n in (4, 11, 11, 25, len(units)):
    wav, durations = adapter({"code": torch.tensor(units[:n]).view(1, -1)}, True)
    new = n - given
    keep = int(durations[:, -new:].sum()) * 320 if new else 0
    pieces.append(wav[-keep:].numpy() if keep else np.zeros(0, dtype=np.float32))
    given = n
adapter.reset()
again, _ = adapter({"code": torch.tensor(units).view(1, -1)}, True)
whole = adapter.vocoder.synthesize(units)
import torchaudio, examples.speech_to_text.data_utils
resampled, rate = torchaudio.sox_effects.apply_effects_tensor(
    torch.zeros(1, 48000), 48000, [["rate", "16000"]])
print(json.dumps({"joined": float(np.concatenate(pieces).size), "whole": float(whole.size),
                  "last_is_tail": bool(pieces[-1].size > 0 and np.array_equal(
                      pieces[-1], whole[whole.size - pieces[-1].size:])),
                  "after_reset": float(again.shape[0]), "plugin": "echostream_fairseq.criterions"
                  in sys.modules, "resampled": [int(resampled.shape[1]), rate]}))
"""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", script], cwd=HARNESS, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, tail(proc)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["last_is_tail"] and out["whole"] - 320 < out["joined"] <= out["whole"]
    assert out["after_reset"] == out["whole"]
    assert out["plugin"] is False
    assert out["resampled"] == [16000, 16000]


def test_echostreams_side_evaluates_measures_and_tabulates_on_the_tiny_corpus(
        tiny_corpus, talkative_checkpoint, tmp_path):
    data, exp = corpus_dir(tiny_corpus), tmp_path / "exp"
    decode = REPO / "configs" / "decode" / "streamspeech.yaml"
    common = ["--data-dir", str(data), "--output-dir", str(exp), "--systems", "echostream",
              "--checkpoint", str(talkative_checkpoint), "--decode-config", str(decode)]
    assert cmp.main(["evaluate", *common, "--chunk-ms", "320", "--text-output"]) == 0
    summaries = {p.parts[-2]: json.loads(p.read_text())
                 for p in (exp / "eval" / "test").glob("echostream/*/summary.json")}
    assert sorted(summaries) == ["320", "offline"]
    # the text rows: EchoStream's speech->text agent, its text's latency, no vocoder
    written = json.loads((exp / "eval" / "test" / "echostream" / "text" / "320" / "summary.json"
                          ).read_text())
    assert written["output"] == "text" and "vocoder_phrase_units" not in written
    assert written["scores"]["AL_CA"] >= written["scores"]["AL"] > 0
    assert "ECHOSTREAM_ASR_BLEU" not in written["scores"] and written["scores"]["text_BLEU"] >= 0
    scores = summaries["320"]["scores"]
    assert summaries["320"]["utterances"] == 1 and summaries["320"]["updates"] >= 1
    # EchoStream's piper voice speaks every complete word at once, as StreamSpeech's agent does
    assert summaries["320"]["vocoder_phrase_units"] == cmp.ECHOSTREAM_PHRASE_UNITS == 1
    assert "phrase_units: 1" in (exp / "eval" / "echostream_vocoder.yaml").read_text()
    assert 0 <= scores["ECHOSTREAM_ASR_BLEU"] <= 100 and scores["AL_CA"] >= scores["AL"] > 0
    # the agent's --extra-output-dir: one line per input, what the talkative model wrote
    extra = exp / "eval" / "test" / "echostream" / "320" / "extra"
    lines = {name: (extra / f"{name}.txt").read_text().splitlines() for name in ("asr", "st")}
    assert [len(v) for v in lines.values()] == [1, 1] and lines["st"][0].strip()
    assert 0 <= scores["text_BLEU"] <= 100 and scores["source_WER"] >= 0
    # a rerun keeps a finished run: the summary is not rewritten
    before = (exp / "eval" / "test" / "echostream" / "320" / "summary.json").stat().st_mtime_ns
    assert cmp.main(["evaluate", *common, "--chunk-ms", "320"]) == 0
    assert (exp / "eval" / "test" / "echostream" / "320" / "summary.json"
            ).stat().st_mtime_ns == before
    # ... and a summary of another checkpoint is made again, also one retrained to the same
    # path and update count (its contents' hash differs)
    assert summaries["320"]["checkpoint_sha256"] == file_sha256(talkative_checkpoint)
    summary = json.loads((exp / "eval" / "test" / "echostream" / "320" / "summary.json"
                          ).read_text())
    summary["checkpoint_sha256"] = "0" * 64
    (exp / "eval" / "test" / "echostream" / "320" / "summary.json").write_text(
        json.dumps(summary))
    assert cmp.main(["evaluate", *common, "--chunk-ms", "320", "--no-offline"]) == 0
    assert json.loads((exp / "eval" / "test" / "echostream" / "320" / "summary.json"
                       ).read_text())["checkpoint_sha256"] == file_sha256(talkative_checkpoint)

    assert cmp.main(["compute", *common, "--seconds", "3"]) == 0
    cost = json.loads((exp / "compute" / "echostream_3s_320ms.json").read_text())
    assert len(cost["chunk_cpu_s"]) == 10 and cost["positions_s"][-1] == 3.0
    assert cost["finished"] and all(c > 0 for c in cost["chunk_cpu_s"])

    # a page without the block is refused before anything is written
    assert cmp.main(["table", "--output-dir", str(exp), "--readme", str(tmp_path / "none.md"),
                     "--output", str(tmp_path / "r.json")]) == 2
    assert not (tmp_path / "r.json").exists()
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- streamspeech_comparison:begin -->\nold\n"
                   "<!-- streamspeech_comparison:end -->\nend\n")
    readme = tmp_path / "README.md"
    readme.write_text("<!-- streamspeech_summary:begin -->\n<!-- streamspeech_summary:end -->\n")
    assert cmp.main(["table", "--output-dir", str(exp), "--doc", str(doc), "--plot",
                     str(tmp_path / "plot.png"), "--output", str(tmp_path / "r.json"),
                     "--readme", str(readme)]) == 0
    text = doc.read_text()
    assert "old" not in text and text.startswith("intro\n") and text.endswith("end\n")
    assert "| echostream | " in text and "| 320 ms | " in text and "| offline | " in text
    assert "### Latency of the text output" in text
    assert "Their text, written by each system's speech->text agent: echostream AL" in (
        readme.read_text())
    assert "echostream (" in readme.read_text() and "ASR-BLEU" in readme.read_text()
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["parameters"]["echostream"]["encoder"] > 0
    assert (tmp_path / "plot.png").stat().st_size > 10_000

    # another decoding's rows (the frame lead-in), labelled, beside the main ones
    lead_in = tmp_path / "lead_in"
    assert cmp.main(["evaluate", "--data-dir", str(data), "--output-dir", str(lead_in),
                     "--systems", "echostream", "--checkpoint", str(talkative_checkpoint),
                     "--decode-config", str(decode.with_name("streamspeech_lead_in.yaml")),
                     "--chunk-ms", "320", "--no-offline", "--text-output"]) == 0
    variant = json.loads((lead_in / "eval" / "test" / "echostream" / "320" / "summary.json"
                          ).read_text())
    assert variant["decode_config"].endswith("streamspeech_lead_in.yaml")
    assert cmp.main(["table", "--output-dir", str(exp), "--doc", str(doc), "--variant",
                     f"lead-in={lead_in}", "--output", str(tmp_path / "r.json")]) == 0
    rows = json.loads((tmp_path / "r.json").read_text())
    assert [r["system"] for r in rows["quality_latency"]] == [
        "echostream", "echostream", "echostream, lead-in"]
    assert [r["system"] for r in rows["text_latency"]][-1] == "echostream, lead-in"
    assert "| echostream, lead-in | " in doc.read_text()
    # sentence by sentence, the lead-in's first output against the main rows'
    shifts = {row["output"]: row for row in rows["variant_shifts"]}
    assert sorted(shifts) == ["speech", "text"] and shifts["text"]["chunk"] == "320"
    for output, row in shifts.items():
        first = [json.loads((run / "eval" / "test" / "echostream" /
                             ("" if output == "speech" else "text") / "320" / "instances.log"
                             ).read_text().splitlines()[0])["delays"][0] for run in (exp, lead_in)]
        assert row["sentences"] == 1 and row["silent_in_either"] == 0
        assert row["median_first_shift_ms"] == first[1] - first[0]
        assert (row["earlier"], row["later"]) == (int(first[1] < first[0]),
                                                 int(first[1] > first[0]))
    assert "| lead-in | text | 320 ms | " in doc.read_text()
    # a folder without compute runs shows another's
    assert cmp.main(["table", "--output-dir", str(lead_in), "--output",
                     str(tmp_path / "l.json")]) == 0
    assert not json.loads((tmp_path / "l.json").read_text())["compute"]
    assert cmp.main(["table", "--output-dir", str(lead_in), "--compute-from", str(exp),
                     "--output", str(tmp_path / "l.json")]) == 0
    # (the 3 s run above reaches none of the 20/60/180 s rows: its update count shows it read)
    assert json.loads((tmp_path / "l.json").read_text())["compute_updates"]["echostream"] >= 1
    assert cmp.main(["table", "--output-dir", str(exp), "--variant",
                     f"none={tmp_path / 'nowhere'}"]) == 2


@needs_streamspeech
def test_streamspeech_trains_with_its_own_code_and_its_agent_runs_under_simuleval(
        tiny_corpus, tiny_checkpoint, tmp_path):
    data, exp = corpus_dir(tiny_corpus), tmp_path / "exp"
    assert cmp.main(["train", "--streamspeech-src", STREAMSPEECH_SRC, "--checkpoint",
                     str(tiny_checkpoint), "--data-dir", str(data), "--output-dir", str(exp),
                     "--max-update", "2", "--num-threads", "1",
                     # one dev sentence: StreamSpeech's criterion fails on a batch without padding
                     "--", "--disable-validation"]) == 0
    checkpoint = exp / "streamspeech" / "checkpoints" / "checkpoint_last.pt"
    assert cmp._updates(checkpoint) == 2
    # every 50 updates in the log: the count comes from the checkpoint
    assert cmp.training_progress(exp / "streamspeech") == {"updates": 2, "of": 2}
    assert cmp.main(["evaluate", "--streamspeech-src", STREAMSPEECH_SRC, "--systems",
                     "streamspeech", "--data-dir", str(data), "--output-dir", str(exp),
                     "--chunk-ms", "320", "--no-offline"]) == 0
    summary = json.loads((exp / "eval" / "test" / "streamspeech" / "320" / "summary.json"
                          ).read_text())
    assert summary["updates"] == 2 and "ECHOSTREAM_ASR_BLEU" in summary["scores"]
    # its speech->text agent (shims 6 and 7) writes text with a latency
    assert cmp.main(["evaluate", "--streamspeech-src", STREAMSPEECH_SRC, "--systems",
                     "streamspeech", "--data-dir", str(data), "--output-dir", str(exp),
                     "--chunk-ms", "320", "--no-offline", "--text-output"]) == 0
    written = json.loads((exp / "eval" / "test" / "streamspeech" / "text" / "320" /
                          "summary.json").read_text())
    assert written["output"] == "text" and written["updates"] == 2
    assert "BLEU" in written["scores"] and "text_BLEU" in written["scores"]
    # its CTC heads' emission times, measured in a process of its own as its agent sets it up
    output = tmp_path / "timing.json"
    proc = subprocess.run([sys.executable, str(HARNESS / "ctc_emission_timing.py"),
                           "--data-dir", str(data), "--streamspeech-src", STREAMSPEECH_SRC,
                           "--streamspeech-run", f"streamspeech={checkpoint}",
                           "--output", str(output)],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, tail(proc)
    row = json.loads(output.read_text())["runs"]["streamspeech"]["ctc_target_unigram"]
    assert row["sentences"] == 1 and row["tokens_per_sentence"] >= 0


def test_ctc_emission_timing_dates_each_greedy_token_by_its_segment(tiny_corpus,
                                                                    talkative_checkpoint,
                                                                    tmp_path):
    spec = importlib.util.spec_from_file_location("ctc_emission_timing",
                                                  HARNESS / "ctc_emission_timing.py")
    timing = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(timing)
    # blank, a, a (repeat), blank, a (new after a blank), b
    logits = torch.nn.functional.one_hot(torch.tensor([0, 5, 5, 0, 5, 6]), 8).float()
    assert timing.emissions(logits) == [1, 4, 5]
    # its head names are spelled out (StreamSpeech's side may not import ours): the same
    assert timing.HEADS == (ASR_TASK, ST_TASK)

    output = tmp_path / "timing.json"
    proc = subprocess.run([sys.executable, str(HARNESS / "ctc_emission_timing.py"),
                           "--data-dir", str(corpus_dir(tiny_corpus)),
                           "--run", f"talkative={talkative_checkpoint}", "--max-sentences", "2",
                           "--output", str(output)],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, tail(proc)
    runs = json.loads(output.read_text())["runs"]["talkative"]
    for head in ("source_unigram", "ctc_target_unigram"):
        row = runs[head]
        assert row["tokens_per_sentence"] > 0  # the talkative model writes on every frame
        assert 0.0 <= row["share_before_last_segment"] <= 1.0
        assert 0.0 < row["median_point"] <= 1.0
        assert 0.0 < row["median_first_token_point"] <= 1.0


def test_first_write_timing_dates_the_first_subword_and_the_first_word(tiny_corpus,
                                                                       talkative_checkpoint,
                                                                       tmp_path):
    data = corpus_dir(tiny_corpus)
    command = [sys.executable, str(HARNESS / "first_write_timing.py"), "--data-dir", str(data),
               "--wav-list", str(data / "simuleval" / "test" / "wav_list.txt"),
               "--decode-config", str(REPO / "configs" / "decode" / "streamspeech_lead_in.yaml"),
               "--run", f"talkative={talkative_checkpoint}"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    output = tmp_path / "first.json"
    proc = subprocess.run([*command, "--output", str(output)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, tail(proc)
    saved = json.loads(output.read_text())
    row = saved["runs"]["talkative"]
    assert saved["chunk_ms"] == 320 and row["sentences"] == 1
    # a word comes out once the next has started: never before its first subword
    assert 0 < row["median_first_subword_ms"] <= row["median_first_word_ms"] \
        <= row["median_length_ms"]
    assert row["median_first_subword_ms"] % 320 == 0 or row["first_subword_only_at_the_end"]
    missing = subprocess.run([*command[:5], str(tmp_path / "none.txt"), *command[6:]],
                             capture_output=True, text=True, timeout=300, env=env)
    assert missing.returncode == 2 and "none.txt" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_a_variant_of_other_sentences_is_one_error_not_a_silent_pairing(tmp_path):
    def evaluation(root: Path, indices: list) -> Path:
        run = root / "320"
        (run / "extra").mkdir(parents=True)
        (run / "summary.json").write_text("{}")
        (run / "instances.log").write_text("".join(
            json.dumps({"index": i, "delays": [320.0 * (i + 1)]}) + "\n" for i in indices))
        (run / "extra" / "st.txt").write_text("".join(f"s{i}\n" for i in indices))
        return run

    main = evaluation(tmp_path / "main", [0, 1])
    same = evaluation(tmp_path / "same", [1, 0])  # another order: paired by index
    [row] = cmp.first_output_shifts(main.parent, [same])
    assert (row["median_first_shift_ms"], row["earlier"], row["later"]) == (0, 0, 0)
    other = evaluation(tmp_path / "other", [0, 2])
    with pytest.raises(cmp.UserError, match="not those of"):
        cmp.first_output_shifts(main.parent, [other])
