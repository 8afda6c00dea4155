"""Registries hold EchoStream's names; every arch builds; the heads keep StreamSpeech's state
dict."""

import logging
from collections import Counter
from pathlib import Path
from typing import List, Sequence

import pytest
import torch
from fairseq import options, tasks
from fairseq.criterions import CRITERION_REGISTRY
from fairseq.models import ARCH_MODEL_REGISTRY, MODEL_REGISTRY
from fairseq.tasks import TASK_REGISTRY

import echostream_fairseq  # noqa: F401  (registers everything)
from echostream_fairseq.models import echostream as echostream_module
from echostream_fairseq.models.echostream import EchoStreamModel, mt_cross_attention_mask
from echostream_fairseq.models.t2u import unit_cross_attention_mask

TINY = ["--encoder-layers", "1", "--encoder-embed-dim", "16", "--encoder-ffn-embed-dim", "32",
        "--encoder-attention-heads", "2", "--conv-channels", "16", "--decoder-embed-dim", "16",
        "--decoder-ffn-embed-dim", "32", "--decoder-attention-heads", "2",
        "--translation-decoder-layers", "1", "--decoder-layers", "1",
        "--synthesizer-encoder-layers", "1"]


def write_task_dir(root: Path, text_vocab: int, mt_ffn: int = 2048) -> Path:
    """Config files of a StreamSpeech data folder (no audio: enough to build task and model)."""
    import numpy as np

    np.savez(root / "gcmvn.npz", mean=np.zeros(80, dtype=np.float32),
             std=np.ones(80, dtype=np.float32))
    (root / "config_gcmvn.yaml").write_text(
        f"global_cmvn:\n  stats_npz_path: {root}/gcmvn.npz\ninput_channels: 1\n"
        "input_feat_per_channel: 80\ntransforms:\n  '*':\n  - global_cmvn\n")
    entries = []
    for key, kind, folder, weight, layers in (("target_unigram", "transformer", "tgt", 8.0, 4),
                                              ("source_unigram", "ctc", "src", 4.0, 0),
                                              ("ctc_target_unigram", "ctc", "tgt", 4.0, 0)):
        (root / folder).mkdir(exist_ok=True)
        vocab = root / folder / "spm_unigram_de.txt"
        vocab.write_text("".join(f"p{i} 1\n" for i in range(text_vocab - 4)))
        entries.append(
            f"{key}:\n   decoder_type: {kind}\n   dict: {vocab}\n   data: {root / folder}\n"
            f"   loss_weight: {weight}\n   rdrop_alpha: 0.0\n   decoder_args:\n"
            f"      decoder_layers: {layers}\n      decoder_embed_dim: 512\n"
            f"      decoder_ffn_embed_dim: {mt_ffn}\n      decoder_attention_heads: 8\n"
            "   label_smoothing: 0.1\n")
    (root / "config_mtl_asr_st_ctcst.yaml").write_text("".join(entries))
    return root


def build(root: Path, arch: str, extra: Sequence[str] = (),
          code_size: int = 100) -> EchoStreamModel:
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        str(root), "--task", "speech_to_speech_ctc", "--config-yaml", "config_gcmvn.yaml",
        "--multitask-config-yaml", "config_mtl_asr_st_ctcst.yaml", "--target-is-code",
        "--target-code-size", str(code_size), "--criterion", "speech_to_unit_2pass_ctc_asr_st",
        "--arch", arch, *extra])
    task = tasks.setup_task(args)
    return task.build_model(args)


def test_registries_hold_echostream_names():
    assert "echostream" in MODEL_REGISTRY
    assert {"echostream", "echostream_mini"} <= set(ARCH_MODEL_REGISTRY)
    assert "speech_to_speech_ctc" in TASK_REGISTRY
    assert "speech_to_unit_2pass_ctc_asr_st" in CRITERION_REGISTRY


@pytest.mark.parametrize("arch", sorted(a for a, m in ARCH_MODEL_REGISTRY.items()
                                        if m is EchoStreamModel))
def test_every_arch_builds_at_tiny_size_and_runs_forward(arch, tmp_path):
    model = build(write_task_dir(tmp_path, 30, mt_ffn=32), arch,
                  TINY + ["--ctc-upsample-rate", "3"])
    fbank, lengths = torch.randn(2, 120, 80), torch.tensor([120, 90])
    mt_in = torch.tensor([[2, 5, 6, 7], [2, 8, 1, 1]])
    logits, extra = model(fbank, lengths, None, mt_in,
                          streaming_config={"k1": 0, "n1": 1, "k2": 0, "n2": 1,
                                            "segment_length": 4})
    assert logits.shape == (2, 4 * 3, 105)  # 100 units + 4 specials + <blank>
    assert extra["decoder_padding_mask"][1].sum() == 2 * 3  # the padded MT steps, upsampled
    assert extra["encoder_states"][-1] is extra["encoder_out"]["encoder_out"][0]


