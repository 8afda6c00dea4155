"""Decoding settings: ``configs/decode/*.yaml``, ``--decode-config`` and the options that override
it, one :class:`PipelineConfig` for the agents, evaluation, T2U measurement and the benches."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from echostream_fairseq.streaming.config import (DecodeConfigError, PipelineConfig,
                                                 add_pipeline_arguments)

REPO = Path(__file__).resolve().parents[1]
DECODE = REPO / "configs" / "decode"


def _parse(*argv: str) -> PipelineConfig:
    parser = argparse.ArgumentParser()
    add_pipeline_arguments(parser)
    return PipelineConfig.from_args(parser.parse_args(list(argv)))


def test_streamspeech_yaml_is_the_code_default():
    assert PipelineConfig.from_yaml(DECODE / "streamspeech.yaml") == PipelineConfig()


def test_the_mini_models_choice_changes_only_the_unit_decoding():
    chosen = PipelineConfig.from_yaml(DECODE / "deen_mini.yaml")
    assert (chosen.unit_blank_penalty, chosen.unit_k2, chosen.unit_n2) == (3.0, 2, 1)
    assert chosen.replace(unit_blank_penalty=0.0, unit_k2=0) == PipelineConfig()


def test_the_comparisons_decodings_change_only_the_lead_in_and_whole_words():
    lead_in = PipelineConfig.from_yaml(DECODE / "streamspeech_lead_in.yaml")
    assert lead_in == PipelineConfig(frame_lead_in=True)
    assert PipelineConfig.from_yaml(DECODE / "whole_words.yaml") == lead_in.replace(
        whole_word=True)
    assert _parse("--frame-lead-in").frame_lead_in
    assert not _parse("--decode-config", str(DECODE / "streamspeech.yaml")).frame_lead_in
    assert not _parse("--decode-config", str(DECODE / "whole_words.yaml"),
                      "--no-frame-lead-in").frame_lead_in


def test_options_override_the_file_which_overrides_the_defaults(tmp_path):
    assert _parse() == PipelineConfig()
    path = tmp_path / "decode.yaml"
    path.write_text("unit_blank_penalty: 2\nwhole_word: on\nstride_n: 2\n")
    from_file = _parse("--decode-config", str(path))
    assert (from_file.unit_blank_penalty, from_file.whole_word, from_file.stride_n) \
        == (2.0, True, 2)
    given = _parse("--decode-config", str(path), "--stride-n", "3", "--whole-word", "auto",
                   "--reencode")
    assert (given.unit_blank_penalty, given.whole_word, given.stride_n, given.reencode) \
        == (2.0, None, 3, True)


def test_to_dict_reads_back(tmp_path):
    import yaml

    config = PipelineConfig(unit_k2=2, unit_blank_penalty=1.5, whole_word=False, segment_length=4)
    path = tmp_path / "round.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    assert PipelineConfig.from_yaml(path) == config


@pytest.mark.parametrize("text, message", [
    ("unit_mask: 2\n", "unknown key 'unit_mask'"),
    ("unit_k2: two\n", "unit_k2 must be int, got 'two'"),
    ("unit_k2: -1\n", "unit_k2 must be >= 0, got -1"),
    ("sentence_pause_ms: 0\n", "sentence_pause_ms must be >= 1, got 0"),
    ("max_sentence_ms: -5\n", "max_sentence_ms must be >= 1, got -5"),
    ("sentence_pause_ms: 0.5\n", "sentence_pause_ms must be int"),
    ("whole_word: sometimes\n", "whole_word must be auto, on or off"),
    ("- 1\n", "expected a mapping of decoding options"),
    ("unit_k2: [\n", "not valid YAML"),
])
def test_a_bad_decode_config_names_the_file_and_the_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(DecodeConfigError) as raised:
        PipelineConfig.from_yaml(path)
    assert str(raised.value).startswith(f"{path}: ") and message in str(raised.value)


def test_a_missing_decode_config_is_named(tmp_path):
    with pytest.raises(DecodeConfigError, match="no such decode config"):
        _parse("--decode-config", str(tmp_path / "absent.yaml"))
