"""``echostream-results``: RESULTS.md and the README's generated blocks from the committed result
summaries, and those summaries from fresh evaluation reports.

Render (``make results``; ``--check``: write nothing, exit 1 when a file is stale)::

    echostream-results --results-dir recipes/deen_mini/results --output RESULTS.md \\
        --readme README.md

Every table of RESULTS.md and of the README blocks ``shipped`` and ``timings`` (between
``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``) comes from ``RESULTS_DIR/*.json``, so no
figure is typed by hand; a rerun on the same JSON writes the same bytes.

Summarise (the recipe's last stage)::

    echostream-results --results-dir recipes/deen_mini/results --summary headline \\
        exp/deen_mini/eval/test_all/report.json --ceilings data/report.json VOCODER.json

rewrites ``headline.json`` from ``echostream-evaluate`` reports (an ``evaluations`` table) and
ceiling files (a corpus report.json or an ``echostream-measure-vocoder --output`` file: a
``ceilings`` table; an ``echostream-measure-t2u --output`` file: a ``t2u`` table), keeping the
file's title, text and other tables; values are rounded to the digits the tables show. Without
``--results-dir`` the reports' tables are printed (and written to ``--output`` or between the
``--readme`` file's ``--block`` markers), as ``scripts/results_table.py`` always did.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from echostream_fairseq.cli.common import (UserError, add_log_level_argument, provenance,
                                           run_main, setup_logging)

logger = logging.getLogger("echostream.results")

EXIT_STALE = 1
_REPO = Path(__file__).resolve().parents[2]
#: the order of the RESULTS.md sections; other summaries follow alphabetically
SECTION_ORDER = ("shipped_model", "headline", "timings", "test100", "t2u_sweep", "training",
                 "t2u_token_embeddings", "learning_curve", "corpus", "model", "vocoder",
                 "streaming_cost", "long_stream", "sentence_cuts", "batched_streams",
                 "batched_streams_text", "server_load", "server_load_text", "server_load_2servers",
                 "server_load_2servers_text", "evaluation_speed", "restarts",
                 "offline_decoding", "demo")
KINDS = ("evaluations", "ceilings", "t2u", "table", "facts", "timings", "targets")
#: the README blocks and the summary each is rendered from
README_BLOCKS = {"shipped": "shipped_model", "timings": "timings"}
#: columns of the README's headline table (headers of evaluation.report's columns)
HEADLINE_COLUMNS = ("ASR-BLEU", "text BLEU", "source ASR WER %", "speech AL", "speech AL_CA",
                    "RTF")


# ------------------------------------------------------------------------------- formatting
def _number(value: Any, digits: Optional[int] = None, thousands: bool = False) -> str:
    """A cell: ``-`` for None, fixed ``digits`` when given, else the value as stored."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    comma = "," if thousands else ""
    return f"{value:{comma}.{digits}f}" if digits is not None else f"{value:{comma}}"


def _duration(seconds: float, approximate: bool = False) -> str:
    """``6 min 56 s``, ``1 h 34 min``, ``about 21 min``."""
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = ([f"{hours} h"] if hours else []) + ([f"{minutes} min"] if minutes else [])
    parts += [f"{secs} s"] if secs or not parts else []
    return ("about " if approximate else "") + " ".join(parts)


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def decoding_name(decode: Mapping[str, Any]) -> str:
    """``unit blank penalty 3, unit mask k2=2 n2=1``; StreamSpeech's plain greedy when unset."""
    penalty = decode.get("unit_blank_penalty") or 0
    mask = (decode.get("unit_k2", 0), decode.get("unit_n2", 1))
    parts = [f"unit blank penalty {penalty:g}"] if penalty else []
    parts += [f"unit mask k2={mask[0]} n2={mask[1]}"] if mask != (0, 1) else []
    return ", ".join(parts) or "plain greedy (StreamSpeech's)"


# ------------------------------------------------------------------- evaluation columns
class _Column:
    """One evaluation column: its summary key, header, place in a report condition, digits."""

    def __init__(self, header: str, path: Tuple[str, ...], digits: int, latency: bool) -> None:
        self.key, self.header, self.path, self.digits = "_".join(path), header, path, digits
        self.in_ms = latency and header != "RTF"  # RTF sits with the latencies, in no unit
        self.latency = latency


