#!/usr/bin/env bash
# Every bench whose figures are the shipped model's (RESULTS.md's batched-streams, server-load,
# long-stream and evaluation-speed sections; README "Live"), one after another, then RESULTS.md
# and the README re-rendered: what to run after stage 7 exports a new model. The commands are
# those each summary records as its own; they time CPU work, so nothing else should run.
#
#   recipes/deen_mini/shipped_benches.sh                        # all of them
#   recipes/deen_mini/shipped_benches.sh server_load long_stream  # some, by summary name
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
RESULTS=recipes/deen_mini/results
MODEL=echostream-mini-de-en
LABEL="the shipped model, $MODEL"
export OMP_NUM_THREADS=1
log() { echo "$(date '+%F %T') $*"; }

# summary, bench script, its options: the command each summary records as its own
BENCHES="batched_streams batched_streams.py --batch-sizes 1,2,4,8,32,64
batched_streams_text batched_streams.py --batch-sizes 1,8,32,64,96 --no-speech
server_load server_load.py --streams 2,4,8,16,32
server_load_text server_load.py --streams 8,16,32,64,96 --no-speech
server_load_2servers server_load.py --servers 2 --streams 4,8,16,32,48
server_load_2servers_text server_load.py --servers 2 --streams 16,32,64,96,128 --no-speech
long_stream long_stream_memory.py --minutes 60
evaluation_speed evaluation_speed.py"

bench_of() {  # bench_of SUMMARY: its line of BENCHES, or nothing
  while read -r name rest; do
    if [ "$name" = "$1" ]; then echo "$name $rest"; fi
  done <<< "$BENCHES"
}

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  while read -r name _; do names+=("$name"); done <<< "$BENCHES"
fi
for name in "${names[@]}"; do  # every name checked before the first bench
  if [ -z "$(bench_of "$name")" ]; then
    echo "$0: no bench for $name; the benches: $(cut -d' ' -f1 <<< "$BENCHES" | tr '\n' ' ')" >&2
    exit 2
  fi
done
failed=()
for name in "${names[@]}"; do
  read -r _ script options <<< "$(bench_of "$name")"
  log "$name: bench/$script $options"
  # shellcheck disable=SC2086  # options is a list of words
  if ! "$PY" "bench/$script" --checkpoint "$MODEL" --data-dir data/deen_ding --label "$LABEL" \
      $options --results-file "$RESULTS/$name.json"; then
    failed+=("$name")  # its summary says what failed (e.g. batched texts that differ)
  fi
done
"$PY" -m echostream_fairseq.cli.results --results-dir "$RESULTS" --output RESULTS.md --readme README.md
if [ ${#failed[@]} -gt 0 ]; then
  echo "$0: failed: ${failed[*]}" >&2
  exit 1
fi
