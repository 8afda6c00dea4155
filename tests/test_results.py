"""echostream-results: RESULTS.md and the README's generated blocks come from the committed result
summaries (byte for byte, so a stale file fails here), reruns change nothing, bad summaries are
one error naming the file, and fresh reports turn into summaries the recipe can commit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from echostream_fairseq.cli import results
from echostream_fairseq.cli.common import UserError

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "recipes" / "deen_mini" / "results"


def _render(tmp_path: Path) -> tuple:
    readme = tmp_path / "README.md"
    shutil.copyfile(REPO / "README.md", readme)
    output = tmp_path / "RESULTS.md"
    assert results.main(["--results-dir", str(RESULTS_DIR), "--output", str(output),
                         "--readme", str(readme), "--log-level", "WARNING"]) == 0
    return output.read_bytes(), readme.read_bytes()


def test_committed_results_md_and_readme_blocks_are_what_the_json_gives(tmp_path):
    rendered, readme = _render(tmp_path)
    assert rendered == (REPO / "RESULTS.md").read_bytes(), "RESULTS.md is stale: run make results"
    assert readme == (REPO / "README.md").read_bytes(), "README blocks are stale: make results"


def test_a_rerun_writes_the_same_bytes(tmp_path):
    first = _render(tmp_path)
    # again over its own output: the blocks are replaced, not added to
    assert results.main(["--results-dir", str(RESULTS_DIR), "--output",
                         str(tmp_path / "RESULTS.md"), "--readme", str(tmp_path / "README.md"),
                         "--log-level", "WARNING"]) == 0
    assert ((tmp_path / "RESULTS.md").read_bytes(), (tmp_path / "README.md").read_bytes()) == first


def test_every_summary_records_where_its_figures_come_from():
    for path in sorted(RESULTS_DIR.glob("*.json")):
        summary = results.load_summary(path)
        assert summary["provenance"]["source"] and summary["provenance"]["command"], path.name
        assert path.stat().st_size < 16_000, f"{path.name}: a summary stays a few KB"
        assert path.read_text(encoding="utf-8") == results.dump_summary(summary), (
            f"{path.name} is not in the generator's own layout")


def test_the_headline_block_holds_the_best_score_and_the_ceiling():
    block = results.render_headline_block(results.load_summary(RESULTS_DIR / "headline.json"))
    headline = json.loads((RESULTS_DIR / "headline.json").read_text(encoding="utf-8"))
    system = headline["tables"][0]["evaluations"][0]
    best = max(c["speech_asr_bleu"] for c in system["conditions"])
    assert f"Best ASR-BLEU: **{best:.2f}**" in block
    assert "the ceiling is **90.27**" in block  # the corpus's own target speech


def test_check_exits_1_on_a_stale_file_and_writes_nothing(tmp_path, capsys):
    _render(tmp_path)
    args = ["--results-dir", str(RESULTS_DIR), "--output", str(tmp_path / "RESULTS.md"),
            "--readme", str(tmp_path / "README.md"), "--check"]
    assert results.main(args) == 0
    readme = tmp_path / "README.md"
    end = "<!-- timings:end -->"
    stale = readme.read_text(encoding="utf-8").replace(end, f"a hand-typed figure: 42\n{end}")
    readme.write_text(stale, encoding="utf-8")
    assert results.main(args) == results.EXIT_STALE
    message = capsys.readouterr().err
    assert str(readme) in message and "make results" in message
    assert readme.read_text(encoding="utf-8") == stale
    (tmp_path / "RESULTS.md").unlink()
    assert results.main(args) == results.EXIT_STALE
    assert not (tmp_path / "RESULTS.md").exists()


def test_a_malformed_summary_is_a_user_error_naming_the_file(tmp_path, capsys):
    broken = tmp_path / "results"
    shutil.copytree(RESULTS_DIR, broken)
    (broken / "timings.json").write_text('{"provenance": {', encoding="utf-8")
    with pytest.raises(UserError, match="timings.json"):
        results.load_summaries(broken)
    assert results.main(["--results-dir", str(broken), "--output", str(tmp_path / "R.md")]) == 2
    assert "timings.json" in capsys.readouterr().err and not (tmp_path / "R.md").exists()
    (broken / "timings.json").write_text(json.dumps({"title": "t", "tables": []}), "utf-8")
    with pytest.raises(UserError, match=r"timings.json: provenance"):
        results.load_summaries(broken)
    summary = json.loads((RESULTS_DIR / "t2u_sweep.json").read_text(encoding="utf-8"))
    del summary["tables"][0]["rows"][3]["asr_bleu"]
    (broken / "timings.json").unlink()
    (broken / "t2u_sweep.json").write_text(json.dumps(summary), encoding="utf-8")
    with pytest.raises(UserError, match=r"t2u_sweep.json: tables\[0\].rows\[3\]: missing"):
        results.load_summaries(broken)


def test_a_readme_without_the_markers_is_refused(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# no generated blocks\n", encoding="utf-8")
    assert results.main(["--results-dir", str(RESULTS_DIR), "--readme", str(readme)]) == 2
    assert "shipped:begin" in capsys.readouterr().err
    assert readme.read_text(encoding="utf-8") == "# no generated blocks\n"


def _report(label: str, bleu: float) -> dict:
    """What echostream-evaluate writes, reduced to what a summary reads."""
    def condition(chunk):
        return {"chunk_ms": chunk,
                "speech": {"asr_bleu": bleu, "asr_bleu_raw": bleu / 2, "num_without_output": 0,
                           "num_empty": 1, "latency": {"AL": 2388.4, "AL_CA": 2557.49}},
                "text": {"bleu": 1.0234, "latency": {"AL": 2028.0}},
                "asr": {"wer": 57.2949, "cer": 30.21}, "compute": {"rtf": 0.07412}}
    return {"label": label, "num_utterances": 504,
            "settings": {"decode": {"config": "configs/decode/deen_mini.yaml",
                                    "unit_blank_penalty": 3.0, "unit_k2": 2, "unit_n2": 1}},
            "results": {"streaming": [condition(320)], "offline": condition(None)}}


def test_fresh_reports_become_a_summary_that_keeps_the_text(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "provenance", lambda argv=None: {
        "git_commit": "abc123", "git_dirty": False, "argv": ["echostream-results"]})
    folder = tmp_path / "results"
    folder.mkdir()
    shutil.copyfile(RESULTS_DIR / "headline.json", folder / "headline.json")
    (tmp_path / "report.json").write_text(json.dumps(_report("fresh model", 1.2149)), "utf-8")
    (tmp_path / "corpus.json").write_text(json.dumps(
        {"splits": {}, "asr": {"bleu": 90.2711, "wer": 5.4321, "num_sentences": 504}}), "utf-8")
    (tmp_path / "t2u.json").write_text(json.dumps(
        {"label": "fresh model", "manifest": "data/dev_sampled.units.tsv",
         "decode": {"unit_blank_penalty": 3.0, "unit_k2": 2, "unit_n2": 1},
         "t2u_reference_text": {"bleu": 15.649, "wer": 70.04, "num_sentences": 100,
                                "unit_ratio": 0.6871}}), "utf-8")
    assert results.main([str(tmp_path / "report.json"), "--results-dir", str(folder),
                         "--summary", "headline", "--command", "run.sh --stage 4",
                         "--ceilings", str(tmp_path / "corpus.json"), str(tmp_path / "t2u.json"),
                         "--log-level", "WARNING"]) == 0
    fresh = results.load_summary(folder / "headline.json")
    committed = results.load_summary(RESULTS_DIR / "headline.json")
    assert fresh["title"] == committed["title"]
    assert fresh["description"] == committed["description"]
    assert fresh["provenance"]["command"] == "run.sh --stage 4"
    assert "abc123" in fresh["provenance"]["source"]
    evaluations, ceilings = fresh["tables"][0], fresh["tables"][1]
    assert evaluations["title"] == committed["tables"][0]["title"]  # table titles kept
    [system] = evaluations["evaluations"]
    assert (system["model"], system["sentences"]) == ("fresh model", 504)
    assert system["decode"] == {"unit_blank_penalty": 3.0, "unit_k2": 2, "unit_n2": 1}
    streamed = system["conditions"][0]
    assert streamed["speech_asr_bleu"] == 1.21 and streamed["speech_latency_AL"] == 2388
    assert streamed["asr_wer"] == 57.3 and streamed["compute_rtf"] == 0.074
    assert ceilings["rows"] == [{"name": "piper target speech (corpus report)",
                                 "sentences": 504, "asr_bleu": 90.27, "wer": 5.43,
                                 "source": str(tmp_path / "corpus.json")}]
    [t2u_row] = [t for t in fresh["tables"] if t["kind"] == "t2u"][0]["rows"]
    assert (t2u_row["split"], t2u_row["asr_bleu"], t2u_row["unit_ratio"]) == (
        "dev_sampled.units", 15.65, 0.69)
    block = results.render_headline_block(fresh)
    assert "Best ASR-BLEU: **1.21**, fresh model at 320 ms chunks on 504 test sentences" in block
    # the same inputs again: the same bytes
    before = (folder / "headline.json").read_bytes()
    assert results.main([str(tmp_path / "report.json"), "--results-dir", str(folder),
                         "--summary", "headline", "--command", "run.sh --stage 4",
                         "--ceilings", str(tmp_path / "corpus.json"), str(tmp_path / "t2u.json"),
                         "--log-level", "WARNING"]) == 0
    assert (folder / "headline.json").read_bytes() == before


def test_a_corpus_report_among_the_ceilings_also_gives_its_splits(tmp_path):
    corpus = tmp_path / "report.json"
    corpus.write_text(json.dumps({
        "splits": {"train": {"pairs": 17764, "source_hours": 15.2049, "target_hours": None,
                             "units": 1, "units_per_second": None},
                   "test": {"pairs": 504, "source_hours": 0.44, "target_hours": 0.3342,
                            "units": 1, "units_per_second": 19.43}},
        "origins": {"train": {"ding": 8690, "deu-eng": 9074}, "test": {"deu-eng": 504}},
        "vocab": {"source": 2000, "target": 2000},
        "units": {"unit_type": "piper-phonemes", "num_units": 151},
        "asr": {"bleu": 90.59, "wer": 5.12, "num_sentences": 504}}), "utf-8")
    summary = results.summarize([], [corpus], None, "shipped_model", "run.sh")
    [table] = [t for t in summary["tables"] if t["kind"] == "table"]
    assert [row["split"] for row in table["rows"]] == ["train", "test"]
    assert table["rows"][0]["origins"] == "ding 8,690, deu-eng 9,074"
    assert table["rows"][0]["target_hours"] is None and table["rows"][1]["target_hours"] == 0.33
    assert "piper-phonemes, K = 151" in table["note"]
    text = results.RENDERERS["table"](table)
    assert "| train | 17,764 | ding 8,690, deu-eng 9,074 | 15.20 | - | - |" in text


def test_a_missing_report_is_one_error_line(tmp_path, capsys):
    assert results.main([str(tmp_path / "missing.json"), "--results-dir", str(tmp_path),
                         "--summary", "headline"]) == 2
    assert "missing.json" in capsys.readouterr().err
    assert not (tmp_path / "headline.json").exists()


def test_the_targets_are_read_against_the_text_mt_and_cascade_ceilings(tmp_path):
    report = _report("shipped", 14.0)
    report["results"]["offline"]["speech"]["asr_bleu"] = 20.0  # 320 ms is 0.70 of offline
    (tmp_path / "report.json").write_text(json.dumps(report), "utf-8")
    (tmp_path / "text_mt.json").write_text(json.dumps(
        {"updates": 4000, "text": {"bleu": 1.2, "wer": 80.0, "num_sentences": 504},
         "cascade": {"bleu": 30.0, "wer": 60.0, "num_sentences": 504}}), "utf-8")
    (tmp_path / "t2u.json").write_text(json.dumps(
        {"label": "shipped", "manifest": "data/test_sampled.tsv", "decode": {},
         "t2u_reference_text": {"bleu": 61.0, "wer": 20.0, "num_sentences": 504}}), "utf-8")
    summary = results.summarize([tmp_path / "report.json"],
                                [tmp_path / "text_mt.json", tmp_path / "t2u.json"], None,
                                "shipped_model", "run.sh")
    [ceilings] = [t for t in summary["tables"] if t["kind"] == "ceilings"]
    assert [(row["name"].split(" ->")[0], row["asr_bleu"]) for row in ceilings["rows"]] == [
        ("gold German text", 30.0)]
    [targets] = [t for t in summary["tables"] if t["kind"] == "targets"]
    met = {row["what"]: (row["measured"], row["met"]) for row in targets["rows"]}
    # ASR-BLEU 14 >= 10 but < 60 % of the cascade's 30 (18); text BLEU 1.02 >= 0.7 * 1.2
    assert met["ASR-BLEU at 320 ms"] == (14.0, False)
    assert "18.00" in targets["rows"][0]["needed"]
    assert met["text BLEU at 320 ms"] == (1.02, True)
    assert met["streaming German ASR WER % at 320 ms"] == (57.3, False)
    assert met["reference text -> T2U -> vocoder, ASR-BLEU"] == (61.0, True)
    assert met["ASR-BLEU at 320 ms / offline"] == (0.7, False)
    text = results.RENDERERS["targets"](targets)
    assert "| ASR-BLEU at 320 ms | 14.00 | >= 10 and >= 60 % of the cascade: >= 18.00 | " \
           "cascade ceiling 30.00 | no |" in text
