#!/usr/bin/env bash
# German->English mini recipe: corpus, vocoder, training, dev sweep, test evaluation, ceilings,
# tables. Every published figure of RESULTS.md comes out of one of these stages.
#
#   recipes/deen_mini/run.sh                              # all stages, 0 to 6
#   recipes/deen_mini/run.sh --stage 3 --stop-stage 4     # only the dev sweep and the test set
#   recipes/deen_mini/run.sh --stage 6 --stop-stage 6     # re-render RESULTS.md and the README
#   recipes/deen_mini/run.sh --train-device cuda          # train as the published model was
#   recipes/deen_mini/run.sh --recipe-of-shipped-model ... # see README.md: the shipped model's run
#
# Any variable below can be set as --lower-case-name VALUE (e.g. --exp-dir, --data-dir).
# A stage that finished leaves $EXP_DIR/.done/stage<N>; it is skipped on the next run (delete the
# marker to redo it). Stage 6 only renders, so it always runs. Run from anywhere; paths are
# relative to the repository root. Needs: the Debian packages of scripts/install_system_deps.sh
# (espeak-ng, the two FreeDict dictionaries) and the package installed (`make setup`).
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=0
stop_stage=7
DATA_DIR=data                                  # the corpus (git-ignored, rebuilt by stage 0)
EXP_DIR=exp/deen_mini                          # everything the later stages write
RESULTS_DIR=recipes/deen_mini/results          # committed JSON summaries (stage 6)
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
TRAIN_CONFIG=configs/train/echostream_mini.yaml
DECODE_CHOSEN=configs/decode/deen_mini.yaml    # unit blank penalty 3, unit mask k2=2 (dev)
DECODE_DEFAULT=configs/decode/streamspeech.yaml
TRAIN_DEVICE=cpu       # cpu: batch 8, one thread (make train-mini); cuda: the published H100 run
TRAIN_MINUTES=120      # cpu training budget; the cuda run is bounded as published
BATCH_SIZE=8           # cpu training: utterances per update
NUM_THREADS=1          # torch threads of every CPU step (more are slower on shared machines)
UNIT_TYPE=logmel       # the published figures' units (the builder's default is now piper-phonemes)
EXTRA_PAIRS=""         # more training pairs: "ding" (Debian's trans-de-en sentences), "ding ding-phrases"
LABEL="echostream_mini, recipe run"
HEADLINE_ONLY=0        # 1: stage 4 only the headline's two runs (504 sentences, untrained), stage 5
                       # the reference text through T2U and the text-MT ceiling (phoneme units:
                       # no vocoder to measure)
TEXT_MT_UPDATES=4000   # stage 5 with HEADLINE_ONLY=1: updates of the text-MT ceiling model
MODEL_DIR=""           # stage 7 exports the trained model here (e.g. models/echostream-mini-de-en)
# the dev sweep: unit blank penalty : unit k2 : unit n2, the published combinations
SWEEP="0:0:1 0:0:1000 0:2:1 2:2:1 3:0:1 3:0:1000 3:1:1 3:2:1 4:0:1 4:2:1"

