"""``echostream-plot-restarts``: dev-loss curves and a results table from fairseq training logs
(the restart study).

Example (the study in docs/restarts.md)::

    echostream-plot-restarts --output docs/restarts_dev_loss.png \\
        --markdown docs/restarts_table.md \\
        --run "(a) from scratch=exp/restarts/a_scratch.log" \\
        --run "(b) decoders loaded=exp/restarts/b_decoders.log" \\
        --run "(c) decoders loaded, frozen 50, enc lr > dec lr=exp/restarts/c_freeze.log"

Each log is the stdout of ``echostream-train`` (``--log-format json``); validation records are
the JSON lines tagged with the dev subset's name. Losses are fairseq's (base 2, per unit target
token for the total and unit CTC, per own target token for each multitask loss).
"""

import argparse
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from echostream_fairseq.cli.common import add_log_level_argument, run_main, setup_logging

from echostream_fairseq.training_logs import log_records
from echostream_fairseq.errors import InputError

COMPONENTS: Tuple[Tuple[str, str], ...] = (
    ("loss", "total"), ("unit_ctc_loss", "unit CTC"), ("multitask_target_unigram_loss", "MT CE"),
    ("multitask_source_unigram_loss", "ASR CTC"), ("multitask_ctc_target_unigram_loss", "ST CTC"),
)


def read_dev_records(log: Path, subset: str) -> List[Dict[str, float]]:
    """Dev records, one per validation, with the subset prefix removed from the keys.

    fairseq prints each validation as ``... | <subset> | {json}`` with keys ``<subset>_<name>``.

    Raises:
        ValueError: the log is missing or has no validation record for ``subset``.
    """
    if not log.is_file():
        raise InputError(f"log {log}: no such file")
    records = log_records(log.read_text(encoding="utf-8", errors="replace"), subset,
                           source=str(log))
    if not records:
        raise InputError(f"log {log}: no '| {subset} |' validation records "
                         "(was validation disabled?)")
    return records


def parse_runs(specs: Sequence[str]) -> List[Tuple[str, Path]]:
    runs = []
    for spec in specs:
        label, sep, path = spec.rpartition("=")
        if not sep or not label:
            raise InputError(f"--run {spec!r}: expected LABEL=LOGFILE")
        runs.append((label, Path(path)))
    return runs


def table(runs: Sequence[Tuple[str, List[Dict[str, float]]]]) -> str:
    """Markdown table: updates, best dev loss and the final dev losses (total and per component)."""
    header = ["run", "updates", "best dev loss", *(f"final {label}" for _, label in COMPONENTS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, records in runs:
        final = records[-1]
        best = min(r["loss"] for r in records)
        cells = [label, f"{int(final['num_updates'])}", f"{best:.3f}",
                 *(f"{final[key]:.3f}" if key in final else "-" for key, _ in COMPONENTS)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(runs: Sequence[Tuple[str, List[Dict[str, float]]]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    panels = COMPONENTS[:3]
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    for axis, (key, label) in zip(axes, panels):
        for run_label, records in runs:
            points = [(r["num_updates"], r[key]) for r in records if key in r]
            axis.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=run_label)
        axis.set_title(f"dev {label} loss")
        axis.set_xlabel("updates")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("loss (base 2)")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    a = parser.add_argument
    a("--run", action="append", required=True, help="LABEL=LOGFILE, once per run")
    a("--output", "--out-png", dest="output", type=Path, required=True,
      help="where to write the dev-loss plot (--out-png: deprecated spelling)")
    a("--markdown", "--out-table", dest="markdown", type=Path,
      help="where to write the markdown table (default: stdout; --out-table: deprecated spelling)")
    a("--valid-subset", default="dev_sampled.units",
      help="the validation subset name fairseq tagged its records with")
    add_log_level_argument(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    opts = build_parser().parse_args(argv)
    setup_logging(opts.log_level)

    def body() -> None:
        runs = [(label, read_dev_records(path, opts.valid_subset))
                for label, path in parse_runs(opts.run)]
        plot(runs, opts.output)
        text = table(runs)
        if opts.markdown:
            opts.markdown.write_text(text, encoding="utf-8")
        else:
            print(text, end="")

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
