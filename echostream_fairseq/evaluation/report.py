"""The evaluation report: ``report.json``, ``report.md`` and ``latency_quality.png``.

Every number in the Markdown tables is read from the JSON report by :func:`results_table`, which
``echostream-results`` also uses for RESULTS.md, so no figure is typed by hand.
"""

from __future__ import annotations

import json
import os
import platform
import socket
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple, Union

from echostream_fairseq.errors import InputError

__all__ = ["ceilings_table", "load_ceilings", "load_report", "machine_info",
           "plot_latency_quality", "render_markdown", "replace_between_markers", "results_table",
           "write_report"]

REPORT_JSON, REPORT_MD, PLOT_PNG = "report.json", "report.md", "latency_quality.png"

Getter = Union[Tuple[str, ...], Callable[[Mapping[str, Any]], Any]]
# (header, where the value sits in a condition of the report, decimals)
QUALITY_COLUMNS: List[Tuple[str, Getter, int]] = [
    ("ASR-BLEU", ("speech", "asr_bleu"), 2),
    ("ASR-BLEU raw", ("speech", "asr_bleu_raw"), 2),
    ("ASR-BLEU joined", ("speech", "asr_bleu_joined"), 2),
    ("text BLEU", ("text", "bleu"), 2),
    ("text BLEU raw", ("text", "bleu_raw"), 2),
    ("source ASR WER %", ("asr", "wer"), 1),
    ("source ASR CER %", ("asr", "cer"), 1),
    ("text BLEU vs offline", ("text", "bleu_vs_offline"), 1),
    ("no speech written", ("speech", "num_without_output"), 0),
    ("Whisper hears nothing", ("speech", "num_empty"), 0),
]
LATENCY_COLUMNS: List[Tuple[str, Getter, int]] = [
    ("speech AL", ("speech", "latency", "AL"), 0),
    ("speech AL_CA", ("speech", "latency", "AL_CA"), 0),
    ("speech LAAL", ("speech", "latency", "LAAL"), 0),
    ("speech StartOffset", ("speech", "latency", "StartOffset"), 0),
    ("speech EndOffset", ("speech", "latency", "EndOffset"), 0),
    ("text AL", ("text", "latency", "AL"), 0),
    ("text AL_CA", ("text", "latency", "AL_CA"), 0),
    ("text LAAL", ("text", "latency", "LAAL"), 0),
    ("text ATD", ("text", "latency", "ATD"), 0),
    ("RTF", ("compute", "rtf"), 3),
]