def _counts(model: torch.nn.Module) -> Counter:
    return Counter(key.split(".")[0] for key in model.state_dict())


def test_echostream_heads_match_streamspeech_state_dict(tmp_path):
    """Non-encoder keys, counts and shapes of StreamSpeech's simultaneous model (reference §2,
    §9.3)."""
    model = build(write_task_dir(tmp_path, 6000), "echostream", ["--ctc-upsample-rate", "25"], 1000)
    counts = _counts(model)
    assert counts.pop("encoder") > 0
    assert counts == {"decoder": 57, "target_unigram_decoder": 109, "synthesizer_encoder": 34,
                      "source_unigram_decoder": 2, "ctc_target_unigram_decoder": 2}
    sd = model.state_dict()
    assert sd["decoder.output_projection.weight"].shape == (1005, 512)
    assert (sd["decoder.embed_tokens.weight"].data_ptr()
            == sd["decoder.output_projection.weight"].data_ptr())
    assert sd["target_unigram_decoder.layers.0.encoder_attn.k_proj.weight"].shape == (512, 256)
    assert sd["target_unigram_decoder.output_projection.weight"].shape == (6000, 512)
    assert sd["source_unigram_decoder.proj.weight"].shape == (6000, 256)
    assert "synthesizer_encoder.layers.1.encoder_attn.k_proj.weight" not in sd

    def params(prefix: str) -> int:
        return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix))

    # StreamSpeech instantiated: MT 18.84M, unit decoder 8.92M, T2U 6.31M, CTC heads 1.54M each
    assert round(params("target_unigram_decoder.") / 1e6, 2) == 18.84
    assert round(params("decoder.") / 1e6, 2) == 8.92
    assert round(params("synthesizer_encoder.") / 1e6, 2) == 6.31
    assert round(params("source_unigram_decoder.") / 1e6, 2) == 1.54


def test_chunk_size_maps_to_segment_length_and_conformer_options_are_logged_once(tmp_path, caplog):
    root = write_task_dir(tmp_path, 30, mt_ffn=32)
    echostream_module._reported_ignored.clear()
    with caplog.at_level(logging.WARNING, logger="echostream_fairseq.models.echostream"):
        for _ in range(2):
            model = build(root, "echostream_mini",
                          TINY + ["--chunk-size", "16", "--attn-type", "espnet",
                                  "--depthwise-conv-kernel-size", "31"])
    assert model.encoder.segment_length == 16
    # StreamSpeech's Conformer kernel does not switch on the Emformer's convolution module
    assert all(layer.conv_module is None for layer in model.encoder.emformer.layers)
    assert caplog.text.count("--attn-type=espnet is ignored") == 1
    assert caplog.text.count("--depthwise-conv-kernel-size=31 is ignored") == 1
    explicit = build(root, "echostream_mini",
                     TINY + ["--chunk-size", "16", "--segment-length", "4"])
    assert explicit.encoder.segment_length == 4
    default = build(root, "echostream_mini", TINY + ["--chunk-size", "-1"])
    assert default.encoder.segment_length == 8
    convolved = build(root, "echostream_mini", TINY + ["--emformer-conv-kernel-size", "5"])
    assert all(layer.conv_module.depthwise.kernel_size == (5,)
               for layer in convolved.encoder.emformer.layers)


def test_options_that_change_training_are_refused(tmp_path):
    with pytest.raises(ValueError, match="synthesizer-augmented-cross-attention"):
        build(write_task_dir(tmp_path, 30, mt_ffn=32), "echostream_mini",
              TINY + ["--synthesizer-augmented-cross-attention"])


def test_uni_encoder_makes_t2u_states_of_a_prefix_independent_of_later_text(tmp_path):
    model = build(write_task_dir(tmp_path, 30, mt_ffn=32), "echostream_mini",
                  TINY + ["--uni-encoder"]).eval()
    x = torch.randn(6, 1, 16)
    full = model.synthesizer_encoder(x, None)["encoder_out"][0]
    prefix = model.synthesizer_encoder(x[:4], None)["encoder_out"][0]
    assert torch.allclose(full[:4], prefix, atol=1e-5)


def test_streaming_masks_follow_streamspeech_rules():
    # ST-CTC emits at frames 2 and 9, ASR at 2 and 9: step 0 reads to the segment holding frame 2
    st = torch.zeros(1, 16)
    st[0, [2, 9]] = 1.0
    mask = mt_cross_attention_mask(st.clone(), st, tgt_len=3, k1=0, n1=1, segment_length=4)
    visible: List[int] = (~mask[0]).sum(-1).tolist()
    assert visible == [4, 12, 16]  # frame 2 -> segment end 4; frame 9 -> 12; no 3rd token -> all
    unit = unit_cross_attention_mask(num_upsampled=6, num_states=3, rate=2, k2=0, n2=1,
                                     device=torch.device("cpu"))
    assert (~unit).sum(-1).tolist() == [1, 1, 2, 2, 3, 3]