def _evaluation_columns() -> List[_Column]:
    """Every evaluation column; headers, paths and digits are those of
    :mod:`echostream_fairseq.evaluation.report` (so ``report.md`` and RESULTS.md agree)."""
    from echostream_fairseq.evaluation.report import LATENCY_COLUMNS, QUALITY_COLUMNS

    return [_Column(header, tuple(getter), digits, latency)
            for columns, latency in ((QUALITY_COLUMNS, False), (LATENCY_COLUMNS, True))
            for header, getter, digits in columns
            if not callable(getter)]  # a computed column has no place in a summary


def _evaluation_rows(table: Mapping[str, Any], columns: Sequence[_Column], units: bool = False
                     ) -> Tuple[List[str], List[List[str]]]:
    conditions = [c for e in table["evaluations"] for c in e["conditions"]]
    columns = [c for c in columns if any(c.key in cond for cond in conditions)]  # none empty
    header = ["model", "decoding", "sentences", "chunk (ms)"]
    header += [c.header + (" (ms)" if units and c.in_ms else "") for c in columns]
    rows = []
    for evaluation in table["evaluations"]:
        for condition in evaluation["conditions"]:
            chunk = condition["chunk_ms"]
            row = [evaluation["model"], decoding_name(evaluation["decode"]),
                   str(evaluation["sentences"]), "offline" if chunk is None else str(chunk)]
            row += [_number(condition.get(c.key), c.digits) for c in columns]
            rows.append(row)
    return header, rows


def _render_evaluations(table: Mapping[str, Any]) -> str:
    """Quality and latency tables, as ``report.md`` has them."""
    columns = _evaluation_columns()
    out = []
    for title, latency in (("Quality (BLEU on normalised text unless raw; WER/CER of the "
                            "streaming source ASR)", False),
                           ("Latency (ms; `_CA` adds the measured compute time; RTF = compute "
                            "/ source duration)", True)):
        header, rows = _evaluation_rows(table, [c for c in columns if c.latency == latency])
        out.append(f"{title}:\n\n{_markdown_table(header, rows)}")
    return "\n".join(out)


def _scores(row: Mapping[str, Any]) -> List[str]:
    """ASR-BLEU (2 decimals, or the row's ``digits`` where it was published with fewer), WER %
    (1 decimal) and units / reference units (2), as ``evaluation.report.ceilings_table``."""
    return [_number(row["asr_bleu"], row.get("digits", 2)), _number(row.get("wer"), 1),
            _number(row.get("unit_ratio"), 2)]


_SCORES = ["ASR-BLEU", "WER %", "units / reference units"]


def _render_ceilings(table: Mapping[str, Any]) -> str:
    return _markdown_table(["speech", "sentences"] + _SCORES, [
        [row["name"], _number(row["sentences"])] + _scores(row) for row in table["rows"]])


def _render_t2u(table: Mapping[str, Any]) -> str:
    return _markdown_table(["split", "unit decoding", "sentences"] + _SCORES, [
        [row["split"], decoding_name(row["decode"]), _number(row["sentences"])] + _scores(row)
        for row in table["rows"]])


def _render_table(table: Mapping[str, Any]) -> str:
    columns = table["columns"]
    rows = [[_number(row.get(c["key"]), c.get("digits"), c.get("thousands", False))
             + (c.get("suffix", "") if row.get(c["key"]) is not None else "") for c in columns]
            for row in table["rows"]]
    return _markdown_table([c["header"] for c in columns], rows)


def _render_facts(table: Mapping[str, Any]) -> str:
    rows = []
    for row in table["rows"]:
        value = _number(row["value"], row.get("digits"), row.get("thousands", False))
        rows.append([row["what"], value + (" " + row["unit"] if row.get("unit") else "")])
    return _markdown_table(["measurement", "value"], rows)


def _render_timings(table: Mapping[str, Any]) -> str:
    rows = []
    for row in table["rows"]:
        measured = _duration(row["seconds"], row.get("approximate", False))
        extra = [f"{p['name']} {_duration(p['seconds'], p.get('approximate', False))}"
                 for p in row.get("parts", [])]
        measured += f" ({', '.join(extra)})" if extra else ""
        measured += f", {row['note']}" if row.get("note") else ""
        rows.append([f"`{row['command']}`", row["what"], measured])
    return _markdown_table(["command", "what it does", "measured"], rows)


