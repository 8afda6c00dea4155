"""bench/batched_streams.py's profile of the batched steps: each component's CPU is counted, and
the engine is left as it was (its methods and its classes' methods)."""

from __future__ import annotations

from pathlib import Path

from _fairseq_cli import corpus_dir, load_file_module
from echostream_fairseq.data.audio import read_wav
from echostream_fairseq.streaming.features import StreamingFbank
from echostream_fairseq.streaming.units import FullRecomputeUnits, IncrementalUnits
from test_streaming_pipeline import corpus_wavs

REPO = Path(__file__).resolve().parents[1]


def test_component_cpu_counts_every_part_and_puts_the_engine_back(talkative_engine,
                                                                   tiny_corpus):
    bench = load_file_module(REPO / "bench" / "batched_streams.py", "bench_batched_streams")
    engine = talkative_engine
    first, second = (read_wav(w)[0] for w in corpus_wavs(corpus_dir(tiny_corpus)))
    length = min(first.size, second.size)
    class_methods = (StreamingFbank.push, IncrementalUnits.extend, FullRecomputeUnits.extend)

    with bench.component_cpu(engine) as totals:
        costs = bench.run_rounds(engine, [first[:length], second[:length]], 5120, batched=True)

    assert list(totals) == ["fbank", "encoder", "CTC heads", "MT decoder", "T2U + unit decoder",
                            "vocoder"]
    assert all(seconds > 0 for seconds in totals.values()), totals
    assert sum(totals.values()) <= sum(costs) + 1e-3  # parts of the rounds, not more
    assert (StreamingFbank.push, IncrementalUnits.extend,
            FullRecomputeUnits.extend) == class_methods
    for owner, name in ((engine.model.encoder, "infer"), (engine, "_ctc_labels"),
                        (engine.mt_stepper, "write"), (engine.vocoder, "synthesize_chunk")):
        assert name not in vars(owner), f"{name} still patched on {type(owner).__name__}"
