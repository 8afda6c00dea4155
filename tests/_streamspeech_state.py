"""StreamSpeech-layout checkpoints for tests, with the key names StreamSpeech's own code produces.

``fixtures/streamspeech_tiny_state_keys.json`` lists every state-dict key (and shape) of a
``streamspeech`` model built by StreamSpeech's code at commit 375a73ab (its header says how). The
decoder tensors are shaped like a given echostream model's, so tests check names, not corpus sizes.
"""

import json
import re
from argparse import Namespace
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from _fairseq_cli import TINY_MODEL, corpus_dir, data_args

STREAMSPEECH_KEYS: Dict[str, list] = json.loads(
    (Path(__file__).parent / "fixtures" / "streamspeech_tiny_state_keys.json").read_text()
)["keys"]
# Rows of the vocabulary-sized tensors in StreamSpeech's released models (6000 spm, 1000 units).
RELEASED_VOCABULARY = {
    "source_unigram_decoder.proj.weight": 6000, "source_unigram_decoder.proj.bias": 6000,
    "ctc_target_unigram_decoder.proj.weight": 6000, "ctc_target_unigram_decoder.proj.bias": 6000,
    "target_unigram_decoder.embed_tokens.weight": 6000,
    "target_unigram_decoder.output_projection.weight": 6000,
    "decoder.embed_tokens.weight": 1005, "decoder.output_projection.weight": 1005,
}


def tiny_model_args(tiny_corpus: Any, save_dir: Path, *more: str) -> list:
    """fairseq-train arguments of the tiny echostream model on the tiny corpus (``more``
    overrides)."""
    return data_args(corpus_dir(tiny_corpus), save_dir) + [
        "--arch", "echostream_mini", *TINY_MODEL, "--uni-encoder", "--ctc-upsample-rate", "10",
        "--cpu", *more,
    ]


def build_tiny_model(tiny_corpus: Any, save_dir: Path, *more: str) -> Tuple[Any, nn.Module]:
    """``(cfg, model)`` as fairseq-train builds them for :func:`tiny_model_args`."""
    from echostream_fairseq.training import build_task_and_model

    cfg, _, model = build_task_and_model(tiny_model_args(tiny_corpus, save_dir, *more))
    return cfg, model


def streamspeech_state(model: nn.Module,
                       resize: Optional[Dict[str, int]] = None) -> Dict[str, torch.Tensor]:
    """StreamSpeech's keys: decoders shaped like ``model`` (rows per ``resize``), a Conformer
    encoder."""
    generator = torch.Generator().manual_seed(5)
    own = model.state_dict()
    state = {}
    keys = dict(STREAMSPEECH_KEYS)
    # the fixture lists one layer per decoder stack; deeper models repeat layer 0's names
    keys.update({key: list(tensor.shape) for key, tensor in own.items()
                 if not key.startswith("encoder.") and key not in keys
                 and re.sub(r"\.layers\.\d+\.", ".layers.0.", key, count=1) in STREAMSPEECH_KEYS})
    for key, shape in keys.items():
        if not key.startswith("encoder."):
            assert key in own, f"StreamSpeech decoder key {key} has no counterpart in echostream"
            shape = list(own[key].shape)
            if resize and key in resize:
                shape[0] = resize[key]
        state[key] = torch.randn(shape, generator=generator) if shape else torch.tensor(7)
    # tensors the model ties (input/output embeddings) are one tensor in a trained checkpoint too
    first_of_storage: Dict[int, str] = {}
    for key, tensor in own.items():
        first = first_of_storage.setdefault(tensor.data_ptr(), key)
        if first != key and key in state and first in state:
            state[key] = state[first]
    return state


def save_streamspeech(state: Dict[str, torch.Tensor], path: Path, num_updates: int = 100,
                      model_cfg: Optional[Dict[str, Any]] = None) -> None:
    """A fairseq-layout checkpoint as StreamSpeech's training writes it (arch ``streamspeech``;
    ``model_cfg``: more of the ``cfg["model"]`` Namespace, which a real one holds in full)."""
    model = Namespace(arch="streamspeech", **(model_cfg or {}))
    torch.save({"args": None, "cfg": {"model": model}, "model": state,
                "optimizer_history": [{"criterion_name": "SpeechToUnit2passCTCASRSTCriterion",
                                       "optimizer_name": "FairseqAdam",
                                       "lr_scheduler_state": {"best": 4.2},
                                       "num_updates": num_updates}],
                "extra_state": {"train_iterator": {"epoch": 3}},
                "last_optimizer_state": {"state": {}}}, path)
