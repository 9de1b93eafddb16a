"""The one device switch: spelling, resolution, config loading, and every model a function builds or loads
landing on the device it was given (the CUDA case runs where there is a GPU)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from coea.config import (
    RunConfig,
    SplitConfig,
    SyntheticConfig,
    config_to_dict,
    load_run_config,
    run_config_from_dict,
)
from coea.data.split import chronological_split
from coea.data.synthetic import generate_synthetic
from coea.device import check_trainer_device, model_device, pin_torch_threads, resolve_device
from coea.dsie.config import DsieConfig, EncoderConfig, GroupConfig, RqVaeConfig
from coea.dsie.encoder import encode, load_encoder, train_encoder
from coea.dsie.rqvae import load_rqvae, train_rqvae
from coea.dsie.run import run_dsie
from coea.dsie.sequences import user_sequences
from coea.errors import CoeaInputError
from coea.llm.config import ModelConfig
from coea.llm.models import build_model_and_tokenizer, load_bundle, save_bundle
from coea.llm.sft import train_sft
from coea.llm.sft_config import SftTrainConfig
from tests.helpers import tiny_causal_lm

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]  # the CUDA case only where there is a GPU
ENCODER = EncoderConfig(dim=8, n_layers=1, n_heads=2, max_len=8, epochs=2, batch_size=64, seed=1)
RQVAE = RqVaeConfig(input_dim=8, hidden_dims=[16], latent_dim=8, codebook_sizes=[3, 3], epochs=3, kmeans_iters=3)
MODEL = ModelConfig(hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=16,
                    max_position_embeddings=32)
CATS = ["a", "b", "c", "d"]
WORDS = ["group:", "recent:", ";", "novel:", *CATS]


def _on(model, device: str) -> bool:
    return model_device(model).type == torch.device(device).type


@pytest.fixture(scope="module")
def split():
    synth = SyntheticConfig(seed=3, n_users=60, n_categories=10, n_groups=3, items_per_category=4,
                            mean_interactions=30, min_interactions=20)
    return chronological_split(generate_synthetic(synth).interactions, SplitConfig())


# --- spelling and resolution ---------------------------------------------------------------------------------

def test_auto_follows_cuda_availability(monkeypatch):
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match=r"device 'cuda' requested but CUDA is not available; use --device cpu"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="'cuda:1' requested but CUDA is not available"):
        resolve_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == "cuda" and resolve_device(" CUDA:1 ") == "cuda:1"
    with pytest.raises(ValueError, match=r"only 2 CUDA device\(s\) are visible"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("bad", ["tpu", "gpu", "cuda:", "cuda:x", "cpu:0", "", "mps"])
def test_bad_spellings_are_rejected(bad):
    with pytest.raises(ValueError, match=f"device must be one of auto, cpu, cuda or cuda:N, got {bad!r}"):
        RunConfig(device=bad)
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device(bad)


def test_trainers_refuse_a_gpu_they_would_replace():
    for ok in ("cpu", "cuda", "cuda:0"):
        check_trainer_device(ok)
    with pytest.raises(ValueError, match="CUDA_VISIBLE_DEVICES=1 and --device cuda"):
        check_trainer_device("cuda:1")


def test_yaml_top_level_device(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("device: cuda:1\nsplit:\n  n_future: 3\n")
    cfg = load_run_config(path)
    assert cfg.device == "cuda:1" and cfg.split.n_future == 3  # validated, not resolved: no GPU needed here
    assert config_to_dict(cfg)["device"] == "cuda:1"
    assert RunConfig().device == "auto" and load_run_config(None).device == "auto"
    assert run_config_from_dict(config_to_dict(cfg), where="json") == cfg  # the JSON round trip keeps it
    path.write_text("device: tpu\n")
    with pytest.raises(ValueError, match=r"c.yaml: device must be one of .*got 'tpu'"):
        load_run_config(path)


@pytest.mark.parametrize("section", ["dsie:\n  encoder:", "dsie:\n  rqvae:", "llm:\n  model:", "llm:\n  novelty:",
                                     "llm:\n  relevance:", "pco:\n  dpo:"])
def test_old_per_section_device_names_the_new_key(tmp_path, section):
    path = tmp_path / "old.yaml"
    path.write_text(f"{section}\n    device: cuda\n")
    old = r"\]\.\w+: unknown key 'device': use the top-level `device:` \(or --device\)$"
    with pytest.raises(ValueError, match=old):
        load_run_config(path)


# --- every model lands on the device it was given -----------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
def test_encoder_and_rqvae(split, tmp_path, device):
    enc = train_encoder(ENCODER, split.histories, tmp_path / "enc", device=device)
    assert _on(enc.model, device)
    seqs = user_sequences(split.histories.interactions, enc.vocab, ENCODER.collapse_repeats)
    emb, _ = encode(enc.model, list(seqs.values()), ENCODER)  # inputs follow the model
    config = tmp_path / "enc" / "encoder_config.json"  # an artifact from before the switch still loads
    config.write_text(json.dumps({**json.loads(config.read_text()), "device": "cuda:7"}))
    model, _, _ = load_encoder(tmp_path / "enc", device)
    assert _on(model, device)
    again, _ = encode(model, list(seqs.values()), ENCODER)
    np.testing.assert_allclose(again, emb, atol=1e-5)
    rq = train_rqvae(RQVAE, emb, tmp_path / "rq", device=device)
    assert _on(rq.model, device)
    loaded = load_rqvae(tmp_path / "rq", device)
    assert _on(loaded, device)
    ids = loaded.encode_ids(torch.as_tensor(emb))  # a CPU tensor in, quantised on the model's device
    assert ids.device.type == torch.device(device).type and (ids.cpu().numpy() == rq.ids).all()


@pytest.mark.parametrize("device", DEVICES)
def test_run_dsie(split, device):
    cfg = DsieConfig(encoder=ENCODER, rqvae=RQVAE, group=GroupConfig(depth=1, min_group_size=2))
    res = run_dsie(cfg, split.histories, split.warm_users, split.cold_users, device=device)
    assert _on(res.encoder.model, device) and _on(res.rqvae.model, device)


@pytest.mark.parametrize("device", DEVICES)
def test_llm_build_load_and_sft(tmp_path, device):
    bundle = build_model_and_tokenizer(MODEL, CATS, ["group: recent: ; novel:"], [2, 2], device=device)
    assert _on(bundle.model, device)
    assert _on(load_bundle(save_bundle(bundle, tmp_path / "b"), device=device).model, device)
    path = tiny_causal_lm(tmp_path / "m", WORDS)
    model, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)  # on the CPU
    examples = [{"prompt": "group: recent: a ; novel:", "completion": " b </s>"}] * 8
    train_sft(SftTrainConfig(epochs=1, batch_size=8, logging_steps=1), model, tok, examples, device=device)
    assert _on(model, device)


def test_trainer_flags_follow_device_and_precision():
    """SFT and DPO share one set of device flags: CPU = use_cpu, fp32 unless bf16 is asked for; CUDA = pinned
    batches, bf16 where asked, and with ``auto`` where the GPU supports it (its answer stood in for here)."""
    from coea.device import Precision, trainer_flags

    cpu = trainer_flags("cpu")
    assert cpu["use_cpu"] and not cpu["bf16"] and not cpu["fp16"] and not cpu["dataloader_pin_memory"]
    assert trainer_flags("cpu", "bf16")["bf16"]
    gpu = trainer_flags("cuda", Precision.FP32, compile_model=True)
    assert not gpu["use_cpu"] and not gpu["bf16"] and gpu["dataloader_pin_memory"] and gpu["torch_compile"]
    with pytest.raises(ValueError):
        trainer_flags("cpu", "fp8")


@pytest.mark.parametrize("supported", [True, False])
def test_auto_precision_on_cuda_follows_the_gpus_bf16_support(monkeypatch, supported):
    """``precision: auto`` on a CUDA device: bf16 in the trainers' flags and the distill update's autocast exactly
    where ``torch.cuda.is_bf16_supported()`` says so (stood in for: no GPU here); fp32 and the CPU never."""
    import warnings

    from coea.device import Precision, trainer_flags
    from coea.llm.distill import _autocast

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: supported)
    assert trainer_flags("cuda:0")["bf16"] is supported and trainer_flags("cuda", "bf16")["bf16"]
    assert not trainer_flags("cuda", Precision.FP32)["bf16"] and not trainer_flags("cpu")["bf16"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that CUDA is not available to an autocast made here
        assert isinstance(_autocast("cuda:0", Precision.AUTO), torch.autocast) is supported
        assert isinstance(_autocast("cuda:0", Precision.BF16), torch.autocast)
    assert not isinstance(_autocast("cuda:0", Precision.FP32), torch.autocast)
    assert not isinstance(_autocast("cpu", Precision.AUTO), torch.autocast)


def test_resolve_device_pins_coea_torch_threads_in_this_process_and_for_child_steps(monkeypatch):
    """Every stage resolves its device first, so COEA_TORCH_THREADS holds outside the CLI too (an in-process flow,
    a kfp.local step); OMP_NUM_THREADS carries it to child processes. A bad value is an input error."""
    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.setenv("COEA_TORCH_THREADS", "3")
    try:
        assert resolve_device("cpu") == "cpu"
        assert torch.get_num_threads() == 3 and os.environ["OMP_NUM_THREADS"] == "3"
        monkeypatch.setenv("COEA_TORCH_THREADS", "")
        assert pin_torch_threads() is None and torch.get_num_threads() == 3
        with pytest.raises(CoeaInputError, match="COEA_TORCH_THREADS: must be a positive integer, got '0'"):
            pin_torch_threads("0")
    finally:
        torch.set_num_threads(before)


def test_activation_checkpointing_is_off_unless_the_config_asks_for_it(tmp_path):
    """trl's SFT and DPO configs turn activation checkpointing on by default: a second forward pass per layer in
    every backward (bench_train: DPO 0.34x, SFT 0.8x the examples/s on the CPU) that the small models do not need.
    It reaches the trainers' arguments only from ``activation_checkpointing: true``."""
    from trl import SFTConfig

    from coea.device import trainer_flags
    from coea.llm.dpo import dpo_args
    from coea.llm.dpo_config import DpoTrainConfig

    trl_default = SFTConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False)
    assert trl_default.activation_checkpointing is True  # what trainer_flags undoes
    assert SFTConfig(output_dir=str(tmp_path), **trainer_flags("cpu")).activation_checkpointing is False
    assert SFTConfig(output_dir=str(tmp_path), **trainer_flags("cpu", checkpointing=True)).activation_checkpointing
    assert dpo_args(DpoTrainConfig(), str(tmp_path)).activation_checkpointing is False
    assert dpo_args(DpoTrainConfig(activation_checkpointing=True), str(tmp_path)).activation_checkpointing is True
