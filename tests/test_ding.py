"""Ding (Debian's trans-de-en) as a source of extra training pairs: the parser on sample lines,
the counts of the installed dictionary, and a tiny build whose dev and test stay as they were."""

from __future__ import annotations

import json
from pathlib import Path

from echostream_fairseq.corpus.build import extra_training_pairs
from echostream_fairseq.corpus.ding import (DING_PHRASE, DING_SENTENCE, extract_ding_pairs,
                                            load_ding_pairs)
from echostream_fairseq.corpus.freedict import dedup_key, load_freedict_pairs
from echostream_fairseq.data.manifests import read_tsv
from echostream_fairseq.data.validate import find_problems

LINES = [
    "# Version :: devel 2023-01-30\n",
    "Abart {f}; Variante {f} (von etw.) | Abarten {pl}; Varianten {pl} | Es gibt sie in den "
    "unterschiedlichsten Varianten. :: variation; variant (of sth.) | variations; variants | "
    "They come in all shapes and sizes.\n",
    "Noch ist nicht aller Tage Abend.; Man soll den Tag nicht vor dem Abend loben. :: It’s not "
    "over until it’s over.; It’s not / It isn’t over till the fat lady sings. [Am.]\n",
    "eine Waffe unter dem Sakko tragen :: to be packing a weapon under your jacket\n",
    "jdm. etw. geben :: to give sb. sth.\n",  # placeholders: a pattern, not speech
    "Aal {m} | Aal blau :: eel\n",  # sub-entries do not line up
    "Das Abendessen hat mir geschmeckt. :: I enjoyed the supper very very very very much.\n",
]


def test_sentences_and_phrases_keep_the_first_alternative_without_notes():
    pairs = [(p.origin, p.de, p.en) for p in extract_ding_pairs(LINES)]
    assert pairs == [
        (DING_SENTENCE, "Es gibt sie in den unterschiedlichsten Varianten.",
         "They come in all shapes and sizes."),
        (DING_SENTENCE, "Noch ist nicht aller Tage Abend.", "It's not over until it's over."),
        (DING_PHRASE, "eine Waffe unter dem Sakko tragen",
         "to be packing a weapon under your jacket"),
        (DING_SENTENCE, "Das Abendessen hat mir geschmeckt.",
         "I enjoyed the supper very very very very much."),
    ]


def test_the_installed_dictionary_gives_about_18k_sentences_and_56k_phrases():
    """Measured on trans-de-en 1.9-6 (devel 2023-01-30): 18,393 sentence and 55,715 phrase
    pairs, each side distinct."""
    pairs = load_ding_pairs()
    sentences = [p for p in pairs if p.origin == DING_SENTENCE]
    phrases = [p for p in pairs if p.origin == DING_PHRASE]
    assert 15_000 <= len(sentences) <= 22_000 and 45_000 <= len(phrases) <= 70_000
    assert len({dedup_key(p.de) for p in pairs}) == len(pairs)
    assert len({dedup_key(p.en) for p in pairs}) == len(pairs)
    assert all(len(p.de.split()) >= 3 and p.en[-1] in ".?!" for p in sentences)
    assert all(2 <= len(p.en.split()) <= 12 for p in phrases)


def test_extra_pairs_share_no_side_with_any_freedict_pair():
    freedict = load_freedict_pairs()
    extra = extra_training_pairs(["ding", "ding-phrases"], freedict, seed=1)
    taken_de, taken_en = {dedup_key(p.de) for p in freedict}, {dedup_key(p.en) for p in freedict}
    assert len(extra) > 60_000
    assert not any(dedup_key(p.de) in taken_de or dedup_key(p.en) in taken_en for p in extra)
    sample = extra_training_pairs(["ding"], freedict, seed=1, limit=5)
    assert len(sample) == 5 and {p.origin for p in sample} == {DING_SENTENCE}
    assert sample == extra_training_pairs(["ding"], freedict, seed=1, limit=5)


def test_a_build_with_extra_pairs_keeps_dev_and_test_and_trains_on_more(tiny_corpus: Path,
                                                                       prepare_mini,
                                                                       tmp_path: Path):
    data = tmp_path / "data"
    prepare_mini(data, "--extra-pairs", "ding", "--max-extra-pairs", "5", "--skip-asr")
    pairs, before = read_tsv(data / "pairs.tsv"), read_tsv(tiny_corpus / "pairs.tsv")
    held = [(p["id"], p["split"]) for p in pairs if p["split"] != "train"]
    assert held == [(p["id"], p["split"]) for p in before if p["split"] != "train"]
    train = [p for p in pairs if p["split"] == "train"]
    assert len(train) == 18 + 5 and sum(p["origin"] == DING_SENTENCE for p in train) == 5
    assert len(read_tsv(data / "train_sampled.units.tsv")) == 23
    assert find_problems(data / "train_sampled.units.tsv") == []
    report = json.loads((data / "report.json").read_text(encoding="utf-8"))
    assert report["origins"]["train"][DING_SENTENCE] == 5
    assert report["splits"]["train"]["pairs"] == 23
