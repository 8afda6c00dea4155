"""``echostream-compare-streamspeech``: EchoStream against StreamSpeech's own Conformer model.

StreamSpeech (ictnlp/StreamSpeech at commit 375a73a) comes in at run time from
``--streamspeech-src``; nothing of it is in this repository. Its model is trained by its own
user-dir (``researches/ctc_unity``) with fairseq's own ``fairseq-train``, in a separate process:
StreamSpeech's user-dir and EchoStream's plugin register the same criterion name, so they never
share one.

Subcommands (recipes/streamspeech_compare/run.sh runs them in order):

* ``train``: StreamSpeech's ``streamspeech`` arch on an EchoStream corpus, matched to an EchoStream
  checkpoint: the same decoders (layers, dims, heads, unit upsampling), data, batches, optimiser,
  schedule, seed and update count; only the encoder differs (a chunked Conformer of about the
  Emformer's parameter count). Resumes from its ``checkpoint_last.pt``.
* ``evaluate``: both systems under the real ``simuleval``, each with its own agent (StreamSpeech's
  through the shims of recipes/streamspeech_compare/), on the same test sentences at each source
  segment size, then scored alike by ``simuleval --score-only`` with EchoStream's offline ASR-BLEU
  scorer and SimulEval's latency scorers (plain and computation-aware).
* ``compute``: each agent's CPU time per source chunk along one long stream
  (recipes/streamspeech_compare/agent_chunk_cost.py).
* ``table``: the comparison table, dev losses at equal updates and the plot, from those runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import yaml

from echostream_fairseq.cli.common import (
    UserError, add_log_level_argument, positive_int, run_main, setup_logging,
)

logger = logging.getLogger(__name__)

#: the StreamSpeech commit whose interface EchoStream keeps (../shared/streamspeech-reference.md)
STREAMSPEECH_COMMIT = "375a73a"
USER_DIR = Path("researches") / "ctc_unity"
HARNESS = Path(__file__).resolve().parents[2] / "recipes" / "streamspeech_compare"
MATCHED_JSON = "matched.json"  # what the StreamSpeech run was matched to, written by train
SYSTEMS = ("streamspeech", "echostream")
OFFLINE = "offline"
OFFLINE_SEGMENT_MS = 100_000  # one segment holds a whole test sentence: both agents decode offline
#: what a kept summary must hold (a summary of an older harness is made again)
TEXT_SUMMARY_SCORES = ("text_BLEU", "source_WER")  # from the agents' extra output files
SUMMARY_SCORES = ("ECHOSTREAM_ASR_BLEU", *TEXT_SUMMARY_SCORES)
LATENCY_METRICS = ("AL", "LAAL", "StartOffset", "EndOffset", "ATD", "RTF")
ECHOSTREAM_AGENT = "echostream_fairseq.agents.speech_to_speech.EchoStreamSpeechToSpeechAgent"
ECHOSTREAM_TEXT_AGENT = "echostream_fairseq.agents.speech_to_text.EchoStreamSpeechToTextAgent"
TEXT = "text"  # eval/<tag>/<system>/text/<segment>/: each system's speech->text agent
# StreamSpeech's agent speaks each write's units at once (its CodeHiFiGAN, and shim 4 in its
# place); EchoStream's piper vocoder holds 12 phonemes (about a second) before it speaks the
# words so far. Both speak as soon as they can: EchoStream's speaks every complete word.
ECHOSTREAM_PHRASE_UNITS = 1


def check_streamspeech_src(src: Path) -> Path:
    """The StreamSpeech checkout given by ``--streamspeech-src``: it must hold the ctc_unity
    user-dir and the agent; a git checkout must be at :data:`STREAMSPEECH_COMMIT`."""
    src = src.resolve()
    for needed in (USER_DIR / "models" / "streamspeech_model.py",
                   Path("agent") / "speech_to_speech.streamspeech.agent.py"):
        if not (src / needed).is_file():
            raise UserError(f"{src}: not a StreamSpeech checkout ({needed} missing; "
                            f"--streamspeech-src)")
    if (src / ".git").exists():
        head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
        if head and not head.startswith(STREAMSPEECH_COMMIT):
            raise UserError(f"{src}: at commit {head[:12]}, the comparison is defined at "
                            f"{STREAMSPEECH_COMMIT} (git -C {src} checkout {STREAMSPEECH_COMMIT})")
    return src


def _echostream_cfg(checkpoint: str) -> dict:
    """The fairseq config of the EchoStream run to match (a training checkpoint, or a shipped
    model's name: its file keeps the config it was trained with)."""
    from echostream_fairseq.checkpoint_safety import safe_torch_load
    from echostream_fairseq.shipped import describe_missing
    path = _shipped(checkpoint)
    if not path.is_file():
        raise UserError(describe_missing(checkpoint))
    state = safe_torch_load(path)
    cfg = state.get("cfg")
    if not cfg or "model" not in cfg:
        raise UserError(f"{checkpoint}: has no fairseq config to match (--match-checkpoint)")
    updates = (state.get("optimizer_history") or [{}])[-1].get("num_updates")
    return {"cfg": cfg, "num_updates": updates}


def _flag(name: str) -> str:
    """The fairseq flag of a config field: ``warmup_updates`` -> ``--warmup-updates``."""
    return f"--{name.replace('_', '-')}"


def _field_reader(section: Any) -> Callable[[str], Any]:
    """A config section's fields by name, whether the section is a dict or a Namespace."""
    if isinstance(section, dict):
        return section.__getitem__
    return lambda name: getattr(section, name)


def _copied(read: Callable[[str], Any], *names: str) -> List[str]:
    """``--name value`` for each field, under the name it has in the EchoStream config."""
    return [item for name in names for item in (_flag(name), str(read(name)))]


def _scheduler_options(scheduler: Any) -> List[str]:
    """The learning-rate scheduler's own fields as fairseq flags, whatever the scheduler."""
    options = []
    for key, value in dict(scheduler).items():
        if key in ("_name", "lr") or value is None:
            continue
        if isinstance(value, bool):
            options += [_flag(key)] if value else []
        else:
            options += [_flag(key), str(value)]
    return options


def streamspeech_train_args(cfg: Any, data: Path, save_dir: Path, max_update: int,
                            conformer_layers: int) -> List[str]:
    """``fairseq-train`` arguments for StreamSpeech's model matched to an EchoStream run's config.

    Everything but the encoder comes from the EchoStream run. The Conformer keeps the Emformer's
    width, FFN and heads and StreamSpeech's own encoder options (espnet rel-pos attention, causal
    chunks of the Emformer's segment length, multichunk training); its depth is the parameter
    match: a Conformer layer (two FFNs, a convolution module) holds about 2.2 Emformer layers.
    """
    dataset, optim, scheduler = cfg["dataset"], cfg["optimization"], cfg["lr_scheduler"]
    m, t = _field_reader(cfg["model"]), _field_reader(cfg["task"])
    c, d = _field_reader(cfg["criterion"]), _field_reader(dataset)
    args = [
        str(data), "--user-dir", "<user-dir>",
        *_copied(t, "config_yaml", "multitask_config_yaml", "target_code_size",
                 "max_source_positions", "max_target_positions"),
        "--task", "speech_to_speech_ctc", "--target-is-code", "--vocoder", "code_hifigan",
        "--criterion", "speech_to_unit_2pass_ctc_asr_st",
        *_copied(c, "label_smoothing", "rdrop_alpha", "k1", "k2", "n1", "n2"),
        "--arch", "streamspeech", "--encoder-layers", str(conformer_layers),
        "--attn-type", "espnet", "--pos-enc-type", "rel_pos", "--chunk-size",
        str(m("segment_length")),
        *_copied(m, "encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_attention_heads",
                 "conv_channels", "conv_kernel_sizes", "translation_decoder_layers",
                 "synthesizer_encoder_layers", "decoder_layers", "decoder_embed_dim",
                 "decoder_ffn_embed_dim", "decoder_attention_heads", "ctc_upsample_rate",
                 "dropout", "attention_dropout"),
        "--relu-dropout", str(m("activation_dropout")),
        *_copied(d, "train_subset", "valid_subset", "max_tokens", "required_batch_size_multiple",
                 "validate_interval_updates"),
        "--validate-interval", "1",
        "--save-dir", str(save_dir), "--save-interval", "1", "--save-interval-updates", "1000",
        "--keep-interval-updates", "2", "--keep-last-epochs", "1",
        "--no-progress-bar", "--log-format", "json", "--log-interval", "50",
        "--optimizer", "adam", "--adam-betas", str(cfg["optimizer"]["adam_betas"]),
        "--lr", str(optim["lr"][0]), "--clip-norm", str(optim["clip_norm"]),
        "--lr-scheduler", scheduler["_name"], *_scheduler_options(scheduler),
        "--update-freq", str(optim["update_freq"][0]),
        "--max-update", str(max_update), "--seed", str(cfg["common"]["seed"]),
    ]
    if dataset.get("batch_size"):
        args += ["--batch-size", str(dataset["batch_size"])]
    if cfg["criterion"].get("multichunk"):
        args.append("--multichunk")
    if m("uni_encoder"):
        args.append("--uni-encoder")
    if m("share_decoder_input_output_embed"):
        args.append("--share-decoder-input-output-embed")
    return args


def cmd_train(args: argparse.Namespace) -> int:
    src = check_streamspeech_src(args.streamspeech_src)
    matched = _echostream_cfg(args.checkpoint)
    max_update = args.max_update or matched["num_updates"]
    if not max_update:
        raise UserError(f"{args.checkpoint}: records no update count; give --max-update")
    data = args.data_dir.resolve()
    if not (data / f"{matched['cfg']['dataset']['train_subset']}.tsv").is_file():
        raise UserError(f"{data}: has no {matched['cfg']['dataset']['train_subset']}.tsv "
                        "(--data-dir: the corpus the EchoStream run was trained on)")
    save_dir = (args.output_dir / "streamspeech" / "checkpoints").resolve()
    save_dir.mkdir(parents=True, exist_ok=True)
    train_args = streamspeech_train_args(matched["cfg"], data, save_dir, max_update,
                                         args.conformer_layers)
    train_args[train_args.index("<user-dir>")] = str(src / USER_DIR)
    train_args += (["--cpu", "--num-workers", "0"] if args.device == "cpu"
                   else ["--num-workers", "3"])
    train_args += ["--log-file", str((args.output_dir / "streamspeech" / "train.log").resolve())]
    train_args += args.fairseq_args
    env = dict(os.environ, OMP_NUM_THREADS=str(args.num_threads),
               MKL_NUM_THREADS=str(args.num_threads))
    command = [sys.executable, str(HARNESS / "streamspeech_train.py"), *train_args]
    matched_json = args.output_dir / "streamspeech" / MATCHED_JSON
    matched_json.write_text(json.dumps({"matched_checkpoint": str(args.checkpoint),
                                        "max_update": max_update,
                                        "conformer_layers": args.conformer_layers,
                                        "command": command}, indent=1) + "\n")
    logger.info("StreamSpeech training, %d updates to match %s: %s", max_update,
                args.checkpoint, " ".join(command))
    return subprocess.run(command, cwd=src, env=env).returncode


def segment_ms(chunk: str) -> int:
    return OFFLINE_SEGMENT_MS if chunk == OFFLINE else int(chunk)


def simuleval_test_lists(data_dir: Path, out_dir: Path, max_utterances: Optional[int]) -> tuple:
    """The SimulEval source and target lists of the test set's first ``max_utterances`` (written
    to ``out_dir``), their count, and the German source texts of the same wavs (from
    ``test_sampled.tsv``, by utterance id: the wav's name), for the streaming ASR's WER."""
    from echostream_fairseq.data.manifests import read_tsv

    split = data_dir / "simuleval" / "test"
    lists = []
    for name in ("wav_list.txt", "target.txt"):
        path = split / name
        if not path.is_file():
            raise UserError(f"{path}: missing (--data-dir: a corpus built by echostream-prepare)")
        lines = path.read_text().splitlines()
        lists.append(lines[:max_utterances] if max_utterances else lines)
    if len(lists[0]) != len(lists[1]):
        raise UserError(f"{split}: wav_list.txt and target.txt differ in length")
    manifest = data_dir / "test_sampled.tsv"
    german = {row["id"]: row["src_text"] for row in read_tsv(manifest)}
    missing = [wav for wav in lists[0] if Path(wav).stem not in german]
    if missing:
        raise UserError(f"{manifest}: no row for {missing[0]} (id {Path(missing[0]).stem})")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, lines in zip(("wav_list.txt", "target.txt"), lists):
        (out_dir / name).write_text("\n".join(lines) + "\n")
        paths.append(out_dir / name)
    return paths[0], paths[1], len(lists[0]), [german[Path(wav).stem] for wav in lists[0]]


def text_scores(extra_dir: Path, targets: List[str], sources: List[str]) -> Dict[str, float]:
    """Text BLEU of the final translations and WER of the final streaming ASR, from an agent's
    ``--extra-output-dir`` (``st.txt``, ``asr.txt``: a line an input), normalised and scored as
    every EchoStream figure (:func:`echostream_fairseq.scoring.asr_bleu.score_texts`)."""
    from echostream_fairseq.scoring.asr_bleu import score_texts

    texts = {}
    for name, references in (("st", targets), ("asr", sources)):
        path = extra_dir / f"{name}.txt"
        lines = path.read_text().splitlines() if path.is_file() else []
        if len(lines) != len(references):
            raise RuntimeError(f"{path}: {len(lines)} lines for {len(references)} inputs")
        texts[name] = lines
    return {"text_BLEU": score_texts(texts["st"], targets).bleu,
            "source_WER": score_texts(texts["asr"], sources).wer}


def streamspeech_agent_options(src: Path, checkpoint: Path, data_dir: Path,
                               vocoder_json: Optional[Path]) -> List[str]:
    """StreamSpeech's agent options as its simuleval.simul-s2st.sh passes them, with 16 kHz input
    and the piper unit vocoder (shim 4) named by a placeholder vocoder file; without one, its
    speech->text agent (simuleval.simul-s2tt.sh's options)."""
    agent = "streamspeech_agent.py" if vocoder_json else "streamspeech_s2tt_agent.py"
    options = ["--agent", str(HARNESS / agent), "--model-path", str(checkpoint),
               "--data-bin", str(data_dir), "--config-yaml", "config_gcmvn.yaml",
               "--multitask-config-yaml", "config_mtl_asr_st_ctcst.yaml",
               "--user-dir", str(src / USER_DIR), "--agent-dir", str(src / "agent")]
    if vocoder_json:
        options += ["--vocoder", str(vocoder_json), "--vocoder-cfg", str(vocoder_json),
                    "--dur-prediction"]
    return options + ["--sample-rate", "16000", "--device", "cpu"]


def echostream_agent_options(checkpoint: str, decode_config: Path, num_threads: int,
                             vocoder_config: Optional[Path],
                             single_sentence: bool = True) -> List[str]:
    """EchoStream's speech->speech agent, or without a vocoder config its speech->text agent."""
    options = ["--agent-class", ECHOSTREAM_AGENT if vocoder_config else ECHOSTREAM_TEXT_AGENT,
               "--checkpoint", checkpoint, "--decode-config", str(decode_config),
               "--num-threads", str(num_threads)]
    if vocoder_config:
        options += ["--vocoder-config", str(vocoder_config)]
    return options + (["--single-sentence"] if single_sentence else [])


def _echostream_vocoder_config(exp: Path) -> Path:
    """The data config that gives EchoStream's agent the piper voice speaking every complete
    word at once (``ECHOSTREAM_PHRASE_UNITS``)."""
    path = exp / "eval" / "echostream_vocoder.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"vocoder": {"type": "piper_phonemes",
                                                "phrase_units": ECHOSTREAM_PHRASE_UNITS}}))
    return path


