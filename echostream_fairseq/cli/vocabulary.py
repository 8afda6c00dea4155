"""The one option vocabulary of EchoStream's commands (a test walks every parser against it).

A new option takes a name from :data:`FLAGS` when one means the same thing, or is added there;
an old spelling kept for existing command lines goes to :data:`DEPRECATED_ALIASES`, as a second
option string of the action whose first string is its replacement. Unit-mask options are spelled
``--unit-k2``/``--unit-n2`` only (fields ``unit_k2``/``unit_n2``).
"""

from __future__ import annotations

from typing import Dict

__all__ = ["DEPRECATED_ALIASES", "FLAGS"]

#: long option -> what it means, the same in every command that takes it
FLAGS: Dict[str, str] = {
    # inputs
    "--checkpoint": "an EchoStream (or StreamSpeech) fairseq checkpoint (.pt)",
    "--config": "a training recipe YAML (configs/train/*.yaml)",
    "--data-dir": "a corpus folder in StreamSpeech's layout (YAMLs, dictionaries, CMVN, vocoder)",
    "--manifest": "a manifest TSV (its folder is the corpus unless --data-dir)",
    "--train-manifest": "the training manifest TSV",
    "--dev-manifest": "the validation manifest TSV",
    "--wav": "one source wav",
    "--wav-list": "source wavs, one a line, in manifest order (SimulEval's source list)",
    "--vocoder": "a fitted vocoder file (vocoder.npz)",
    "--vocoder-config": "a data config YAML naming the vocoder",
    "--asr-model-dir": "a faster-whisper model folder (default: the shipped tiny.en)",
    "--results-dir": "a folder of result summaries (recipes/<name>/results)",
    "--readme": "a README whose generated blocks are rewritten",
    "--ceilings": "corpus or measurement JSON files read as ceiling rows",
    "--run": "LABEL=LOGFILE of one training run",
    "--evaluation": "an echostream-evaluate report.json",
    "--train-log": "a fairseq-train --log-file",
    "--trained-on": "where a model was trained (for its card)",
    "--recipe": "the command that trained a model",
    # outputs
    "--output": "the output file",
    "--output-dir": "the output folder",
    "--save-dir": "the checkpoint folder",
    "--markdown": "also write a markdown table to this file",
    "--save-wavs": "keep some output wavs (a count or a folder)",
    "--label": "the model's name in tables",
    "--json": "print the findings as JSON instead of text",
    "--check": "write nothing; fail when the generated files are stale",
    "--block": "the README block to rewrite",
    "--summary": "the name of a result summary (RESULTS_DIR/NAME.json) to write",
    "--command": "the command recorded as what regenerates an output",
    # amount of work
    "--max-utterances": "only the first N utterances",
    "--max-pairs": "only this many sentence pairs",
    "--extra-pairs": "more training pairs from other sources (Ding sentences, phrases)",
    "--max-extra-pairs": "only this many of the extra pairs",
    "--unit-type": "the target unit inventory of a corpus",
    "--batch-size": "utterances per batch",
    "--num-threads": "torch (and recogniser) CPU threads",
    "--num-workers": "worker processes",
    "--chunk-ms": "source chunk size(s) in milliseconds",
    "--seconds": "input length(s) in seconds",
    "--baseline-seconds": "input lengths that also run the re-encoding baseline",
    "--minutes": "stream length in minutes",
    "--window-minutes": "minutes of stream per row of the report",
    "--host": "address the server binds",
    "--port": "port the server listens on",
    "--max-connections": "concurrent connections the server accepts",
    "--max-message-bytes": "largest websocket message the server accepts",
    "--max-stream-seconds": "source audio per stream the server accepts",
    "--max-batch": "streams per batched step at most",
    "--allowed-origins": "browser origins the server accepts",
    "--token": "a secret every stream must present",
    "--results-file": "also write the run as a RESULTS.md section (a results/*.json file)",
    "--batch-sizes": "streams per batch to measure, comma-separated",
    "--streams": "concurrent stream counts to measure, comma-separated",
    "--servers": "server processes to measure (behind nginx when more than one)",
    "--pause-ms": "sentence pause lengths to measure, comma-separated ms",
    "--gap-ms": "silence put between joined utterances, ms",
    "--max-update": "stop training after this many updates (fairseq's name)",
    "--time-budget-minutes": "stop (and save) after this much training time over all restarts",
    "--stage": "first stage to run",
    "--stop-stage": "last stage to run",
    # decoding (streaming/config.py: add_pipeline_arguments)
    "--decode-config": "a decoding settings YAML (configs/decode/*.yaml)",
    "--segment-length": "Emformer segment in encoder frames",
    "--stride-n": "CTC policy: tokens both CTC prefixes must grow by",
    "--lagging-k1": "CTC policy: subwords the MT output lags the ST-CTC",
    "--max-len-a": "MT length cap a * encoder frames + b: a",
    "--max-len-b": "MT length cap a * encoder frames + b: b",
    "--whole-word": "write complete target words only (auto/on/off)",
    "--unit-k2": "unit decoder mask at inference: extra T2U states each step waits for",
    "--unit-n2": "unit decoder mask at inference: block size",
    "--unit-blank-penalty": "subtracted from the unit CTC blank's log-probability",
    "--reencode": "StreamSpeech's re-encoding method (the baseline)",
    "--single-sentence": "one sentence per stream (SimulEval's per-sentence evaluation)",
    "--sentence-pause-ms": "ASR blanks that end a sentence, in ms",
    "--max-sentence-ms": "source after which a sentence ends anyway, in ms",
    "--no-speech": "text only: no T2U, vocoder or ASR-BLEU",
    "--source-text": "German text to translate instead of the gold test sentences",
    "--no-offline": "skip the whole-utterance condition",
    "--text-output": "also run the speech->text agents (the latency of the written text)",
    "--joined-speech-asr": "also score the streamed speech with its pieces joined",
    "--no-progress": "no progress bars",
    "--condition": "an evaluation condition folder (chunk_<N>ms or offline)",
    # training
    "--resume": "continue from SAVE_DIR/checkpoint_last.pt",
    "--init-from": "start a fresh run from parts of this checkpoint",
    "--load-encoder": "with --init-from: load the speech encoder",
    "--load-decoders": "with --init-from: load the decoders",
    "--freeze-decoders-updates": "train only the encoder for the first N updates",
    "--encoder-lr": "peak learning rate of the encoder",
    "--decoder-lr": "peak learning rate of the decoders",
    "--device": "where to run: auto, cpu or cuda",
    "--dry-run": "print the command and exit",
    "--valid-subset": "the validation subset name fairseq tags its records with",
    "--arch": "a registered model architecture",
    # corpus and vocoder
    "--seed": "random seed",
    "--num-units": "unit vocabulary size K",
    "--vocab-size": "sentencepiece vocabulary size",
    "--kmeans-utts": "train utterances sampled to fit k-means",
    "--skip-asr": "do not measure the ASR-BLEU ceiling",
    "--test-only": "build only the first N test sentences of the full corpus",
    "--no-fp16": "keep float32 weights",
    "--kind": "duration model kind",
    "--spectra-kind": "spectra model kind",
    "--min-count": "fewest examples for a context duration",
    "--spectra-min-count": "fewest examples for a context spectrum",
    "--spectra-rank": "principal directions kept of the context spectra",
    "--variants": "vocoder variants to score",
    "--ceiling": "also score the piper wavs",
    "--units": "the generate output holds units",
    "--config-yaml": "fairseq's data config file name, under the data folder",
    "--wav-dir": "where the vocoded wavs go",
    # the comparison with StreamSpeech (echostream-compare-streamspeech)
    "--streamspeech-src": "a StreamSpeech checkout (ictnlp/StreamSpeech)",
    "--streamspeech-checkpoint": "a checkpoint of StreamSpeech's own model",
    "--conformer-layers": "depth of StreamSpeech's Conformer encoder",
    "--systems": "which systems to run",
    "--plot": "a PNG plot to write",
    "--doc": "a Markdown page whose generated block is rewritten",
    "--extra-output-dir": "agents: final ASR, translation and units a line per input "
                          "(StreamSpeech's agents' option)",
    # benchmarks
    "--randomise": "add seeded noise of this scale to every weight",
    "--trim": "call malloc_trim at every mark",
    # every command
    "--log-level": "logging level",
    "--help": "argparse's help",
}

#: old spelling -> the name that replaces it (accepted for one release, not for new options)
DEPRECATED_ALIASES: Dict[str, str] = {
    "--test-manifest": "--manifest",  # the seed's `scripts/evaluate.py ... --test-manifest`
    "--chunk-sizes": "--chunk-ms",
    "--threads": "--num-threads",
    "--jobs": "--num-workers",
    "--out": "--output",
    "--out-png": "--output",
    "--out-table": "--markdown",
    "--max-utts": "--max-utterances",
    "--num": "--max-utterances",
}
