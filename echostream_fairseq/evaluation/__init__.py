"""Evaluation of a checkpoint: streaming at several chunk sizes and offline, scored with
SimulEval's own latency scorers, ASR-BLEU, BLEU and ASR WER/CER (``scripts/evaluate.py``).

- :mod:`~echostream_fairseq.evaluation.testset`: the validated test set (wavs, transcripts).
- :mod:`~echostream_fairseq.evaluation.streaming_eval`: driving the pipeline, timing, scoring.
- :mod:`~echostream_fairseq.evaluation.report`: ``report.json``, ``report.md``, the plot and the
  Markdown results table.
"""