def _environment(src: Optional[Path], num_threads: int) -> Dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(num_threads), MKL_NUM_THREADS=str(num_threads))
    if src is not None:
        env["STREAMSPEECH_SRC"] = str(src)
    return env


def _simuleval() -> str:
    return str(Path(sys.executable).with_name("simuleval"))


def _run(command: List[str], cwd: Path, env: Dict[str, str], log: Path) -> None:
    logger.info("running: %s (log %s)", " ".join(command), log)
    with open(log, "w") as handle:
        status = subprocess.run(command, cwd=cwd, env=env, stdout=handle,
                                stderr=subprocess.STDOUT).returncode
    if status != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"exit status {status}: {' '.join(command[:4])} ...; "
                           f"{log}:\n" + "\n".join(tail))


def score_run(out: Path, quality: str = "ECHOSTREAM_ASR_BLEU") -> Dict[str, float]:
    """Score a finished SimulEval run as ``simuleval --score-only`` does (which only prints), in
    this process: ``quality`` (speech: EchoStream's offline ASR-BLEU, Whisper tiny.en from a
    registry package; text: SimulEval's BLEU) and SimulEval's latency scorers, plain and
    computation-aware; written to ``scores.tsv``."""
    from simuleval import options
    from simuleval.evaluator import SentenceLevelEvaluator

    from echostream_fairseq.scoring import simuleval_scorers

    logger.debug("scorers of %s registered", simuleval_scorers.__name__)
    instances = [json.loads(line) for line in (out / "instances.log").read_text().splitlines()]
    if not any(instance.get("prediction_length", 0) > 0 for instance in instances):
        # SimulEval's latency scorers divide by zero when no sentence has any speech
        logger.warning("%s: no sentence has any output: %s 0, latency undefined", out, quality)
        return {quality: 0.0}
    argv = ["--score-only", "--output", str(out), "--quality-metrics", quality,
            "--latency-metrics", *LATENCY_METRICS, "--computation-aware"]
    parser = options.general_parser()
    options.add_evaluator_args(parser)
    options.add_scorer_args(parser, argv)
    options.add_dataloader_args(parser, argv)
    results = SentenceLevelEvaluator.from_args(parser.parse_args(argv)).results
    results.to_csv(out / "scores.tsv", sep="\t", index=False)
    return {key: float(value) for key, value in results.iloc[0].to_dict().items()}


