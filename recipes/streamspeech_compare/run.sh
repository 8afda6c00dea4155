#!/usr/bin/env bash
# EchoStream against StreamSpeech's own Conformer model on the same corpus (README.md here).
#
#   recipes/streamspeech_compare/run.sh --streamspeech-src /path/to/StreamSpeech   # stages 0-5
#   recipes/streamspeech_compare/run.sh --streamspeech-src DIR --stage 5          # the table only
#
# Stage 0 trains the EchoStream run compared (TRAIN_CONFIG, MATCH_UPDATES updates; resumes;
# --echostream-run DIR compares another run of the recipe instead, from stage 1 on),
# stage 1 StreamSpeech's model with its own code, matched to MATCH_CHECKPOINT's config
# (same decoders, data, batches, schedule, seed) for the same MATCH_UPDATES (resumes). The two
# are independent: on two cores, run them side by side (--stage 0 --stop-stage 0 and --stage 1
# --stop-stage 1, one thread each). Stage 2 runs both systems' agents under simuleval on the test
# set (and EchoStream's with each of VARIANTS' decodings), stage 3 their compute per chunk along
# one long stream, stage 4 trains EchoStream ablations for the dev-loss table, stage 5 writes
# RESULTS_JSON, the DOC_BLOCK tables of docs/streamspeech_comparison.md, PLOT and the README's
# summary. A finished stage leaves $EXP_DIR/.done/stage<N> (stage2_<variant> for each variant).
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=0
stop_stage=5
STREAMSPEECH_SRC=""                                         # a checkout at commit 375a73a
DATA_DIR=data/deen_ding                                     # the shipped model's corpus
EXP_DIR=exp/streamspeech_compare
MATCH_CHECKPOINT=echostream-mini-de-en   # whose training config StreamSpeech's run takes
# updates of both runs: the shipped model's 14,023 take 3-4 hours a run on this 2-core CPU;
# 3,333 (three epochs) fit one working session with both runs side by side
MATCH_UPDATES=14023
# the recipe: the shipped model's (its decoders, data, schedule) with the encoder layers the
# ablations chose (convolution module, ALiBi)
TRAIN_CONFIG=configs/train/echostream_mini_ding.yaml
TRAIN_THREADS=1        # torch threads of each training run
MAX_UTTERANCES=100     # test sentences evaluated (504: all)
CHUNK_MS="160 320 640 1280"   # and offline
# EchoStream decodes as StreamSpeech, with the frame lead-in (a segment is encoded as soon as
# its chunk is in; docs/streamspeech_comparison.md)
DECODE_CONFIG=configs/decode/streamspeech_lead_in.yaml
COMPUTE_SECONDS=180
# stage 4: EchoStream variants trained on the same data for the dev-loss table:
# NAME:flag=value,flag=value (fairseq-train flags, handed on by echostream-train, after
# TRAIN_CONFIG's), e.g. the earlier "left128:--left-context-length=128". The recipe without its
# convolution module and ALiBi (plain: the layers the shipped model has), with ALiBi only, with
# the convolution module only:
ABLATIONS="plain:--emformer-conv-kernel-size=0,--encoder-ffn-embed-dim=576,--position-bias=none
alibi:--emformer-conv-kernel-size=0,--encoder-ffn-embed-dim=576
conv31:--position-bias=none"
ABLATION_UPDATES=""    # default: MATCH_UPDATES
# stage 2: EchoStream evaluated with other decodings too, its rows beside the main ones:
# NAME:DECODE_CONFIG ..., into $EXP_DIR/variants/NAME, e.g. "no-lead-in:configs/decode/streamspeech.yaml"
VARIANTS=""
# stage 5: where the tables go
DOC_BLOCK=streamspeech_comparison     # the generated block of docs/streamspeech_comparison.md
RESULTS_JSON=recipes/streamspeech_compare/results/comparison.json
PLOT=docs/streamspeech_comparison.png
README=README.md                      # the front page's summary ("": none)
COMPUTE_FROM=""                       # another EXP_DIR whose stage 3 the tables show ("": this one)

while [ $# -gt 0 ]; do
  name=$(echo "${1#--}" | tr - _)
  [ "$name" != "$1" ] && [ $# -ge 2 ] || { echo "usage: $0 [--stage N] [--var value]" >&2; exit 2; }
  case $name in
    stage|stop_stage) eval "$name=\$2" ;;
    *) eval "${name^^}=\$2" ;;
  esac
  shift 2
done
[ -n "$STREAMSPEECH_SRC" ] || { echo "error: --streamspeech-src DIR is required" >&2; exit 2; }

PY=${PY:-.venv/bin/python}
CMP=("$PY" -m echostream_fairseq.cli.compare_streamspeech)
log() { echo "$(date '+%F %T') | $*"; }
run_stage() {
  [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ] || return 1
  if [ -f "$EXP_DIR/.done/stage$1" ]; then log "Stage $1: done before, skipped"; return 1; fi
}
done_stage() { mkdir -p "$EXP_DIR/.done"; touch "$EXP_DIR/.done/stage$1"; }