def _render_targets(table: Mapping[str, Any]) -> str:
    return _markdown_table(["target", "measured", "needed", "read against", "met"], [
        [row["what"], _number(row["measured"], row.get("digits", 2)), row["needed"],
         row.get("against") or "-", "-" if row["met"] is None else ("yes" if row["met"] else "no")]
        for row in table["rows"]])


RENDERERS: Dict[str, Callable[[Mapping[str, Any]], str]] = {
    "evaluations": _render_evaluations, "ceilings": _render_ceilings, "t2u": _render_t2u,
    "table": _render_table, "facts": _render_facts, "timings": _render_timings,
    "targets": _render_targets}


# ---------------------------------------------------------------------------- validation
_REQUIRED = {"evaluations": ("evaluations",), "ceilings": ("rows",), "t2u": ("rows",),
             "table": ("columns", "rows"), "facts": ("rows",), "timings": ("rows",),
             "targets": ("rows",)}
_ROW_KEYS = {"ceilings": ("name", "sentences", "asr_bleu"),
             "targets": ("what", "measured", "needed", "met"),
             "t2u": ("split", "decode", "sentences", "asr_bleu"),
             "facts": ("what", "value"), "timings": ("command", "what", "seconds")}


def _check(condition: bool, path: Path, where: str, message: str) -> None:
    if not condition:
        raise UserError(f"{path}: {where}: {message}" if where else f"{path}: {message}")


def _check_table(table: Any, path: Path, where: str) -> None:
    _check(isinstance(table, dict), path, where, "expected an object")
    kind = table.get("kind")
    _check(kind in KINDS, path, where, f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    for key in _REQUIRED[kind]:
        _check(isinstance(table.get(key), list), path, where, f"missing list {key!r}")
    if kind == "evaluations":
        for i, evaluation in enumerate(table["evaluations"]):
            at = f"{where}.evaluations[{i}]"
            _check(isinstance(evaluation, dict), path, at, "expected an object")
            for key, kinds in (("model", str), ("sentences", int), ("decode", dict),
                               ("conditions", list)):
                _check(isinstance(evaluation.get(key), kinds), path, at,
                       f"missing or wrong {key!r}")
            for j, condition in enumerate(evaluation["conditions"]):
                _check(isinstance(condition, dict) and "chunk_ms" in condition, path,
                       f"{at}.conditions[{j}]", "expected an object with 'chunk_ms'")
        return
    if kind == "table":
        for i, column in enumerate(table["columns"]):
            _check(isinstance(column, dict) and "key" in column and "header" in column, path,
                   f"{where}.columns[{i}]", "expected an object with 'key' and 'header'")
    for i, row in enumerate(table["rows"]):
        _check(isinstance(row, dict), path, f"{where}.rows[{i}]", "expected an object")
        for key in _ROW_KEYS.get(kind, ()):
            _check(key in row, path, f"{where}.rows[{i}]", f"missing {key!r}")


def check_summary(data: Any, path: Path) -> Dict[str, Any]:
    """``data`` if it is a result summary; raises UserError naming ``path`` and the place."""
    _check(isinstance(data, dict), path, "", "expected a JSON object")
    origin = data.get("provenance")
    _check(isinstance(origin, dict) and isinstance(origin.get("source"), str)
           and isinstance(origin.get("command"), str), path, "provenance",
           "expected an object with 'source' and 'command' strings")
    _check(isinstance(data.get("title"), str), path, "title", "expected a string")
    _check(isinstance(data.get("tables"), list), path, "tables", "expected a list")
    for i, table in enumerate(data["tables"]):
        _check_table(table, path, f"tables[{i}]")
    return data


def load_summary(path: Path) -> Dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path}: not a readable result summary ({error})") from error
    return check_summary(data, path)


def load_summaries(results_dir: Path) -> Dict[str, Dict[str, Any]]:
    """Every ``*.json`` of ``results_dir`` by name, in :data:`SECTION_ORDER`."""
    if not results_dir.is_dir():
        raise UserError(f"{results_dir}: no such results folder")
    paths = {path.stem: path for path in sorted(results_dir.glob("*.json"))}
    if not paths:
        raise UserError(f"{results_dir}: no result summaries (*.json)")
    order = [n for n in SECTION_ORDER if n in paths] + sorted(set(paths) - set(SECTION_ORDER))
    return {name: load_summary(paths[name]) for name in order}