def evaluate_one(system: str, chunk: str, agent_options: List[str], lists: tuple,
                 out: Path, env: Dict[str, str], cwd: Path, label: Dict[str, Any],
                 text_output: bool = False) -> dict:
    """One system at one segment size: SimulEval run, then scoring; a summary with the same
    ``label`` (checkpoint path, update count and contents' hash, decoding) is kept instead."""
    summary_path = out / "summary.json"
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        scored = TEXT_SUMMARY_SCORES if text_output else SUMMARY_SCORES
        if (all(summary.get(key) == value for key, value in label.items())
                and all(key in summary["scores"] for key in scored)):
            return summary
        logger.info("%s: made with another checkpoint or decoding, run again", out)
    if out.exists():
        shutil.rmtree(out)  # SimulEval appends to instances.log: an interrupted run starts over
    (out / "extra").mkdir(parents=True)  # StreamSpeech's agent appends to files it expects there
    source, target, count, german = lists
    _run([_simuleval(), *agent_options, "--extra-output-dir", str(out / "extra"),
          "--source", str(source), "--target", str(target),
          "--source-segment-size", str(segment_ms(chunk)), "--output", str(out), "--no-scoring",
          "--computation-aware"], cwd, env, out / "run.log")
    scores = score_run(out, "BLEU" if text_output else "ECHOSTREAM_ASR_BLEU")
    scores.update(text_scores(out / "extra", target.read_text().splitlines(), german))
    summary = {"system": system, "chunk": chunk, "utterances": count, **label,
               "output": TEXT if text_output else "speech", "scores": scores}
    tmp = summary_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    tmp.replace(summary_path)
    return summary


