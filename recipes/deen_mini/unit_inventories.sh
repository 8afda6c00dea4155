#!/usr/bin/env bash
# The unit-inventory comparison (results/unit_inventories.json, docs/corpus.md): one corpus, its
# target units made three ways (log-mel k-means, Whisper-encoder k-means, piper phoneme ids), each
# measured the same way: units per second and learnability statistics (corpus report),
# resynthesis of the ground-truth test units whole and streamed (echostream-measure-vocoder), and
# echostream_mini trained for the same number of updates on each (dev unit CTC loss, and the
# reference text through its T2U: echostream-measure-t2u).
#
#   recipes/deen_mini/unit_inventories.sh                        # 2,000 pairs, 400 updates
#   recipes/deen_mini/unit_inventories.sh --updates 200 --work-dir /tmp/units
#
# Resumable: the corpus builds resume and a finished step leaves its output, which is reused.
# On 2 CPU cores: about 10 min for the corpora and 8 min for the vocoder scores; each training
# takes about 5 s an update on one thread (the three run side by side).
set -euo pipefail
cd "$(dirname "$0")/../.."

WORK_DIR=exp/unit_inventories
MAX_PAIRS=2000
UPDATES=400
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
while [ $# -gt 0 ]; do
  case $1 in
    --work-dir) WORK_DIR=$2 ;;
    --max-pairs) MAX_PAIRS=$2 ;;
    --updates) UPDATES=$2 ;;
    *) echo "usage: $0 [--work-dir DIR] [--max-pairs N] [--updates N]" >&2; exit 2 ;;
  esac
  shift 2
done
export OMP_NUM_THREADS=1
KINDS="logmel whisper piper-phonemes"
log() { echo "$(date '+%F %T') $*"; }

log "corpora into $WORK_DIR/<units>/data ($MAX_PAIRS pairs; the speech is built once)"
$PY scripts/prepare_mini.py --data-dir "$WORK_DIR/logmel/data" --max-pairs "$MAX_PAIRS"
for kind in whisper piper-phonemes; do
  data=$WORK_DIR/$kind/data
  if [ ! -f "$data/report.json" ]; then
    mkdir -p "$WORK_DIR/$kind"
    rm -rf "$data" && cp -a "$WORK_DIR/logmel/data" "$data"
    rm -f "$data"/units/vocoder*.npz
  fi
  $PY scripts/prepare_mini.py --data-dir "$data" --max-pairs "$MAX_PAIRS" --unit-type "$kind" \
    --skip-asr
done

for kind in $KINDS; do
  data=$WORK_DIR/$kind/data
  variants="default default_stream8"
  [ "$kind" = piper-phonemes ] && variants="$variants phrase24_stream8"
  ceiling=--no-ceiling
  [ "$kind" = logmel ] && ceiling=--ceiling  # the piper wavs on the same sentences, once
  [ -f "$WORK_DIR/$kind/vocoder.json" ] || {
    log "resynthesis of $kind ground-truth test units"
    $PY scripts/measure_vocoder.py --data-dir "$data" --variants $variants $ceiling \
      --output "$WORK_DIR/$kind/vocoder.json"
  }
  [ "$kind" = piper-phonemes ] || [ -f "$data/units/vocoder.npz" ] || \
    $PY scripts/fit_vocoder.py --data-dir "$data"
done

log "echostream_mini, $UPDATES updates on each inventory (side by side, one thread each)"
pids=()
for kind in $KINDS; do
  data=$WORK_DIR/$kind/data run=$WORK_DIR/$kind/train
  mkdir -p "$run"
  $PY scripts/train.py --config configs/train/echostream_mini.yaml \
    --train-manifest "$data/train_sampled.units.tsv" --dev-manifest "$data/dev_sampled.units.tsv" \
    --save-dir "$run/checkpoints" --num-workers 0 --batch-size 8 --max-tokens 4000 \
    --warmup-updates 100 --max-update "$UPDATES" --save-interval-updates 100 \
    --validate-interval-updates 100 --keep-interval-updates 10 --log-interval 10 \
    --log-format simple --log-file "$run/train.log" > "$run/stdout.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done

for kind in $KINDS; do
  [ -f "$WORK_DIR/$kind/t2u.json" ] || \
    $PY scripts/measure_t2u.py --checkpoint "$WORK_DIR/$kind/train/checkpoints/checkpoint_last.pt" \
      --manifest "$WORK_DIR/$kind/data/dev_sampled.units.tsv" \
      --decode-config configs/decode/deen_mini.yaml --label "$kind" \
      --output "$WORK_DIR/$kind/t2u.json"
done

$PY recipes/deen_mini/unit_inventories.py --work-dir "$WORK_DIR" --updates "$UPDATES" \
  --output recipes/deen_mini/results/unit_inventories.json
$PY -m echostream_fairseq.cli.results --results-dir recipes/deen_mini/results --output RESULTS.md \
  --readme README.md