# ----------------------------------------------------------------------------- rendering
def _shown(results_dir: Path) -> str:
    """The folder as RESULTS.md links it: relative to the repository when inside it, so the
    output does not depend on how the folder was named on the command line."""
    try:
        return results_dir.resolve().relative_to(_REPO).as_posix()
    except ValueError:
        return results_dir.as_posix()


def render_section(name: str, summary: Mapping[str, Any], results_dir: Path) -> str:
    origin = summary["provenance"]
    parts = [f"## {summary['title']}\n"]
    if summary.get("description"):
        parts.append(summary["description"].rstrip("\n") + "\n")
    parts.append(f"From [`{name}.json`]({_shown(results_dir)}/{name}.json): "
                 f"{origin['source']}. Regenerated by: `{origin['command']}`.\n")
    for table in summary["tables"]:
        if table.get("title"):
            parts.append(f"### {table['title']}\n")
        if table.get("note"):
            parts.append(table["note"].rstrip("\n") + "\n")
        parts.append(RENDERERS[table["kind"]](table))
    return "\n".join(parts)


def render_results(summaries: Mapping[str, Mapping[str, Any]], results_dir: Path) -> str:
    """The whole of ``RESULTS.md``."""
    names, shown = list(summaries), _shown(results_dir)
    head = ["# Results\n",
            f"Generated by `make results` from the summaries in [`{shown}/`]({shown}/); do "
            "not edit by hand. "
            "Each section names its summary and the recipe stage "
            "([`recipes/deen_mini/run.sh`](recipes/deen_mini/run.sh)) or command that "
            "regenerates it.\n",
            "\n".join(f"- [{summaries[n]['title']}](#{_anchor(summaries[n]['title'])})"
                      for n in names) + "\n"]
    return "\n".join(head + [render_section(n, summaries[n], results_dir) for n in names])


def _anchor(title: str) -> str:
    """GitHub's heading anchor: lowercase, punctuation dropped, spaces to hyphens."""
    kept = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -_")
    return kept.replace(" ", "-")


def _table_of(summary: Mapping[str, Any], kind: str) -> Optional[Mapping[str, Any]]:
    return next((t for t in summary["tables"] if t["kind"] == kind), None)


def render_headline_block(summary: Mapping[str, Any], name: str = "headline") -> str:
    """A README status table: the best system and the reference, then the ceilings (``name``:
    the summary's, for the line saying where it comes from)."""
    parts = []
    evaluations = _table_of(summary, "evaluations")
    best = max(((c.get("speech_asr_bleu") or 0.0, c["chunk_ms"], e)  # of the first system
                for e in (evaluations or {}).get("evaluations", [])[:1] for c in e["conditions"]),
               key=lambda item: item[0], default=None)
    if evaluations and best:
        ceilings = _table_of(summary, "ceilings")
        top = max(ceilings["rows"], key=lambda row: row["asr_bleu"]) if ceilings else None
        chunk = "offline" if best[1] is None else f"at {best[1]} ms chunks"
        line = (f"Best ASR-BLEU: **{_number(best[0], 2)}**, {best[2]['model']} {chunk} on "
                f"{best[2]['sentences']} test sentences")
        if top:
            line += (f"; the ceiling is **{_scores(top)[0]}**, {top['name']} on "
                     f"{top['sentences']} sentences")
        parts.append(line + ".\n")
        columns = [c for c in _evaluation_columns() if c.header in HEADLINE_COLUMNS]
        header, rows = _evaluation_rows(evaluations, columns, units=True)
        parts.append(_markdown_table(header, rows))
    targets = _table_of(summary, "targets")
    if targets:
        parts.append(_render_targets(targets))
    ceilings = _table_of(summary, "ceilings")
    if ceilings:
        parts.append(_markdown_table(
            ["ceiling (speech that is not the model's)", "sentences", "ASR-BLEU", "WER %"],
            [[row["name"], _number(row["sentences"])] + _scores(row)[:2]
             for row in ceilings["rows"]]))
    parts.append(f"Generated from `{name}.json` by `make results`; every table is in "
                 "[RESULTS.md](RESULTS.md).\n")
    return "\n".join(parts)


def render_timings_block(summary: Mapping[str, Any]) -> str:
    table = _table_of(summary, "timings")
    note = summary.get("description", "").rstrip("\n")
    return (_render_timings(table) if table else "") + (f"\n{note}\n" if note else "")