def first_output_shifts(main_dir: Path, variant_runs: Sequence[Path]) -> List[dict]:
    """Sentence by sentence, how a variant's evaluation moved the first output against the main
    one of the same segment size (``main_dir/<segment>`` or ``main_dir/text/<segment>``): the
    median of (variant - main) first delays over the sentences both put something out for, how
    many of those started earlier and later, how many put out nothing in either run, and how
    many translations (the agents' ``st.txt``) are identical. An aggregate such as AL also moves
    with what is written; this isolates when the output starts."""
    import statistics

    def instances(run: Path) -> Dict[int, dict]:
        lines = (run / "instances.log").read_text().splitlines()
        return {item["index"]: item for item in map(json.loads, filter(str.strip, lines))}

    def translations(run: Path) -> List[str]:
        return (run / "extra" / "st.txt").read_text().splitlines()

    rows = []
    for run in sorted(variant_runs, key=lambda r: (r.parent.name == TEXT, segment_ms(r.name))):
        main = main_dir / (TEXT if run.parent.name == TEXT else "") / run.name
        if run.name == OFFLINE or not (main / "summary.json").is_file():
            continue
        ours, theirs = instances(main), instances(run)
        if sorted(ours) != sorted(theirs):
            raise UserError(f"{run}: its sentences are not those of {main} (another "
                            "--max-utterances or test set)")
        firsts = [(ours[i]["delays"][0], theirs[i]["delays"][0]) for i in sorted(ours)
                  if ours[i]["delays"] and theirs[i]["delays"]]
        rows.append({"chunk": run.name, "output": TEXT if run.parent.name == TEXT else "speech",
                     "sentences": len(ours),
                     "median_first_shift_ms": (statistics.median(b - a for a, b in firsts)
                                               if firsts else None),
                     "earlier": sum(b < a for a, b in firsts),
                     "later": sum(b > a for a, b in firsts),
                     "silent_in_either": len(ours) - len(firsts),
                     "identical_translations": sum(
                         a == b for a, b in zip(translations(main), translations(run)))})
    return rows


def _updates(checkpoint: Path) -> Optional[int]:
    from echostream_fairseq.checkpoints import read_model_state
    return read_model_state(checkpoint)[1]["num_updates"]


def _checkpoint_label(checkpoint: Path) -> Dict[str, Any]:
    """What identifies the model an evaluation ran: a retrained checkpoint keeps its path and
    may reach the same update count, so its contents' hash decides."""
    from echostream_fairseq.shipped import file_sha256
    return {"checkpoint": str(checkpoint), "updates": _updates(checkpoint),
            "checkpoint_sha256": file_sha256(checkpoint)}


def _streamspeech_src(args: argparse.Namespace) -> Optional[Path]:
    """The checked StreamSpeech checkout, required only when its system runs."""
    if "streamspeech" not in args.systems:
        return args.streamspeech_src.resolve() if args.streamspeech_src else None
    if args.streamspeech_src is None:
        raise UserError("--streamspeech-src: needed to run StreamSpeech's agent")
    return check_streamspeech_src(args.streamspeech_src)


def _agents_setup(args: argparse.Namespace) -> tuple:
    """What running either agent needs, checked before any work: ``(streamspeech_src,
    streamspeech_checkpoint, placeholder_vocoder_json, echostream_checkpoint_file)``."""
    src = _streamspeech_src(args)
    exp = args.output_dir.resolve()
    ss_checkpoint = (args.streamspeech_checkpoint
                     or exp / "streamspeech" / "checkpoints" / "checkpoint_last.pt").resolve()
    if "streamspeech" in args.systems and not ss_checkpoint.is_file():
        raise UserError(f"{ss_checkpoint}: no StreamSpeech checkpoint (run the train "
                        "subcommand first, or give --streamspeech-checkpoint)")
    echo_checkpoint = _shipped(args.checkpoint)
    if not args.decode_config.is_file():
        raise UserError(f"{args.decode_config}: no such decode config (--decode-config)")
    # StreamSpeech's agent requires --vocoder and --vocoder-cfg (a JSON file); shim 4 ignores them
    vocoder_json = exp / "eval" / "piper_vocoder.json"
    vocoder_json.parent.mkdir(parents=True, exist_ok=True)
    vocoder_json.write_text(json.dumps({"type": "piper_phonemes", "note": "replaced by "
                                        "streamspeech_shims.PiperUnitsForStreamSpeech"}) + "\n")
    return src, ss_checkpoint, vocoder_json, echo_checkpoint


