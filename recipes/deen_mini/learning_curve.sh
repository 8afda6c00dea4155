#!/usr/bin/env bash
# What more training buys (results/learning_curve.json, docs/training.md "What binds"): the
# recipe's checkpoints along its training, each streamed over the whole test set at 320 ms and
# offline, text only (the MT decoder's English and the German ASR; no voice, no Whisper), as the
# recipe's stage 4 scores a sentence.
#
#   recipes/deen_mini/learning_curve.sh \
#     1111=exp/streamspeech_compare/echostream/checkpoints/checkpoint1.pt \
#     11008=exp/deen_ding_conv/checkpoints/checkpoint_last.pt
#
# Each argument is UPDATES=CHECKPOINT (the update count labels the row and names its folder).
# Options: --data-dir (default data/deen_ding), --out-dir (exp/learning_curve), --num-threads
# (2); relative paths are from the repository root. A finished evaluation is reused (delete its
# folder to redo it); about a minute each on two threads.
set -euo pipefail
cd "$(dirname "$0")/../.."

DATA_DIR=data/deen_ding
OUT_DIR=exp/learning_curve
NUM_THREADS=2
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
usage() {
  echo "usage: $0 [--data-dir DIR] [--out-dir DIR] [--num-threads N] UPDATES=CHECKPOINT..." >&2
  exit 2
}
points=()
while [ $# -gt 0 ]; do
  case $1 in
    --data-dir|--out-dir|--num-threads)
      [ $# -ge 2 ] || usage
      case $1 in --data-dir) DATA_DIR=$2 ;; --out-dir) OUT_DIR=$2 ;; *) NUM_THREADS=$2 ;; esac
      shift ;;
    [0-9]*=*) points+=("$1") ;;
    *) usage ;;
  esac
  shift
done
[ ${#points[@]} -gt 0 ] || usage
seen=" "
for point in "${points[@]}"; do  # every argument checked before any work
  updates=${point%%=*} checkpoint=${point#*=}
  if ! [[ $updates =~ ^[1-9][0-9]*$ ]] || [[ $seen == *" $updates "* ]]; then
    echo "$0: $point: UPDATES must be a positive number, each once" >&2; exit 2
  fi
  seen+="$updates "
  [ -f "$checkpoint" ] || { echo "$0: $checkpoint: no such checkpoint" >&2; exit 2; }
done
export OMP_NUM_THREADS=1
log() { echo "$(date '+%F %T') $*"; }

reports=()
for point in "${points[@]}"; do
  updates=${point%%=*} checkpoint=${point#*=}
  out=$OUT_DIR/$updates
  if [ ! -f "$out/report.json" ]; then
    log "$checkpoint ($updates updates) -> $out"
    rm -rf "$out"
    $PY -m echostream_fairseq.cli.evaluate --checkpoint "$checkpoint" \
      --manifest "$DATA_DIR/test_sampled.tsv" --output-dir "$out" --chunk-ms 320 \
      --single-sentence --no-speech --batch-size 32 --num-threads "$NUM_THREADS" --no-progress \
      --decode-config configs/decode/streamspeech.yaml --label "$updates updates"
  fi
  reports+=("$out/report.json")
done
$PY -m echostream_fairseq.cli.results --results-dir recipes/deen_mini/results \
  --summary learning_curve --command "recipes/deen_mini/learning_curve.sh ${points[*]}" \
  "${reports[@]}"
$PY -m echostream_fairseq.cli.results --results-dir recipes/deen_mini/results --output RESULTS.md \
  --readme README.md