def render_readme(text: str, summaries: Mapping[str, Mapping[str, Any]], readme: Path) -> str:
    """``text`` with each README block rewritten from its summary."""
    from echostream_fairseq.evaluation.report import replace_between_markers

    for block, name in README_BLOCKS.items():
        if name not in summaries:
            raise UserError(f"no {name}.json for the README's '{block}' block")
        try:
            rendered = (render_timings_block(summaries[name]) if block == "timings"
                        else render_headline_block(summaries[name], name))
            text = replace_between_markers(text, rendered, block)
        except ValueError as error:
            raise UserError(f"{readme}: {error}") from error
    return text


# ------------------------------------------------------------------------- summarising
def measured_summary(title: str, description: str, tables: List[Dict[str, Any]], command: str,
                     measured_by: str, argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """A result summary in the generator's layout, written by the script that measured it
    (``measured_by``), with this run's provenance and the ``command`` that regenerates it."""
    made = provenance(argv)
    commit = (made["git_commit"] or "an unknown commit")[:7]
    return {"provenance": {"source": f"measured by {measured_by} at {commit}", "command": command,
                           **made},
            "title": title, "description": description, "tables": tables}


def dump_summary(data: Any) -> str:
    """JSON with one line per object or list of plain values (small, diff-friendly files)."""
    return _dump(data, 0) + "\n"


def _dump(value: Any, level: int) -> str:
    def scalar(item: Any) -> bool:
        return not isinstance(item, (dict, list))

    # a list of plain values, or an object of plain values and flat objects, goes on one line
    plain = (all(map(scalar, value)) if isinstance(value, list) else isinstance(value, dict) and
             all(scalar(v) or isinstance(v, dict) and all(map(scalar, v.values()))
                 for v in value.values()))
    if not isinstance(value, (dict, list)) or plain or not value:
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {_dump(v, level + 1)}"
                 for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    return "[\n" + ",\n".join(f"{inner}{_dump(v, level + 1)}" for v in value) + f"\n{pad}]"


def _round(value: Any, digits: int) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return int(round(value)) if digits == 0 else round(float(value), digits)


def _decode_of(record: Mapping[str, Any]) -> Dict[str, Any]:
    """The unit decoding of a report's ``settings`` or a measure-t2u file: its ``decode``, or
    the separate ``unit_blank_penalty`` and ``unit_mask`` of files from before --decode-config."""
    decode, mask = record.get("decode") or {}, record.get("unit_mask") or {}
    return {"unit_blank_penalty": decode.get("unit_blank_penalty",
                                             record.get("unit_blank_penalty") or 0.0),
            "unit_k2": decode.get("unit_k2", mask.get("k2", 0)),
            "unit_n2": decode.get("unit_n2", mask.get("n2", 1))}


def summarize_report(report: Mapping[str, Any]) -> Dict[str, Any]:
    """One ``evaluations`` entry of an ``echostream-evaluate`` report.json."""
    results = report["results"]
    conditions = []
    for condition in list(results["streaming"]) + ([results["offline"]]
                                                   if results.get("offline") else []):
        row: Dict[str, Any] = {"chunk_ms": condition["chunk_ms"]}
        for column in _evaluation_columns():
            value: Any = condition
            for key in column.path:
                value = value.get(key) if isinstance(value, Mapping) else None
            if value is not None:
                row[column.key] = _round(value, column.digits)
        conditions.append(row)
    return {"model": report["label"], "decode": _decode_of(report.get("settings") or {}),
            "sentences": report.get("num_utterances"), "conditions": conditions}


def _t2u_row(data: Mapping[str, Any], path: Path) -> Dict[str, Any]:
    score = data["t2u_reference_text"]
    return {"split": Path(str(data.get("manifest", "?"))).stem, "decode": _decode_of(data),
            "sentences": score.get("num_sentences"), "asr_bleu": _round(score.get("bleu"), 2),
            "wer": _round(score.get("wer"), 2), "unit_ratio": _round(score.get("unit_ratio"), 2),
            "model": data.get("label"), "source": str(path)}


_CORPUS_COLUMNS = [
    {"key": "split", "header": "split"}, {"key": "pairs", "header": "pairs", "thousands": True},
    {"key": "origins", "header": "of which"},
    {"key": "source_hours", "header": "German speech (h)", "digits": 2},
    {"key": "target_hours", "header": "English speech (h)", "digits": 2},
    {"key": "units_per_second", "header": "units/s", "digits": 1}]


def _corpus_table(report: Mapping[str, Any], path: Path) -> Dict[str, Any]:
    """A corpus report's splits (pairs by origin, hours, units per second) as a ``table``."""
    rows = []
    for split, info in report["splits"].items():
        origins = (report.get("origins") or {}).get(split) or {}
        rows.append({"split": split, "pairs": info["pairs"],
                     "origins": ", ".join(f"{origin} {count:,}" for origin, count
                                          in origins.items()) or None,
                     "source_hours": _round(info["source_hours"], 2),
                     "target_hours": _round(info["target_hours"], 2),
                     "units_per_second": _round(info["units_per_second"], 1)})
    vocab = report.get("vocab") or {}
    stages = report.get("stages") or []
    built = (f"; built in {_duration(sum(st['seconds'] for st in stages))} of stages "
             f"({_duration(sum(st['cpu_seconds'] for st in stages))} of CPU)" if stages else "")
    return {"kind": "table", "title": "The corpus",
            "note": f"From `{path}`; sentencepiece: {vocab.get('source')} source and "
                    f"{vocab.get('target')} target pieces; units: "
                    f"{(report.get('units') or {}).get('unit_type', 'logmel')}, K = "
                    f"{(report.get('units') or {}).get('num_units')}{built}.",
            "columns": _CORPUS_COLUMNS, "rows": rows}


def _condition(evaluation: Mapping[str, Any], chunk_ms: Optional[int]) -> Mapping[str, Any]:
    return next((c for c in evaluation["conditions"] if c["chunk_ms"] == chunk_ms), {})


def _at_least(value: Optional[float], needed: float) -> Optional[bool]:
    return None if value is None else value >= needed


def targets_table(evaluation: Mapping[str, Any], text_mt: Optional[Mapping[str, Any]],
                  t2u_bleu: Optional[float]) -> Dict[str, Any]:
    """The quality targets of a shipped model (issue #14), each read against the ceiling of the
    same data: ``evaluation`` is :func:`summarize_report` of the test set at 320 ms and offline,
    ``text_mt`` an ``echostream-text-mt`` result (text-MT BLEU, cascade ASR-BLEU), ``t2u_bleu``
    the reference text through the model's T2U."""
    streamed, offline = _condition(evaluation, 320), _condition(evaluation, None)
    asr_bleu, text_bleu = streamed.get("speech_asr_bleu"), streamed.get("text_bleu")
    cascade = ((text_mt or {}).get("cascade") or {}).get("bleu")
    mt_bleu = ((text_mt or {}).get("text") or {}).get("bleu")
    rows: List[Dict[str, Any]] = []
    needed_bleu = max(10.0, 0.6 * cascade) if cascade is not None else 10.0
    rows.append({"what": "ASR-BLEU at 320 ms", "measured": asr_bleu,
                 "needed": f">= 10 and >= 60 % of the cascade: >= {needed_bleu:.2f}",
                 "against": None if cascade is None else f"cascade ceiling {cascade:.2f}",
                 "met": _at_least(asr_bleu, needed_bleu)})
    if mt_bleu is not None:
        rows.append({"what": "text BLEU at 320 ms", "measured": text_bleu,
                     "needed": f">= 70 % of the text-MT ceiling: >= {0.7 * mt_bleu:.2f}",
                     "against": f"text MT (beam 5) on gold German text {mt_bleu:.2f}",
                     "met": _at_least(text_bleu, 0.7 * mt_bleu)})
    wer = streamed.get("asr_wer")
    rows.append({"what": "streaming German ASR WER % at 320 ms", "measured": wer, "digits": 1,
                 "needed": "<= 15", "against": None,
                 "met": None if wer is None else wer <= 15.0})
    rows.append({"what": "reference text -> T2U -> vocoder, ASR-BLEU", "measured": t2u_bleu,
                 "needed": ">= 60", "against": "piper target speech (corpus report)",
                 "met": _at_least(t2u_bleu, 60.0)})
    ratio = (asr_bleu / offline["speech_asr_bleu"]
             if asr_bleu is not None and offline.get("speech_asr_bleu") else None)
    rows.append({"what": "ASR-BLEU at 320 ms / offline", "measured": ratio,
                 "needed": ">= 0.75 (within 25 % of offline)",
                 "against": None if not offline.get("speech_asr_bleu")
                 else f"offline {offline['speech_asr_bleu']:.2f}",
                 "met": _at_least(ratio, 0.75)})
    return {"kind": "targets", "title": "Against the targets", "rows": rows}


def _code_versions(inputs: Sequence[Path]) -> str:
    """The commits that wrote ``inputs``, from their own provenance (this tree's for a file
    that records none)."""
    versions = set()
    for path in inputs:
        try:
            recorded = json.loads(Path(path).read_text(encoding="utf-8")).get("provenance")
        except (OSError, ValueError, AttributeError):
            recorded = None
        origin = recorded if isinstance(recorded, dict) and "git_commit" in recorded \
            else provenance()
        versions.add(f"{origin['git_commit'] or 'an unknown commit'}"
                     f"{' (dirty tree)' if origin['git_dirty'] else ''}")
    return ", ".join(sorted(versions))


def summarize(reports: Sequence[Path], ceilings: Sequence[Path],
              previous: Optional[Mapping[str, Any]], name: str, command: str
              ) -> Dict[str, Any]:
    """A result summary of fresh reports and ceiling files; ``previous`` (the summary being
    replaced) gives the title, text and table titles, and keeps its tables of other kinds."""
    from echostream_fairseq.evaluation.report import load_ceilings, load_report

    fresh: Dict[str, Dict[str, Any]] = {}
    text_mt: Optional[Mapping[str, Any]] = None  # an echostream-text-mt result among the ceilings
    t2u_bleu: Optional[float] = None
    try:
        if reports:
            fresh["evaluations"] = {"kind": "evaluations", "evaluations": [
                summarize_report(load_report(path)) for path in reports]}
        for path in ceilings:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("t2u_reference_text"), dict):
                fresh.setdefault("t2u", {"kind": "t2u", "rows": []})["rows"].append(
                    _t2u_row(data, path))
                t2u_bleu = t2u_bleu if t2u_bleu is not None else _t2u_row(data, path)["asr_bleu"]
                continue
            if isinstance(data, dict) and isinstance(data.get("cascade"), dict):
                text_mt = data
            if isinstance(data, dict) and isinstance(data.get("splits"), dict) and data["splits"]:
                fresh["table"] = _corpus_table(data, path)  # a corpus report: its splits too
            for row in load_ceilings(path):
                fresh.setdefault("ceilings", {"kind": "ceilings", "rows": []})["rows"].append(
                    {"name": row["name"], "sentences": row["sentences"],
                     "asr_bleu": _round(row["asr_bleu"], 2), "wer": _round(row["wer"], 2),
                     "source": row["source"]})
    except (OSError, ValueError) as error:  # json.JSONDecodeError is a ValueError
        raise UserError(str(error)) from error
    if text_mt is not None and "evaluations" in fresh:  # the targets read against the ceilings
        fresh["targets"] = targets_table(fresh["evaluations"]["evaluations"][0], text_mt,
                                         t2u_bleu)
    base = dict(previous or {"title": name, "tables": []})
    tables: List[Dict[str, Any]] = []
    for table in base["tables"]:
        kind = table["kind"]
        if kind in fresh:
            kept = {k: v for k, v in table.items() if k in ("title", "note")}
            tables.append({**fresh.pop(kind), **kept})
        elif kind not in ("evaluations", "ceilings", "t2u"):
            tables.append(dict(table))
    tables += list(fresh.values())
    files = [*reports, *ceilings]
    inputs = ", ".join(str(p) for p in files)
    return {"provenance": {"source": f"recipe run at {_code_versions(files)} from {inputs}",
                           "command": command},
            "title": base["title"],
            **({"description": base["description"]} if base.get("description") else {}),
            "tables": tables}