def cmd_evaluate(args: argparse.Namespace) -> int:
    src, ss_checkpoint, vocoder_json, echo_checkpoint = _agents_setup(args)
    exp, data = args.output_dir.resolve(), args.data_dir.resolve()
    tag = f"test{args.max_utterances}" if args.max_utterances else "test"
    lists = simuleval_test_lists(data, exp / "eval" / tag, args.max_utterances)
    env = _environment(src, args.num_threads)
    repo = Path(__file__).resolve().parents[2]
    chunks = [str(ms) for ms in args.chunk_ms] + ([] if args.no_offline else [OFFLINE])
    for system in args.systems:
        for text_output in [False] + ([True] if args.text_output else []):
            if system == "streamspeech":
                options = streamspeech_agent_options(src, ss_checkpoint, data,
                                                     None if text_output else vocoder_json)
                label = _checkpoint_label(ss_checkpoint)
            else:
                vocoder = None if text_output else _echostream_vocoder_config(exp)
                options = echostream_agent_options(str(args.checkpoint),
                                                   args.decode_config.resolve(),
                                                   args.num_threads, vocoder)
                label = {**_checkpoint_label(echo_checkpoint),
                         "checkpoint": str(args.checkpoint),
                         "decode_config": str(args.decode_config)}
                if vocoder:
                    label["vocoder_phrase_units"] = ECHOSTREAM_PHRASE_UNITS
            for chunk in chunks:
                out = exp / "eval" / tag / system / (TEXT if text_output else "") / chunk
                summary = evaluate_one(system, chunk, options, lists, out, env,
                                       src if system == "streamspeech" else repo, label,
                                       text_output)
                scores = summary["scores"]
                speech = ("text output" if text_output else
                          f"ASR-BLEU {scores.get('ECHOSTREAM_ASR_BLEU', float('nan')):.2f}")
                logger.info("%s %s: %s, text BLEU %.2f, AL %.0f, AL_CA %.0f", system, chunk,
                            speech, scores["text_BLEU"], scores.get("AL", float("nan")),
                            scores.get("AL_CA", float("nan")))
    return 0


def cmd_compute(args: argparse.Namespace) -> int:
    from echostream_fairseq.data.audio import write_wav
    from echostream_fairseq.evaluation.testset import joined_test_sentences

    src, ss_checkpoint, vocoder_json, echo_checkpoint = _agents_setup(args)
    exp = args.output_dir.resolve()
    env = _environment(src, 1)
    repo = Path(__file__).resolve().parents[2]
    out_dir = exp / "compute"
    out_dir.mkdir(parents=True, exist_ok=True)
    stream = out_dir / f"stream_{args.seconds:g}s.wav"
    write_wav(stream, joined_test_sentences(args.data_dir, args.seconds)[0])
    for system in args.systems:
        if system == "streamspeech":
            options = streamspeech_agent_options(src, ss_checkpoint, args.data_dir.resolve(),
                                                 vocoder_json)
            checkpoint = ss_checkpoint
        else:  # sentence after sentence: the mode that keeps decoding the whole stream
            options = echostream_agent_options(str(args.checkpoint),
                                               args.decode_config.resolve(), 1,
                                               _echostream_vocoder_config(exp),
                                               single_sentence=False)
            checkpoint = echo_checkpoint
        result = out_dir / f"{system}_{args.seconds:g}s_{args.chunk_ms}ms.json"
        _run([sys.executable, str(HARNESS / "agent_chunk_cost.py"), "--wav", str(stream),
              "--chunk-ms", str(args.chunk_ms), "--output-json", str(result), "--", *options],
             src if system == "streamspeech" else repo, env, result.with_suffix(".log"))
        measured = json.loads(result.read_text())
        measured.update(system=system, checkpoint=str(checkpoint), updates=_updates(checkpoint))
        result.write_text(json.dumps(measured, indent=1) + "\n")
        logger.info("%s: %s", system, result)
    return 0


DEV_HEADS = {"ASR CTC": "multitask_source_unigram_loss",
             "ST CTC": "multitask_ctc_target_unigram_loss",
             "MT CE": "multitask_target_unigram_loss",
             "total": "loss"}
COMPUTE_POINTS_S = (20.0, 60.0, 180.0)
DOC_BLOCK = "streamspeech_comparison"  # <!-- streamspeech_comparison:begin/end --> in --doc
README_BLOCK = "streamspeech_summary"  # the front page's lines, in --readme
EDGE_CHUNKS = 10  # chunks before a point whose cost is reported as that point's per-chunk cost


def dev_losses_at_equal_updates(logs: Dict[str, Path], valid_subset: str) -> List[dict]:
    """Per-head dev losses at every update count both of the first two runs (StreamSpeech's and
    EchoStream's) validated at; later runs (ablations) are added where they validated too.

    StreamSpeech's criterion logs its unit CTC loss only inside ``loss``/``nll_loss`` (its
    ``nll_loss`` tensor is the total, added to in place), so the unit head is compared through the
    total only."""
    from echostream_fairseq.training_logs import log_records

    by_run = {}
    for run, log in logs.items():
        if not log.is_file():
            raise UserError(f"{log}: no training log ({run})")
        records = log_records(log.read_text(errors="replace"), valid_subset, source=str(log))
        by_run[run] = {int(r["num_updates"]): r for r in records if "num_updates" in r}
    first, second = list(by_run.values())[:2]
    rows = []
    for updates in sorted(set(first) & set(second)):
        for run, records in by_run.items():
            if updates in records:
                rows.append({"updates": updates, "run": run,
                             **{head: records[updates].get(key)
                                for head, key in DEV_HEADS.items()}})
    return rows


def parse_run(text: str) -> tuple:
    """argparse type of ``--run LABEL=LOGFILE`` and ``--variant LABEL=OUTPUT_DIR``."""
    label, sep, path = text.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"expected LABEL=PATH, got {text!r}")
    return label, Path(path)