def machine_info(num_threads: int) -> Dict[str, Any]:
    """Where the figures were measured (timings only compare on the same machine and load)."""
    import torch

    return {"hostname": socket.gethostname(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "num_threads": num_threads, "python": platform.python_version(),
            "torch": torch.__version__}


def _lookup(condition: Mapping[str, Any], getter: Getter) -> Any:
    if callable(getter):
        return getter(condition)
    value: Any = condition
    for key in getter:
        if not isinstance(value, Mapping) or value.get(key) is None:
            return None
        value = value[key]
    return value


def _cell(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else str(value)


def _conditions(report: Mapping[str, Any]) -> List[Mapping[str, Any]]:
    offline = [report["results"]["offline"]] if report["results"].get("offline") else []
    return list(report["results"]["streaming"]) + offline


def _chunk_cell(condition: Mapping[str, Any]) -> str:
    return "offline" if condition["chunk_ms"] is None else str(condition["chunk_ms"])


def _table(reports: Sequence[Mapping[str, Any]], columns: Sequence[Tuple[str, Getter, int]]
           ) -> str:
    label = len(reports) > 1  # a model column only when several reports share the table
    header = (["model"] if label else []) + ["chunk (ms)"] + [name for name, _, _ in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for report in reports:
        for condition in _conditions(report):
            cells = ([report["label"]] if label else []) + [_chunk_cell(condition)]
            cells += [_cell(_lookup(condition, getter), digits) for _, getter, digits in columns]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def results_table(reports: Sequence[Mapping[str, Any]]) -> str:
    """Markdown quality and latency tables (latencies in ms) of one or more ``report.json``."""
    return ("Quality (BLEU on normalised text unless raw; WER/CER of the streaming source ASR):"
            f"\n\n{_table(reports, QUALITY_COLUMNS)}\n\n"
            "Latency (ms; `_CA` adds the measured compute time; RTF = compute / source duration):"
            f"\n\n{_table(reports, LATENCY_COLUMNS)}\n")


def render_markdown(report: Mapping[str, Any]) -> str:
    """``report.md``: what was run, where, and the two tables."""
    settings, machine = report["settings"], report["machine"]
    # older reports kept the unit options apart (unit_blank_penalty, unit_mask) or had none
    decode = settings.get("decode") or {
        "unit_blank_penalty": settings.get("unit_blank_penalty", 0.0),
        "unit_k2": (settings.get("unit_mask") or {}).get("k2", 0),
        "unit_n2": (settings.get("unit_mask") or {}).get("n2", 1)}
    lines = [
        f"# Evaluation of {report['label']}", "",
        f"* checkpoint: `{settings['checkpoint']}`",
        f"* test set: `{settings['test_manifest']}` ({report['num_utterances']} utterance(s), "
        f"{report['source_s']:.1f} s of source speech), wavs from "
        f"`{settings['wav_list'] or 'its src_audio column'}`",
        f"* chunk sizes (ms): {', '.join(map(str, settings['chunk_sizes_ms'])) or '-'}; "
        f"offline: {'yes' if settings['offline'] else 'no'}; speech: "
        f"{'yes' if settings['speech'] else 'no'}; unit blank penalty: "
        f"{decode['unit_blank_penalty']:g}; "
        f"unit mask k2/n2: {decode['unit_k2']}/{decode['unit_n2']}"
        + (f"; decode config: `{decode['config']}`" if decode.get("config") else ""),
        f"* machine: {machine['hostname']}, {machine['cpu_count']} CPUs, "
        f"{machine['num_threads']} torch thread(s), torch {machine['torch']}",
        f"* wall time: {report['wall_s']:.1f} s (model load {report['load_s']:.1f} s)", "",
        results_table([report]),
    ]
    return "\n".join(lines)


def _plot_series(report: Mapping[str, Any]) -> Tuple[str, Tuple[str, ...], Tuple[str, ...]]:
    """``(y label, y key path, latency key path prefix)``: speech when it was scored."""
    if report["settings"]["speech"]:
        return "ASR-BLEU", ("speech", "asr_bleu"), ("speech", "latency")
    return "text BLEU", ("text", "bleu"), ("text", "latency")


def plot_latency_quality(report: Mapping[str, Any], path: Path) -> None:
    """ASR-BLEU against AL and against AL_CA, one point per chunk size, offline as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y_label, y_key, latency_key = _plot_series(report)
    streaming = report["results"]["streaming"]
    offline = report["results"].get("offline")
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for axis, metric in zip(axes, ("AL", "AL_CA")):
        points = [(_lookup(c, latency_key + (metric,)), _lookup(c, y_key), c["chunk_ms"])
                  for c in streaming]
        points = [p for p in points if p[0] is not None and p[1] is not None]
        if points:
            axis.plot([p[0] for p in points], [p[1] for p in points], "o-", label="streaming")
            for x, y, chunk in points:
                axis.annotate(f"{chunk} ms", (x, y), textcoords="offset points", xytext=(4, 4))
        else:  # e.g. a barely trained model that writes no speech: say so instead of a blank
            axis.text(0.5, 0.5, f"no {latency_key[0]} output at any chunk size",
                      transform=axis.transAxes, ha="center")
        if offline and _lookup(offline, y_key) is not None:
            axis.axhline(_lookup(offline, y_key), linestyle="--", color="gray", label="offline")
        axis.set_xlabel(f"{latency_key[0]} {metric} (ms)")
        axis.grid(alpha=0.3)
        axis.legend(loc="lower right")
    axes[0].set_ylabel(y_label)
    figure.suptitle(f"{report['label']}: {y_label} vs latency")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(report: Mapping[str, Any], output_dir: Path) -> Dict[str, Path]:
    """Write the three report files into ``output_dir``; returns their paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": output_dir / REPORT_JSON, "markdown": output_dir / REPORT_MD,
             "plot": output_dir / PLOT_PNG}
    paths["json"].write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n",
                             encoding="utf-8")
    paths["markdown"].write_text(render_markdown(report), encoding="utf-8")
    plot_latency_quality(report, paths["plot"])
    return paths


def load_report(path: Path) -> Dict[str, Any]:
    """Read a ``report.json``; raises ValueError naming the file when it is not one."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not a readable report.json ({error})") from error
    if not isinstance(report, dict) or "results" not in report or "label" not in report:
        raise InputError(f"{path}: not an evaluation report (no 'results' / 'label')")
    return report


# what each ceiling is, by where it is found in a corpus report.json or measure_vocoder.py's --out
CEILING_NAMES = {
    "corpus_asr": "piper target speech (corpus report)",
    "ceiling_piper": "piper target speech",
    "default": "ground-truth units -> embedded vocoder",
    "default_stream8": "ground-truth units -> embedded vocoder, streamed 8 units a chunk",
    "cascade": "gold German text -> text MT (beam 5) -> piper target voice (echostream-text-mt)",
}


def load_ceilings(path: Path) -> List[Dict[str, Any]]:
    """ASR-BLEU ceilings (speech that is not the model's) from a corpus ``report.json``
    (``echostream-prepare``: its piper speech), an ``echostream-measure-vocoder --output``
    JSON (piper speech and ground-truth units through the vocoder, on its own sentences) or an
    ``echostream-measure-t2u --output`` JSON (the reference text through a model's T2U: what its
    speech would score with a perfect translation) or an ``echostream-text-mt`` JSON (the gold
    German text through a text MT model trained on the same pairs, spoken by the target voice:
    what this data allows a translation to reach).

    Returns rows ``{"name", "sentences", "asr_bleu", "wer", "unit_ratio", "source"}`` (the ratio
    of written to reference units for a T2U row, else None); raises ValueError naming the file
    when it holds no ceiling.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not a readable JSON file ({error})") from error
    found: List[Tuple[str, Mapping[str, Any]]] = []
    if isinstance(data, dict) and isinstance(data.get("asr"), dict) and "splits" in data:
        found.append(("corpus_asr", data["asr"]))
    if isinstance(data, dict) and isinstance(data.get("variants"), dict):
        if isinstance(data.get("ceiling_piper"), dict):
            found.append(("ceiling_piper", data["ceiling_piper"]))
        found += list(data["variants"].items())
    names = dict(CEILING_NAMES)
    if isinstance(data, dict) and isinstance(data.get("cascade"), dict) and "updates" in data:
        found.append(("cascade", data["cascade"]))  # echostream-text-mt: the translation ceiling
    if isinstance(data, dict) and isinstance(data.get("t2u_reference_text"), dict):
        # measure_t2u's "decode"; older files had unit_blank_penalty and unit_mask {k2, n2}
        decode = data.get("decode") or {"unit_blank_penalty": data.get("unit_blank_penalty"),
                                        **{f"unit_{key}": value for key, value
                                           in (data.get("unit_mask") or {}).items()}}
        penalty = decode.get("unit_blank_penalty") or 0
        split = Path(str(data.get("manifest", "?"))).stem
        options = ([f"unit mask k2={decode['unit_k2']} n2={decode['unit_n2']}"]
                   if "unit_k2" in decode else [])
        options += [f"unit blank penalty {penalty:g}"] if penalty else []
        names["t2u_reference_text"] = (
            f"{split} reference text -> T2U + unit CTC of {data.get('label', '?')} -> embedded "
            "vocoder" + (f" ({', '.join(options)})" if options else ""))
        found.append(("t2u_reference_text", data["t2u_reference_text"]))
    rows = [{"name": names.get(key, f"ground-truth units -> vocoder variant {key}"),
             "sentences": score.get("num_sentences"), "asr_bleu": score.get("bleu"),
             "wer": score.get("wer"), "unit_ratio": score.get("unit_ratio"), "source": str(path)}
            for key, score in found]
    if not rows:
        raise InputError(f"{path}: neither a corpus report.json with 'asr', an "
                         "echostream-measure-vocoder --output file with 'variants', an "
                         "echostream-measure-t2u --output file nor an echostream-text-mt "
                         "file with 'cascade'")
    return rows


def ceilings_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown table of :func:`load_ceilings` rows (ASR-BLEU on normalised text, as above)."""
    lines = ["| speech | sentences | ASR-BLEU | WER % | units / reference units | from |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['name']} | {_cell(row['sentences'], 0)} | "
                     f"{_cell(row['asr_bleu'], 2)} | {_cell(row['wer'], 1)} | "
                     f"{_cell(row.get('unit_ratio'), 2)} | `{row['source']}` |")
    return "\n".join(lines) + "\n"


def replace_between_markers(text: str, generated: str, name: str) -> str:
    """``text`` with what lies between ``<!-- name:begin -->`` and ``<!-- name:end -->`` replaced
    by ``generated``; raises ValueError when the markers are missing or out of order."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start or text.count(begin) != 1 or text.count(end) != 1:
        raise ValueError(f"expected one '{begin}' followed by one '{end}'")
    return text[:start + len(begin)] + "\n" + generated.rstrip("\n") + "\n" + text[stop:]
