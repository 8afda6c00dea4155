#!/usr/bin/env bash
# What the T2U hears (results/t2u_token_embeddings.json, docs/training.md): the shipped model's
# recipe (configs/train/echostream_mini_ding.yaml) trained without --t2u-token-embeddings up to
# a fork point, then continued side by side for the same updates with the T2U input as
# StreamSpeech has it (the MT decoder's states) and with the subword each state predicts added
# (the option); each arm's dev losses at the end and the reference text through its T2U
# (echostream-measure-t2u, the first dev sentences).
#
#   recipes/deen_mini/t2u_token_embeddings.sh                 # fork at 3000, 1000 more updates
#   recipes/deen_mini/t2u_token_embeddings.sh --fork-at 1000 --updates 500 --work-dir /tmp/t2u
#
# Needs the corpus of the shipped model's recipe (--data-dir, recipes/deen_mini/README.md).
# Resumable: each run resumes from its folder and a finished measurement is reused. On one
# CPU thread an update of batch 16 takes about 0.9 s; the two arms run side by side.
set -euo pipefail
cd "$(dirname "$0")/../.."

WORK_DIR=exp/t2u_token_embeddings
DATA_DIR=data/deen_ding
CONFIG=configs/train/echostream_mini_ding.yaml
FORK_AT=3000
UPDATES=1000
SENTENCES=50
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
while [ $# -gt 0 ]; do
  case $1 in
    --work-dir) WORK_DIR=$2 ;;
    --data-dir) DATA_DIR=$2 ;;
    --fork-at) FORK_AT=$2 ;;
    --updates) UPDATES=$2 ;;
    --sentences) SENTENCES=$2 ;;
    *) echo "usage: $0 [--work-dir DIR] [--data-dir DIR] [--fork-at N] [--updates N]" \
            "[--sentences N]" >&2; exit 2 ;;
  esac
  shift 2
done
export OMP_NUM_THREADS=1
log() { echo "$(date '+%F %T') $*"; }
train() {  # train SAVE_DIR MAX_UPDATE EXTRA...: the recipe's training, batches of 16, resumes
  local save=$1 updates=$2; shift 2
  $PY scripts/train.py --config "$CONFIG" --train-manifest "$DATA_DIR/train_sampled.units.tsv" \
    --dev-manifest "$DATA_DIR/dev_sampled.units.tsv" --save-dir "$save/checkpoints" \
    --num-workers 0 --batch-size 16 --max-update "$updates" --save-interval-updates "$FORK_AT" \
    --validate-interval-updates "$FORK_AT" --log-file "$save/train.log" "$@" \
    > "$save/stdout.log" 2>&1
}

mkdir -p "$WORK_DIR/states" "$WORK_DIR/tokens/checkpoints"
end=$((FORK_AT + UPDATES))
if [ ! -f "$WORK_DIR/tokens/checkpoints/checkpoint_last.pt" ]; then
  log "the shared start: $FORK_AT updates without the token embeddings ($WORK_DIR/states)"
  train "$WORK_DIR/states" "$FORK_AT" --no-t2u-token-embeddings
  cp "$WORK_DIR/states/checkpoints/checkpoint_last.pt" "$WORK_DIR/tokens/checkpoints/"
fi
log "both arms to update $end, side by side"
train "$WORK_DIR/states" "$end" --no-t2u-token-embeddings &
states=$!
train "$WORK_DIR/tokens" "$end"
wait "$states"
for arm in states tokens; do
  [ -f "$WORK_DIR/$arm/t2u.json" ] || \
    $PY scripts/measure_t2u.py --checkpoint "$WORK_DIR/$arm/checkpoints/checkpoint_last.pt" \
      --manifest "$DATA_DIR/dev_sampled.units.tsv" --max-utterances "$SENTENCES" --label "$arm" \
      --output "$WORK_DIR/$arm/t2u.json"
done
$PY recipes/deen_mini/t2u_token_embeddings.py --work-dir "$WORK_DIR" --fork-at "$FORK_AT" \
  --updates "$UPDATES" --output recipes/deen_mini/results/t2u_token_embeddings.json
$PY -m echostream_fairseq.cli.results --results-dir recipes/deen_mini/results --output RESULTS.md \
  --readme README.md