def training_progress(run_dir: Path) -> Optional[dict]:
    """How far StreamSpeech's run has got: the last update its log records, of how many."""
    from echostream_fairseq.training_logs import log_records

    log, matched = run_dir / "train.log", run_dir / MATCHED_JSON
    if not (log.is_file() and matched.is_file()):
        return None
    # the last checkpoint holds the count; the log's records come every --log-interval updates
    checkpoint = run_dir / "checkpoints" / "checkpoint_last.pt"
    done = _updates(checkpoint) if checkpoint.is_file() else None
    if done is None:
        records = log_records(log.read_text(errors="replace"), "train_inner", source=str(log))
        done = int(records[-1]["num_updates"]) if records else 0
    return {"updates": done, "of": json.loads(matched.read_text())["max_update"]}


def chunk_cost_summary(result: dict) -> List[dict]:
    """Per-chunk CPU cost (median, p95, max of the ``EDGE_CHUNKS`` chunks ending at or before each
    point) and compute RTF (all chunks up to the point / the point) at 20, 60 and 180 s."""
    import numpy as np

    positions = np.asarray(result["positions_s"])
    costs = np.asarray(result["chunk_cpu_s"])
    rows = []
    for point in COMPUTE_POINTS_S:
        upto = positions <= point + 1e-6
        if not upto.any() or positions[upto][-1] < point - result["chunk_ms"] / 1000:
            continue
        edge = costs[upto][-EDGE_CHUNKS:] * 1000
        rows.append({"seconds": point, "chunk_ms_p50": float(np.median(edge)),
                     "chunk_ms_p95": float(np.percentile(edge, 95)),
                     "chunk_ms_max": float(edge.max()),
                     "compute_rtf": float(costs[upto].sum() / point)})
    return rows


def _parameters(checkpoint: Path) -> Dict[str, int]:
    from echostream_fairseq.checkpoints import read_model_state

    weights, _ = read_model_state(checkpoint)
    encoder = sum(v.numel() for k, v in weights.items() if k.startswith("encoder."))
    return {"encoder": encoder, "total": sum(v.numel() for v in weights.values())}


def _fmt(value: Optional[float], digits: int) -> str:
    return "" if value is None or value != value else f"{value:.{digits}f}"


QUALITY_COLUMNS = (("ASR-BLEU", "ECHOSTREAM_ASR_BLEU", 2), ("text BLEU", "text_BLEU", 2),
                   ("source WER %", "source_WER", 1), ("AL", "AL", 0), ("AL_CA", "AL_CA", 0),
                   ("LAAL", "LAAL", 0), ("LAAL_CA", "LAAL_CA", 0),
                   ("StartOffset", "StartOffset", 0), ("StartOffset_CA", "StartOffset_CA", 0),
                   ("EndOffset", "EndOffset", 0), ("ATD", "ATD", 0))
TEXT_COLUMNS = tuple(c for c in QUALITY_COLUMNS if c[1] != "ECHOSTREAM_ASR_BLEU")


def _run_rows(runs: List[dict], columns: Sequence[tuple]) -> List[str]:
    lines = ["| system | updates | segment | " + " | ".join(c[0] for c in columns) + " |",
             "|---|---|---|" + "---|" * len(columns)]
    for run in runs:
        segment = run["chunk"] + ("" if run["chunk"] == OFFLINE else " ms")
        cells = [_fmt(run["scores"].get(key), digits) for _, key, digits in columns]
        lines.append(f"| {run['system']} | {run.get('updates', '')} | {segment} | "
                     + " | ".join(cells) + " |")
    return lines


def render_markdown(results: dict) -> str:
    lines = _run_rows(results["quality_latency"], QUALITY_COLUMNS)
    out = []
    progress = results.get("streamspeech_training")
    if progress:
        out += [f"StreamSpeech's matched training run: {progress['updates']:,} of "
                f"{progress['of']:,} updates done.", ""]
    out += ["### Quality and latency (speech output, ms)", "", *lines, ""]
    if results.get("text_latency"):
        out += ["### Latency of the text output (each system's speech->text agent, ms)", "",
                *_run_rows(results["text_latency"], TEXT_COLUMNS), ""]
    if results.get("variant_shifts"):
        out += ["### When each variant starts, sentence by sentence (against the echostream rows)",
                "", "| variant | output | segment | median shift of the first output (ms) | "
                "earlier | later | silent in either | identical translations | sentences |",
                "|---|---|---|---|---|---|---|---|---|"]
        for row in results["variant_shifts"]:
            out.append(f"| {row['variant']} | {row['output']} | {row['chunk']} ms | "
                       f"{_fmt(row['median_first_shift_ms'], 0)} | {row['earlier']} | "
                       f"{row['later']} | {row['silent_in_either']} | "
                       f"{row['identical_translations']} | {row['sentences']} |")
        out.append("")
    if results.get("compute"):
        out += ["### Compute per 320 ms chunk against stream length (CPU ms, one thread)", "",
                "| system | updates | stream | chunk p50 | chunk p95 | chunk max | compute RTF |",
                "|---|---|---|---|---|---|---|"]
        for system, rows in results["compute"].items():
            updates = results.get("compute_updates", {}).get(system, "")
            for row in rows:
                out.append(f"| {system} | {updates} | {row['seconds']:g} s | "
                           f"{row['chunk_ms_p50']:.1f} | "
                           f"{row['chunk_ms_p95']:.1f} | {row['chunk_ms_max']:.1f} | "
                           f"{row['compute_rtf']:.3f} |")
        out.append("")
    if results.get("dev_losses"):
        heads = list(DEV_HEADS)
        out += ["### Dev losses at equal updates", "",
                "| updates | run | " + " | ".join(heads) + " |", "|---|---|" + "---|" * len(heads)]
        for row in results["dev_losses"]:
            out.append(f"| {row['updates']} | {row['run']} | "
                       + " | ".join(_fmt(row.get(head), 2) for head in heads) + " |")
        out.append("")
    return "\n".join(out)