# ---------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    a = parser.add_argument
    a("reports", nargs="*", type=Path,
      help="report.json files of echostream-evaluate (with --summary: its evaluations)")
    a("--ceilings", nargs="+", type=Path, default=[],
      help="corpus report.json, echostream-measure-vocoder --output and/or "
           "echostream-measure-t2u --output JSON files")
    a("--results-dir", type=Path,
      help="folder of result summaries (*.json) to render, or to write --summary into")
    a("--summary", metavar="NAME",
      help="(re)write RESULTS_DIR/NAME.json from the reports and --ceilings files")
    a("--command", dest="recipe_command",
      help="what regenerates the --summary, recorded in its provenance (default: this command)")
    a("--output", type=Path,
      help="with --results-dir: the RESULTS.md to write; else also write the tables here")
    a("--readme", type=Path,
      help="with --results-dir: rewrite this README's generated blocks (shipped, timings); "
           "else write the tables between its --block markers")
    a("--block", default="results",
      help="without --results-dir: marker name of the --readme block (default: results)")
    a("--check", action="store_true",
      help="with --results-dir: write nothing; exit 1 when --output or --readme is stale")
    add_log_level_argument(parser)
    return parser


def _render_files(opts: argparse.Namespace) -> int:
    summaries = load_summaries(opts.results_dir)
    expected: Dict[Path, str] = {}
    if opts.output:
        expected[opts.output] = render_results(summaries, opts.results_dir)
    if opts.readme:
        try:
            current = opts.readme.read_text(encoding="utf-8")
        except OSError as error:
            raise UserError(f"{opts.readme}: {error}") from error
        expected[opts.readme] = render_readme(current, summaries, opts.readme)
    if opts.check:
        stale = [path for path, text in expected.items()
                 if not path.is_file() or path.read_text(encoding="utf-8") != text]
        if stale:
            print(f"error: {', '.join(map(str, stale))} stale against {opts.results_dir} "
                  "(run `make results`)", file=sys.stderr)
            return EXIT_STALE
        logger.info("%s up to date with %s", ", ".join(map(str, expected)), opts.results_dir)
        return 0
    for path, text in expected.items():
        path.write_text(text, encoding="utf-8")
        logger.info("wrote %s", path)
    return 0