RECIPE_OPTIONS=""      # this run's options but the stage range: what the model card records
while [ $# -gt 0 ]; do  # icefall's parse_options.sh, reduced: --some-name VALUE sets some_name
  name=${1#--}; name=${name//-/_}
  [ "$name" != "$1" ] && [ $# -ge 2 ] || { echo "usage: $0 [--stage N] [--stop-stage M] [--var value]" >&2; exit 2; }
  upper=$(echo "$name" | tr '[:lower:]' '[:upper:]')
  if [ -n "${!name+x}" ]; then printf -v "$name" '%s' "$2"
  elif [ -n "${!upper+x}" ]; then printf -v "$upper" '%s' "$2"
  else echo "$0: unknown option $1" >&2; exit 2; fi
  case $name in stage|stop_stage) ;; *) RECIPE_OPTIONS+=" $1 ${2// /\\ }" ;; esac
  shift 2
done

CKPT=$EXP_DIR/checkpoints/checkpoint_best.pt
UNTRAINED=$EXP_DIR/untrained/checkpoints/checkpoint_last.pt
TRAIN_MANIFESTS=(--train-manifest "$DATA_DIR/train_sampled.units.tsv"
                 --dev-manifest "$DATA_DIR/dev_sampled.units.tsv")
export OMP_NUM_THREADS=$NUM_THREADS

log() { echo "$(date '+%F %T') $*"; }
run_stage() {  # run_stage N: true when stage N is selected and not done yet
  [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ] || return 1
  if [ -f "$EXP_DIR/.done/stage$1" ]; then
    log "Stage $1: done before ($EXP_DIR/.done/stage$1), skipped"; return 1
  fi
}
done_stage() { mkdir -p "$EXP_DIR/.done"; touch "$EXP_DIR/.done/stage$1"; }
evaluate() {  # evaluate OUTPUT_DIR CHECKPOINT OPTIONS...: one echostream-evaluate run
  local out=$1 checkpoint=$2; shift 2
  $PY -m echostream_fairseq.cli.evaluate --config "$TRAIN_CONFIG" --checkpoint "$checkpoint" \
    --manifest "$DATA_DIR/test_sampled.tsv" --output-dir "$EXP_DIR/eval/$out" \
    --num-threads "$NUM_THREADS" "$@"
}

if run_stage 0; then
  log "Stage 0: the mini corpus into $DATA_DIR (resumable; its own markers in $DATA_DIR)"
  # shellcheck disable=SC2086  # EXTRA_PAIRS is a list of words
  $PY scripts/prepare_mini.py --data-dir "$DATA_DIR" --unit-type "$UNIT_TYPE" \
    ${EXTRA_PAIRS:+--extra-pairs $EXTRA_PAIRS}
  done_stage 0
fi

if run_stage 1; then
  log "Stage 1: fit the embedded vocoder ($DATA_DIR/units/vocoder.npz)"
  $PY -m echostream_fairseq.cli.fit_vocoder --data-dir "$DATA_DIR"
  done_stage 1
fi

if run_stage 2; then
  log "Stage 2: train echostream_mini on $TRAIN_DEVICE into $EXP_DIR/checkpoints (resumes)"
  mkdir -p "$EXP_DIR"
  if [ "$TRAIN_DEVICE" = cuda ]; then  # the published model: 6.8 min on one H100, batches
    device=(--device cuda --num-workers 3 --time-budget-minutes 6.8)  # of 20,000 fbank frames
  else
    device=(--device cpu --num-workers 0 --batch-size "$BATCH_SIZE"
            --time-budget-minutes "$TRAIN_MINUTES")
  fi
  $PY -m echostream_fairseq.cli.train --config "$TRAIN_CONFIG" "${TRAIN_MANIFESTS[@]}" \
    --save-dir "$EXP_DIR/checkpoints" "${device[@]}" \
    --tensorboard-logdir "$EXP_DIR/tensorboard" --log-file "$EXP_DIR/train.log"
  $PY -m echostream_fairseq.cli.summarize_training --valid-subset dev_sampled.units \
    --markdown "$EXP_DIR/train_summary.md" "$EXP_DIR/train.log"
  if [ ! -f "$UNTRAINED" ]; then  # a second run would resume it for a second update
    log "Stage 2: the untrained reference (one update at lr 1e-12)"
    $PY -m echostream_fairseq.cli.train --config "$TRAIN_CONFIG" "${TRAIN_MANIFESTS[@]}" \
      --save-dir "$EXP_DIR/untrained/checkpoints" --num-workers 0 --batch-size 8 \
      --max-update 1 --lr 1e-12 --disable-validation --no-epoch-checkpoints
  fi
  done_stage 2
fi

if run_stage 3; then
  log "Stage 3: the unit decoding on 100 dev sentences (reference text through T2U)"
  for combo in $SWEEP; do
    IFS=: read -r penalty k2 n2 <<< "$combo"
    $PY -m echostream_fairseq.cli.measure_t2u --checkpoint "$CKPT" \
      --manifest "$DATA_DIR/dev_sampled.units.tsv" --max-utterances 100 \
      --decode-config "$DECODE_DEFAULT" --unit-blank-penalty "$penalty" --unit-k2 "$k2" \
      --unit-n2 "$n2" --label "$LABEL" --num-threads "$NUM_THREADS" \
      --output "$EXP_DIR/t2u_dev/bp${penalty}_k${k2}n${n2}.json"
  done
  done_stage 3
fi

if run_stage 4; then
  log "Stage 4: the test set: all 504 sentences with the chosen decoding, the untrained model"
  # each test wav is one sentence, scored as SimulEval scores it; the sentence-after-sentence
  # mode is measured on joined streams (bench/long_stream_memory.py, bench/sentence_cuts.py)
  evaluate test_all "$CKPT" --decode-config "$DECODE_CHOSEN" --chunk-ms 320 --single-sentence \
    --save-wavs 10 --joined-speech-asr --label "$LABEL"
  evaluate untrained "$UNTRAINED" --decode-config "$DECODE_CHOSEN" --chunk-ms 320 \
    --single-sentence --max-utterances 100 --joined-speech-asr \
    --label "untrained (1 update, lr 1e-12)"
  if [ "$HEADLINE_ONLY" != 1 ]; then
    log "Stage 4: the first 100 test sentences, 160-1280 ms and offline, three unit decodings"
    evaluate test100_chosen "$CKPT" --decode-config "$DECODE_CHOSEN" --max-utterances 100 \
      --save-wavs 10 --joined-speech-asr --label "$LABEL"
    evaluate test100_penalty3 "$CKPT" --decode-config "$DECODE_DEFAULT" --unit-blank-penalty 3 \
      --max-utterances 100 --save-wavs 10 --joined-speech-asr --label "$LABEL"
    evaluate test100_default "$CKPT" --decode-config "$DECODE_DEFAULT" --max-utterances 100 \
      --save-wavs 10 --label "$LABEL"
    evaluate untrained_default "$UNTRAINED" --decode-config "$DECODE_DEFAULT" --chunk-ms 320 \
      --max-utterances 100 --label "untrained (1 update, lr 1e-12)"
  fi
  done_stage 4
fi

if run_stage 5; then
  log "Stage 5: ceilings: ground-truth units through the vocoder, reference text through T2U"
  if [ "$HEADLINE_ONLY" = 1 ]; then  # phoneme units are the corpus speech: no vocoder ceiling
    $PY -m echostream_fairseq.cli.measure_t2u --checkpoint "$CKPT" \
      --manifest "$DATA_DIR/test_sampled.tsv" --max-utterances all \
      --decode-config "$DECODE_CHOSEN" --label "$LABEL" --num-threads "$NUM_THREADS" \
      --output "$EXP_DIR/t2u_test/chosen.json"
    if [ -f "$EXP_DIR/text_mt/text_mt.json" ]; then  # the model does not change it: 80 CPU min
      log "Stage 5: the text-MT ceiling kept ($EXP_DIR/text_mt/text_mt.json; delete it to redo)"
    else
      log "Stage 5: the text-MT ceiling of the corpus and its cascade through the target voice"
      $PY -m echostream_fairseq.cli.text_mt --data-dir "$DATA_DIR" --output-dir "$EXP_DIR/text_mt" \
        --max-update "$TEXT_MT_UPDATES" --num-threads "$NUM_THREADS"
    fi
  else
    $PY -m echostream_fairseq.cli.measure_vocoder --data-dir "$DATA_DIR" \
      --vocoder "$DATA_DIR/units/vocoder.npz" --max-utterances all --no-ceiling \
      --variants default default_stream8 --num-threads 1 --output "$EXP_DIR/ceilings/vocoder_test.json"
    $PY -m echostream_fairseq.cli.measure_vocoder --data-dir "$DATA_DIR" \
      --vocoder "$DATA_DIR/units/vocoder.npz" --max-utterances 100 \
      --variants default default_stream8 --num-threads 1 --output "$EXP_DIR/ceilings/vocoder_test100.json"
    for decode in "$DECODE_DEFAULT bp0_k0n1" "$DECODE_CHOSEN bp3_k2n1"; do
      read -r config name <<< "$decode"
      $PY -m echostream_fairseq.cli.measure_t2u --checkpoint "$CKPT" \
        --manifest "$DATA_DIR/test_sampled.tsv" --max-utterances 100 --decode-config "$config" \
        --label "$LABEL" --num-threads "$NUM_THREADS" --output "$EXP_DIR/t2u_test/$name.json"
    done
  fi
  done_stage 5
fi

summarize() {  # summarize NAME STAGES FILE... [--ceilings FILE...]: refresh NAME.json if all exist
  local name=$1 stages=$2 file; shift 2
  for file in "$@"; do
    if [ "$file" != --ceilings ] && [ ! -f "$file" ]; then
      log "Stage 6: $name.json kept as committed ($file missing)"; return 0
    fi
  done
  $PY -m echostream_fairseq.cli.results --results-dir "$RESULTS_DIR" --summary "$name" \
    --command "recipes/deen_mini/run.sh $stages" "$@"
}

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then  # no marker: it only renders
  log "Stage 6: result summaries in $RESULTS_DIR, then RESULTS.md and the README's blocks"
  if [ -n "$MODEL_DIR" ]; then  # the shipped model's run: its own summary, the others kept
    summarize shipped_model "--stage 4 --stop-stage 6 (options of README.md)" \
      "$EXP_DIR/eval/test_all/report.json" "$EXP_DIR/eval/untrained/report.json" \
      --ceilings "$DATA_DIR/report.json" "$EXP_DIR/t2u_test/chosen.json" \
      "$EXP_DIR/text_mt/text_mt.json"
  fi
  summarize headline "--stage 4 --stop-stage 6" \
    "$EXP_DIR/eval/test_all/report.json" "$EXP_DIR/eval/untrained/report.json" \
    --ceilings "$DATA_DIR/report.json" "$EXP_DIR/ceilings/vocoder_test.json"
  summarize test100 "--stage 4 --stop-stage 6" \
    "$EXP_DIR/eval/test100_chosen/report.json" "$EXP_DIR/eval/test100_penalty3/report.json" \
    "$EXP_DIR/eval/test100_default/report.json" "$EXP_DIR/eval/untrained_default/report.json" \
    --ceilings "$EXP_DIR/ceilings/vocoder_test100.json" "$EXP_DIR/t2u_test/bp0_k0n1.json" \
    "$EXP_DIR/t2u_test/bp3_k2n1.json"
  sweep=()
  for combo in $SWEEP; do
    IFS=: read -r penalty k2 n2 <<< "$combo"
    sweep+=("$EXP_DIR/t2u_dev/bp${penalty}_k${k2}n${n2}.json")
  done
  summarize t2u_sweep "--stage 3 --stop-stage 6" --ceilings "${sweep[@]}"
  if [ -f "$EXP_DIR/eval/test100_chosen/chunk_320ms/utterances.jsonl" ]; then
    $PY -m echostream_fairseq.cli.examples "$EXP_DIR/eval/test100_chosen" \
      --condition chunk_320ms --max-utterances 10 --output docs/examples.md
  fi
  $PY -m echostream_fairseq.cli.results --results-dir "$RESULTS_DIR" --output RESULTS.md \
    --readme README.md
fi

if [ -n "$MODEL_DIR" ] && run_stage 7; then
  log "Stage 7: $CKPT as the shipped model $MODEL_DIR (float16 weights, data files, card)"
  reports=()
  for name in test_all untrained; do
    report=$EXP_DIR/eval/$name/report.json
    if [ -f "$report" ]; then reports+=(--evaluation "$report"); fi
  done
  $PY -m echostream_fairseq.cli.export_model --checkpoint "$CKPT" --output-dir "$MODEL_DIR" \
    --manifest "$DATA_DIR/test_sampled.tsv" --train-log "$EXP_DIR/train.log" "${reports[@]}" \
    --recipe "recipes/deen_mini/run.sh$RECIPE_OPTIONS"
  done_stage 7
fi