def render_summary(results: dict) -> str:
    """The front page's lines: both systems at 320 ms and their compute at the longest stream."""
    at_320 = {r["system"]: r for r in results["quality_latency"] if r["chunk"] == "320"}
    if not at_320:
        return "(no 320 ms evaluation yet)"
    parts = []
    for system in SYSTEMS:
        run = at_320.get(system)
        if run is None:
            continue
        scores = run["scores"]
        parts.append(f"{system} ({run.get('updates')} updates) ASR-BLEU "
                     f"{_fmt(scores.get('ECHOSTREAM_ASR_BLEU'), 2)}, text BLEU "
                     f"{_fmt(scores.get('text_BLEU'), 2)}, AL_CA {_fmt(scores.get('AL_CA'), 0)} ms")
    progress = results.get("streamspeech_training")
    if "streamspeech" not in at_320 and progress:
        parts.append(f"StreamSpeech's matched model is still training ({progress['updates']:,} of "
                     f"{progress['of']:,} updates), its rows come when it is done")
    lines = [f"At 320 ms on the first {results['utterances']} test sentences: "
             + "; ".join(parts) + "."]
    text_320 = [r for r in results.get("text_latency", [])
                if r["chunk"] == "320" and r["system"] in SYSTEMS]
    if text_320:
        lines.append("Their text, written by each system's speech->text agent: " + "; ".join(
            f"{r['system']} AL {_fmt(r['scores'].get('AL'), 0)} ms, AL_CA "
            f"{_fmt(r['scores'].get('AL_CA'), 0)} ms" for r in text_320) + ".")
    costs = {system: rows[-1] for system, rows in results.get("compute", {}).items() if rows}
    if costs:
        lines.append("CPU per 320 ms chunk at " + "; ".join(
            f"{row['seconds']:g} s into a stream: {system} {row['chunk_ms_p50']:.0f} ms median, "
            f"{row['chunk_ms_p95']:.0f} ms p95" for system, row in costs.items()) + ".")
    return "\n".join(lines) + "\n\nGenerated by `recipes/streamspeech_compare/run.sh --stage 5`."


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    markers = {"streamspeech": "s-", "echostream": "o-"}
    systems = list(dict.fromkeys(r["system"] for r in results["quality_latency"]))
    for system in systems:  # variants: EchoStream's marker, dashed
        markers.setdefault(system, "o--")
    for axis, latency in zip(axes[:2], ("AL", "AL_CA")):
        for system in systems:
            runs = [r for r in results["quality_latency"] if r["system"] == system
                    and r["chunk"] != OFFLINE]
            runs.sort(key=lambda r: int(r["chunk"]))
            runs = [r for r in runs if latency in r["scores"]]
            if runs:
                xs = [r["scores"][latency] for r in runs]
                ys = [r["scores"]["ECHOSTREAM_ASR_BLEU"] for r in runs]
                axis.plot(xs, ys, markers[system], alpha=0.8,
                          label=f"{system} ({runs[0].get('updates')} updates)")
                for x, y, run in zip(xs, ys, runs):  # the segment size at each point
                    axis.annotate(run["chunk"], (x, y), textcoords="offset points",
                                  xytext=(4, 4), fontsize=8)
        axis.set_xlabel(f"{latency} (ms)")
        axis.set_ylabel("ASR-BLEU")
        axis.set_title(f"quality vs {latency}")
        axis.legend(loc="upper left", fontsize=8)  # the low-latency corner holds points
    for system, result in results.get("compute_raw", {}).items():
        axes[2].plot(result["positions_s"], [c * 1000 for c in result["chunk_cpu_s"]],
                     markers[system][0], markersize=2,
                     label=f"{system} ({result.get('updates')} updates)")
    axes[2].set_xlabel("stream position (s)")
    axes[2].set_ylabel("CPU ms per 320 ms chunk")
    axes[2].set_yscale("log")
    axes[2].set_title("compute per chunk along one stream")
    axes[2].legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)


def cmd_table(args: argparse.Namespace) -> int:
    exp = args.output_dir.resolve()
    summaries = sorted((exp / "eval").glob("*/*/*/summary.json"))
    tag = f"test{args.max_utterances}" if args.max_utterances else "test"
    summaries = [p for p in summaries if p.parts[-4] == tag]
    if not summaries:
        raise UserError(f"{exp / 'eval' / tag}: no finished evaluation (run the evaluate "
                        "subcommand with the same --max-utterances)")
    order = {c: i for i, c in enumerate(["160", "320", "640", "1280", OFFLINE])}

    def ordered(paths: Sequence[Path]) -> List[dict]:
        runs = [json.loads(p.read_text()) for p in paths]
        return sorted(runs, key=lambda r: (SYSTEMS.index(r["system"]), order.get(r["chunk"], 99)))

    runs = ordered(summaries)
    checkpoints = {r["system"]: r["checkpoint"] for r in runs}  # before the variants' rows
    text_runs = ordered(sorted((exp / "eval" / tag).glob(f"*/{TEXT}/*/summary.json")))
    shifts = []
    for label, variant_dir in args.variant:  # EchoStream's rows of another decoding or model
        found = sorted((variant_dir / "eval" / tag / "echostream").glob("*/summary.json"))
        if not found:
            raise UserError(f"{variant_dir / 'eval' / tag / 'echostream'}: no finished "
                            f"evaluation (--variant {label})")
        for rows, paths in ((runs, found), (text_runs, sorted(
                (variant_dir / "eval" / tag / "echostream" / TEXT).glob("*/summary.json")))):
            rows += [{**run, "system": f"echostream, {label}"} for run in ordered(paths)]
            shifts += [{"variant": label, **row} for row in first_output_shifts(
                exp / "eval" / tag / "echostream", [p.parent for p in paths])]
    results = {"eval_tag": summaries[0].parts[-4], "utterances": runs[0]["utterances"],
               "quality_latency": runs, "text_latency": text_runs,
               "parameters": {s: _parameters(_shipped(c)) for s, c in checkpoints.items()},
               "compute": {}, "compute_raw": {}, "variant_shifts": shifts}
    for system in SYSTEMS:
        found = sorted(((args.compute_from or exp) / "compute").glob(f"{system}_*s_*ms.json"))
        if found:
            raw = json.loads(found[-1].read_text())
            results["compute"][system] = chunk_cost_summary(raw)
            results["compute_raw"][system] = raw
            results.setdefault("compute_updates", {})[system] = raw.get("updates")
    results["streamspeech_training"] = training_progress(exp / "streamspeech")
    if args.train_log and (exp / "streamspeech" / "train.log").is_file():
        results["dev_losses"] = dev_losses_at_equal_updates(
            {"streamspeech": exp / "streamspeech" / "train.log", "echostream": args.train_log,
             **dict(args.run)}, args.valid_subset)
    markdown = render_markdown(results)
    # every page is rewritten in memory first: a bad --doc or --readme leaves every file as it was
    pages = {path: _with_block(path, block, content) for path, block, content in (
        (args.doc, args.doc_block, markdown), (args.readme, README_BLOCK, render_summary(results)))
        if path is not None}
    if args.plot:
        plot(results, args.plot)
    if args.output:
        saved = {k: v for k, v in results.items() if k != "compute_raw"}
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(saved, indent=1) + "\n")
    for path, text in pages.items():
        path.write_text(text)
    print(markdown)
    return 0