def _write_summary(opts: argparse.Namespace, argv: Optional[Sequence[str]]) -> None:
    path = opts.results_dir / f"{opts.summary}.json"
    previous = load_summary(path) if path.is_file() else None
    command = opts.recipe_command or " ".join(provenance(argv)["argv"])
    summary = check_summary(summarize(opts.reports, opts.ceilings, previous, opts.summary,
                                      command), path)
    opts.results_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_summary(summary), encoding="utf-8")
    logger.info("wrote %s", path)


def _print_tables(opts: argparse.Namespace) -> None:
    """The reports' tables as ``scripts/results_table.py`` printed them."""
    from echostream_fairseq.evaluation.report import (ceilings_table, load_ceilings, load_report,
                                                      replace_between_markers, results_table)

    try:
        reports = [load_report(path) for path in opts.reports]
        ceilings = [row for path in opts.ceilings for row in load_ceilings(path)]
    except ValueError as error:
        raise UserError(str(error)) from error
    if not reports:
        table = ceilings_table(ceilings)
    else:
        table = results_table(reports)
        if ceilings:
            table += ("\nCeilings (ASR-BLEU of speech that is not the model's, or of the "
                      "model's speech for the reference text; same recogniser and "
                      f"normalisation):\n\n{ceilings_table(ceilings)}")
    if opts.readme:
        try:
            readme = replace_between_markers(opts.readme.read_text(encoding="utf-8"), table,
                                             opts.block)
        except (OSError, ValueError) as error:
            raise UserError(f"{opts.readme}: {error}") from error
        opts.readme.write_text(readme, encoding="utf-8")
    if opts.output:
        opts.output.write_text(table, encoding="utf-8")
    print(table, end="")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    opts = parser.parse_args(argv)
    setup_logging(opts.log_level)
    inputs = bool(opts.reports or opts.ceilings)
    if opts.summary is not None:
        if opts.results_dir is None or not inputs:
            parser.error("--summary needs --results-dir and report.json or --ceilings files")
        if opts.check:
            parser.error("--check compares rendered files; it does not go with --summary")
    elif opts.results_dir is not None:
        if inputs:
            parser.error("give --summary NAME to turn reports into a summary of --results-dir")
        if not (opts.output or opts.readme):
            parser.error("--results-dir renders into --output and/or --readme: give one")
    else:
        if opts.check:
            parser.error("--check needs --results-dir")
        if not inputs:
            parser.error("give --results-dir, or report.json files, --ceilings files or both")
        if not opts.reports and opts.readme and opts.block == "results":
            parser.error("a --ceilings table alone goes into its own --block, not the results one")

    def body() -> int:
        if opts.summary is not None:
            _write_summary(opts, argv)
            if opts.output or opts.readme:
                return _render_files(opts)
            return 0
        if opts.results_dir is not None:
            return _render_files(opts)
        _print_tables(opts)
        return 0

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