# train_echostream DIR UPDATES FLAGS...: an EchoStream run of TRAIN_CONFIG into DIR
train_echostream() {
  local dir=$1 updates=$2; shift 2
  OMP_NUM_THREADS=$TRAIN_THREADS "$PY" -m echostream_fairseq.cli.train --config "$TRAIN_CONFIG" \
    --train-manifest "$DATA_DIR/train_sampled.units.tsv" \
    --dev-manifest "$DATA_DIR/dev_sampled.units.tsv" --save-dir "$dir/checkpoints" \
    --device cpu --num-workers 0 --batch-size 16 --max-update "$updates" \
    --log-file "$dir/train.log" "$@"
}
# the EchoStream run compared: stage 0's by default; the recipe's own run (recipes/deen_mini,
# the same config, seed and batches) at a checkpoint of the matched update count for long budgets
ECHOSTREAM_RUN=${ECHOSTREAM_RUN:-$EXP_DIR/echostream}
ECHOSTREAM_CHECKPOINT=${ECHOSTREAM_CHECKPOINT:-$ECHOSTREAM_RUN/checkpoints/checkpoint_last.pt}
ABLATION_UPDATES=${ABLATION_UPDATES:-$MATCH_UPDATES}

if run_stage 0; then
  if [ "$ECHOSTREAM_RUN" != "$EXP_DIR/echostream" ]; then
    echo "error: stage 0 trains the comparison's own run ($EXP_DIR/echostream); $ECHOSTREAM_RUN" \
      "(--echostream-run) is trained by its own recipe: start at --stage 1" >&2
    exit 2
  fi
  log "Stage 0: EchoStream, $TRAIN_CONFIG, $MATCH_UPDATES updates (resumes)"
  train_echostream "$ECHOSTREAM_RUN" "$MATCH_UPDATES"
  done_stage 0
fi

if run_stage 1; then
  log "Stage 1: StreamSpeech's model, matched to $MATCH_CHECKPOINT, $MATCH_UPDATES updates (resumes)"
  "${CMP[@]}" train --streamspeech-src "$STREAMSPEECH_SRC" --checkpoint "$MATCH_CHECKPOINT" \
    --data-dir "$DATA_DIR" --output-dir "$EXP_DIR" --num-threads "$TRAIN_THREADS" \
    --max-update "$MATCH_UPDATES"
  done_stage 1
fi

if run_stage 2; then
  log "Stage 2: both systems' agents (speech and text output) under simuleval, $MAX_UTTERANCES test sentences, $CHUNK_MS ms, offline"
  # shellcheck disable=SC2086
  "${CMP[@]}" evaluate --streamspeech-src "$STREAMSPEECH_SRC" --data-dir "$DATA_DIR" \
    --output-dir "$EXP_DIR" --checkpoint "$ECHOSTREAM_CHECKPOINT" \
    --decode-config "$DECODE_CONFIG" --max-utterances "$MAX_UTTERANCES" --chunk-ms $CHUNK_MS \
    --text-output
  done_stage 2
fi
if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then  # each variant has its own marker
  for spec in $VARIANTS; do
    name=${spec%%:*}
    if [ -f "$EXP_DIR/.done/stage2_$name" ]; then
      log "Stage 2: variant $name done before, skipped"; continue
    fi
    log "Stage 2: EchoStream with ${spec#*:} ($name)"
    # shellcheck disable=SC2086
    "${CMP[@]}" evaluate --systems echostream --data-dir "$DATA_DIR" \
      --output-dir "$EXP_DIR/variants/$name" --checkpoint "$ECHOSTREAM_CHECKPOINT" \
      --decode-config "${spec#*:}" --max-utterances "$MAX_UTTERANCES" --chunk-ms $CHUNK_MS \
      --text-output
    done_stage "2_$name"
  done
fi

if run_stage 3; then
  log "Stage 3: compute per 320 ms chunk along a ${COMPUTE_SECONDS} s stream"
  "${CMP[@]}" compute --streamspeech-src "$STREAMSPEECH_SRC" --data-dir "$DATA_DIR" \
    --output-dir "$EXP_DIR" --checkpoint "$ECHOSTREAM_CHECKPOINT" \
    --decode-config "$DECODE_CONFIG" --seconds "$COMPUTE_SECONDS"
  done_stage 3
fi

runs=()
for spec in $ABLATIONS; do
  name=${spec%%:*}
  runs+=(--run "echostream, $name=$EXP_DIR/ablations/$name/train.log")
done
for spec in $VARIANTS; do
  runs+=(--variant "${spec%%:*}=$EXP_DIR/variants/${spec%%:*}")
done
if run_stage 4; then
  for spec in $ABLATIONS; do
    name=${spec%%:*}
    flags=${spec#*:}
    log "Stage 4: ablation $name (${flags//,/ }), $ABLATION_UPDATES updates"
    # shellcheck disable=SC2046
    train_echostream "$EXP_DIR/ablations/$name" "$ABLATION_UPDATES" $(echo "${flags//,/ }" | tr = ' ')
  done
  done_stage 4
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then  # no marker: it only renders
  log "Stage 5: $RESULTS_JSON, docs/streamspeech_comparison.md ($DOC_BLOCK) and $PLOT"
  "${CMP[@]}" table --output-dir "$EXP_DIR" --max-utterances "$MAX_UTTERANCES" \
    --train-log "$ECHOSTREAM_RUN/train.log" "${runs[@]}" \
    --output "$RESULTS_JSON" --doc docs/streamspeech_comparison.md --doc-block "$DOC_BLOCK" \
    --plot "$PLOT" ${README:+--readme "$README"} ${COMPUTE_FROM:+--compute-from "$COMPUTE_FROM"}
fi