def _with_block(path: Path, block: str, content: str) -> str:
    """The text of ``path`` with its generated ``block`` replaced by ``content``."""
    from echostream_fairseq.evaluation.report import replace_between_markers

    try:
        return replace_between_markers(path.read_text(), content, block)
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: {error}") from error


def _shipped(spec: str) -> Path:
    from echostream_fairseq.shipped import checkpoint_file
    return checkpoint_file(spec)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="echostream-compare-streamspeech",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    commands = {
        "train": sub.add_parser("train", help="train StreamSpeech's model matched to an EchoStream "
                                "run", description="Arguments after -- go to fairseq-train."),
        "evaluate": sub.add_parser("evaluate", help="both agents under simuleval, scored alike"),
        "compute": sub.add_parser("compute", help="CPU time per chunk along one long stream"),
        "table": sub.add_parser("table", help="the tables and the plot from finished runs"),
    }
    for name, command in commands.items():
        a = command.add_argument
        command.set_defaults(func=globals()[f"cmd_{name}"])
        add_log_level_argument(command)
        a("--output-dir", type=Path, default=Path("exp/streamspeech_compare"),
          help="the comparison's folder: StreamSpeech's run, the evaluations, the compute runs "
               "(default exp/streamspeech_compare)")
        if name == "table":
            continue
        a("--streamspeech-src", type=Path, required=name == "train",
          help=f"a StreamSpeech checkout at commit {STREAMSPEECH_COMMIT}"
               + ("" if name == "train" else " (needed when --systems has streamspeech)"))
        a("--data-dir", type=Path, required=True,
          help="the corpus (StreamSpeech layout) the EchoStream model was trained on")
    a = commands["train"].add_argument
    a("--checkpoint", required=True,
      help="the EchoStream checkpoint (or shipped model name) whose config and update count "
           "are matched")
    a("--conformer-layers", type=positive_int, default=3,
      help="Conformer depth (default 3: the Emformer's parameter count at echostream_mini's width)")
    a("--max-update", type=positive_int, help="updates (default: the matched checkpoint's)")
    a("--device", choices=("cpu", "cuda"), default="cpu")
    a("--num-threads", type=positive_int, default=2, help="torch CPU threads (default 2)")
    for name in ("evaluate", "compute"):
        a = commands[name].add_argument
        a("--checkpoint", default="echostream-mini-de-en",
          help="EchoStream's checkpoint or shipped model name (default echostream-mini-de-en)")
        a("--streamspeech-checkpoint", type=Path,
          help="default: OUTPUT_DIR/streamspeech/checkpoints/checkpoint_last.pt")
        a("--decode-config", type=Path, default=Path("configs/decode/streamspeech_lead_in.yaml"),
          help="EchoStream's decoding (default StreamSpeech's own with EchoStream's frame "
               "lead-in)")
        a("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    a = commands["evaluate"].add_argument
    a("--chunk-ms", nargs="+", type=positive_int, default=[160, 320, 640, 1280],
      help="source segment sizes in ms (default 160 320 640 1280)")
    a("--no-offline", action="store_true", help="skip the offline run (one segment per sentence)")
    a("--text-output", action="store_true",
      help="also run each system's speech->text agent (latency of the text, no vocoder)")
    a("--max-utterances", type=positive_int, help="the first N test sentences (default all)")
    a("--num-threads", type=positive_int, default=1, help="torch CPU threads (default 1)")
    a = commands["compute"].add_argument
    a("--seconds", type=float, default=180.0, help="stream length (default 180)")
    a("--chunk-ms", type=positive_int, default=320, help="source segment size (default 320)")
    a = commands["table"].add_argument
    a("--max-utterances", type=positive_int,
      help="the evaluation on the first N test sentences (default: the one on all)")
    a("--train-log", type=Path, help="EchoStream's training log: dev losses at equal updates")
    a("--run", type=parse_run, action="append", default=[],
      help="LABEL=LOGFILE: another EchoStream run (an ablation) in the dev-loss table")
    a("--compute-from", type=Path,
      help="another comparison folder whose compute runs (the compute subcommand) the tables "
           "show, labelled with their update counts (default: --output-dir's)")
    a("--variant", type=parse_run, action="append", default=[],
      help="LABEL=OUTPUT_DIR: EchoStream's rows of another evaluation (the evaluate subcommand "
           "with another --decode-config or --checkpoint into OUTPUT_DIR), labelled 'echostream, "
           "LABEL'")
    a("--valid-subset", default="dev_sampled.units")
    a("--output", type=Path, help="the results as JSON")
    a("--plot", type=Path, help="PNG: quality against AL and AL_CA, compute per chunk")
    a("--doc", type=Path, help="a Markdown page whose --doc-block block is rewritten")
    a("--doc-block", default=DOC_BLOCK,
      help=f"the generated block of --doc: <!-- NAME:begin/end --> (default {DOC_BLOCK})")
    a("--readme", type=Path, help=f"a README whose {README_BLOCK!r} block is rewritten")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = build_parser().parse_args(argv[:len(argv) - len(extra) - (1 if extra or "--" in argv
                                                                     else 0)])
    if extra and args.command != "train":
        build_parser().error("arguments after -- are fairseq-train's (train only)")
    args.fairseq_args = extra
    setup_logging(args.log_level)
    return run_main(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
