# EchoStream: everything a user runs, set up from nothing on a fresh Debian machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA_DIR ?= data
# make demo: the shipped model (models/$(SHIPPED_MODEL)) on the first test sentences of its corpus
SHIPPED_MODEL ?= echostream-mini-de-en
DEMO_TEST_DIR ?= data/demo-test
DEMO_SENTENCES ?= 10
DEMO_EVAL ?= exp/demo/eval
# make demo-train: build a 200-pair corpus, train from scratch for DEMO_MINUTES, stream it
DEMO_DIR ?= data/demo
DEMO_PAIRS ?= 200
DEMO_RUN ?= exp/demo-train
DEMO_MINUTES ?= 15
# log-mel units: at the mini arch's unit upsample rate (10), 15 CPU minutes leave a phoneme
# model's unit decoder writing almost only blanks (measured: Whisper heard nothing in 10 of 10
# test sentences, against 3-4 of 10 with log-mel units; neither translates); it shows the chain
DEMO_UNIT_TYPE ?= logmel

# make serve: the websocket server (docs/server.md), by default on make demo's model
SERVE_CHECKPOINT ?= $(SHIPPED_MODEL)
SERVE_ARGS ?=

TRAIN_DIR ?= exp/train_mini
TRAIN_MINUTES ?= 120
TRAIN_THREADS ?= 1

.PHONY: demo demo-train test test-fast lint corpus train-mini setup system-deps clean-data results serve

setup: $(STAMP)

system-deps:
	bash scripts/install_system_deps.sh

$(STAMP): setup.py
	$(MAKE) system-deps
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

corpus: $(STAMP)
	$(PY) scripts/prepare_mini.py --data-dir $(DATA_DIR)
	$(PY) scripts/fit_vocoder.py --data-dir $(DATA_DIR)

# The shipped model streamed, speech->speech at 320 ms: only the test sentences' German speech
# is built; prints the text as it was written, the report (latency, ASR-BLEU), keeps the wavs.
demo: $(STAMP)
	$(PY) scripts/prepare_mini.py --data-dir $(DEMO_TEST_DIR) --test-only $(DEMO_SENTENCES)
	OMP_NUM_THREADS=1 $(PY) scripts/evaluate.py --checkpoint $(SHIPPED_MODEL) \
		--manifest $(DEMO_TEST_DIR)/test_sampled.tsv --output-dir $(DEMO_EVAL) \
		--chunk-ms 320 --single-sentence --no-offline --save-wavs $(DEMO_SENTENCES) --no-progress
	$(PY) -m echostream_fairseq.cli.examples $(DEMO_EVAL) --condition chunk_320ms \
		--max-utterances $(DEMO_SENTENCES)
	cat $(DEMO_EVAL)/report.md
	@echo "output wavs next to their reference texts: $(DEMO_EVAL)/chunk_320ms/wavs"

# End to end from nothing on the 200-pair corpus: build, train for a bounded time (resumes; the
# budget counts every restart), stream the test set through the speech->speech pipeline.
demo-train: $(STAMP)
	$(PY) scripts/prepare_mini.py --data-dir $(DEMO_DIR) --max-pairs $(DEMO_PAIRS) \
		--unit-type $(DEMO_UNIT_TYPE)
	$(PY) scripts/fit_vocoder.py --data-dir $(DEMO_DIR)
	cat $(DEMO_DIR)/REPORT.md
	mkdir -p $(DEMO_RUN)
	OMP_NUM_THREADS=1 $(PY) scripts/train.py --config configs/train/echostream_mini.yaml \
		--train-manifest $(DEMO_DIR)/train_sampled.units.tsv \
		--dev-manifest $(DEMO_DIR)/dev_sampled.units.tsv --save-dir $(DEMO_RUN)/checkpoints \
		--num-workers 0 --batch-size 8 --time-budget-minutes $(DEMO_MINUTES) \
		--max-tokens 4000 --warmup-updates 100 --log-interval 10 --log-format simple \
		--log-file $(DEMO_RUN)/train.log
	OMP_NUM_THREADS=1 $(PY) scripts/evaluate.py --config configs/train/echostream_mini.yaml \
		--decode-config configs/decode/deen_mini.yaml \
		--checkpoint $(DEMO_RUN)/checkpoints/checkpoint_best.pt \
		--manifest $(DEMO_DIR)/test_sampled.tsv --output-dir $(DEMO_RUN)/eval --save-wavs 5
	cat $(DEMO_RUN)/eval/report.md
	@echo "output wavs next to their reference texts: $(DEMO_RUN)/eval/*/wavs"

# The mini recipe on the full corpus; run it again to resume (the budget counts all restarts).
train-mini: $(STAMP)
	mkdir -p $(TRAIN_DIR)
	OMP_NUM_THREADS=$(TRAIN_THREADS) $(PY) scripts/train.py --config configs/train/echostream_mini.yaml \
		--train-manifest $(DATA_DIR)/train_sampled.units.tsv \
		--dev-manifest $(DATA_DIR)/dev_sampled.units.tsv --save-dir $(TRAIN_DIR)/checkpoints \
		--num-workers 0 --batch-size 8 --time-budget-minutes $(TRAIN_MINUTES) \
		--tensorboard-logdir $(TRAIN_DIR)/tensorboard --log-file $(TRAIN_DIR)/train.log

# the full tier (builds the tiny corpus, trains tiny models, runs SimulEval and fairseq)
test: $(STAMP)
	$(PY) -m pytest -q tests

# the fast tier: no corpus, no subprocess
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not corpus" tests

serve: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m echostream_fairseq.cli.serve --checkpoint $(SERVE_CHECKPOINT) \
		$(SERVE_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# RESULTS.md and the README's generated blocks from the committed result summaries
results:
	$(PY) -m echostream_fairseq.cli.results --results-dir recipes/deen_mini/results --output RESULTS.md --readme README.md

clean-data:
	rm -rf $(DATA_DIR)
