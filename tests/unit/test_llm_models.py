"""Model factory: config validation, scratch models, local pretrained + LoRA, save/reload of bundles."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from coea.errors import CoeaInputError
from coea.llm.config import ModelConfig
from coea.llm.decode import CategoryIndex, category_logprobs, rank_categories, relevance_scores
from coea.llm.models import (
    build_model_and_tokenizer,
    build_scratch_model,
    load_bundle,
    load_pretrained,
    make_trainable,
    save_bundle,
)
from coea.llm.prompts import PromptContext, category_text, novelty_prompt, relevance_prompt
from coea.llm.tokenizer import build_scratch_tokenizer
from tests.helpers import tiny_causal_lm

CATS = ["Comedy", "Comedy|Romance", "Children's", "Sci Fi", "Drama", "Thriller"]
CTX = PromptContext(csid=(1, 0), profile="Group 1-0: fans of Drama (30%)", short_term=("Drama", "Sci Fi"))
WORDS = ["group:", "profile:", "recent:", ";", "novel:", "candidate:", "relevant:", "yes", "no", *CATS]


@pytest.mark.parametrize(("field", "value", "match"), [
    ("architecture", "gpt2", "architecture must be one of"),
    ("hidden_size", 0, "hidden_size must be > 0, got 0"),
    ("num_heads", 3, r"hidden_size \(64\) must be divisible by num_heads \(3\)"),
    ("num_kv_heads", 3, r"num_heads \(4\) must be divisible by num_kv_heads \(3\)"),
    ("lora_dropout", 1.0, r"lora_dropout must be in \[0, 1\), got 1.0"),
    ("lora_target_modules", [], "lora_target_modules is empty"),
    ("base_model", "", "base_model is empty"),
])
def test_config_rejects_bad_values(field, value, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**{field: value})


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_scratch_model_matches_config_and_tokenizer(arch):
    tok = build_scratch_tokenizer(CATS, [CTX.profile], [2, 2])
    cfg = ModelConfig(architecture=arch, hidden_size=32, num_layers=1, num_heads=4, num_kv_heads=2,
                      intermediate_size=48)
    model = build_scratch_model(cfg, tok)
    assert model.config.model_type == arch
    assert model.get_input_embeddings().weight.shape == (len(tok), 32)
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()  # tied
    assert (model.config.pad_token_id, model.config.eos_token_id) == (tok.pad_token_id, tok.eos_token_id)
    again = build_scratch_model(cfg, tok)  # seeded: same weights, and the global RNG is left alone
    state = torch.random.get_rng_state()
    build_scratch_model(cfg, tok)
    assert torch.equal(state, torch.random.get_rng_state())
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters(), strict=True))


def test_scratch_bundle_reloads_with_identical_scores(tmp_path):
    cfg = ModelConfig(hidden_size=32, intermediate_size=48)
    bundle = build_model_and_tokenizer(cfg, CATS, [CTX.profile], [2, 2])
    assert bundle.is_scratch and bundle.single_token_categories
    prompts = [novelty_prompt(CTX), novelty_prompt(CTX, with_group=False)]
    rel = [relevance_prompt(CTX, "Comedy"), relevance_prompt(CTX, "Thriller")]
    before = (rank_categories(bundle.model, bundle.tokenizer, prompts, CategoryIndex(bundle.tokenizer, CATS), 4),
              relevance_scores(bundle.model, bundle.tokenizer, rel))
    save_bundle(bundle, tmp_path / "nllm")
    assert json.loads((tmp_path / "nllm" / "model_config.json").read_text())["hidden_size"] == 32
    loaded = load_bundle(tmp_path / "nllm")
    assert loaded.config == cfg and loaded.is_scratch and loaded.single_token_categories
    after = (rank_categories(loaded.model, loaded.tokenizer, prompts, CategoryIndex(loaded.tokenizer, CATS), 4),
             relevance_scores(loaded.model, loaded.tokenizer, rel))
    assert [[n for n, _ in row] for row in after[0]] == [[n for n, _ in row] for row in before[0]]
    np.testing.assert_allclose([[v for _, v in row] for row in after[0]], [[v for _, v in row] for row in before[0]],
                               rtol=0, atol=1e-6)  # same weights; memory-mapped tensors may round the last bit
    np.testing.assert_allclose(after[1], before[1], rtol=0, atol=1e-6)


def test_a_saved_scratch_bundle_is_a_base_model_to_continue_training_from(tmp_path):
    """``base_model: RUN/llm/novelty, lora: false`` continues a trained scratch N-LLM (more SFT passes, a new
    period): the same tokenizer (no token added), the same weights and scores, every weight trainable."""
    bundle = build_model_and_tokenizer(ModelConfig(hidden_size=32, intermediate_size=48), CATS, [CTX.profile], [2, 2])
    with torch.no_grad():  # weights of its own, not a fresh seeded init
        for p in bundle.model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_bundle(bundle, tmp_path / "nllm")
    again = build_model_and_tokenizer(ModelConfig(base_model=str(tmp_path / "nllm"), lora=False), CATS, [], [2, 2])
    assert not again.is_scratch and again.single_token_categories
    assert again.tokenizer.get_vocab() == bundle.tokenizer.get_vocab()
    assert all(p.requires_grad for p in again.model.parameters())
    prompt, index = [novelty_prompt(CTX)], CategoryIndex(bundle.tokenizer, CATS)
    np.testing.assert_allclose(category_logprobs(again.model, again.tokenizer, prompt, index),
                               category_logprobs(bundle.model, bundle.tokenizer, prompt, index), rtol=0, atol=1e-6)


@pytest.fixture
def local_lm(tmp_path):
    return tiny_causal_lm(tmp_path / "base", WORDS)


def test_local_pretrained_gets_csid_tokens_and_lora_only_trainable(local_lm):
    model, tok = load_pretrained(ModelConfig(base_model=str(local_lm), lora_r=4), csid_levels=[2, 3])
    assert len(tok) == 4 + len(WORDS) + 5  # specials + words + CSID codes
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    assert tok.convert_ids_to_tokens(tok("group: <a_1> <b_2> profile:")["input_ids"]) == [
        "group:", "<a_1>", "<b_2>", "profile:"]
    plain, _ = load_pretrained(ModelConfig(base_model=str(local_lm), train_new_tokens=False), csid_levels=[2])
    assert {n.split(".")[-3] for n, p in plain.named_parameters() if p.requires_grad} == {"lora_A", "lora_B"}
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("lora_A" in n for n in trainable) and any("lora_B" in n for n in trainable)
    assert all("lora_" in n or "trainable_tokens" in n for n in trainable)  # base weights frozen
    assert any("trainable_tokens" in n for n in trainable)  # the new CSID embedding rows learn
    frozen = [p for n, p in model.named_parameters() if not p.requires_grad]
    assert sum(p.numel() for p in frozen) > sum(p.numel() for n, p in model.named_parameters() if p.requires_grad)


@pytest.mark.parametrize("spare_rows", [0, 64], ids=["tight", "padded-vocabulary"])
def test_lora_bundle_reloads_from_base_plus_adapter(tmp_path, spare_rows):
    """``padded-vocabulary``: a base with more embedding rows than tokens (Qwen2.5: 152064 for 151665), where the
    CSID tokens fit in the spare rows; the reload shrank it to the tokenizer and failed on every load (audit,
    session 55)."""
    local_lm = tiny_causal_lm(tmp_path / "base", WORDS, spare_rows=spare_rows)
    cfg = ModelConfig(base_model=str(local_lm), lora_r=4)
    with pytest.raises(CoeaInputError, match=r"category 'Sci Fi' cannot be written .* unknown token .*fix: rename"):
        build_model_and_tokenizer(cfg, CATS, [], [2, 3])  # its word Sci\_Fi is not in this word-level vocabulary
    cats = [c for c in CATS if " " not in c]
    bundle = build_model_and_tokenizer(cfg, cats, [], [2, 3])
    assert not bundle.is_scratch and bundle.single_token_categories
    prompts = [relevance_prompt(CTX, c) for c in cats]
    untrained = relevance_scores(bundle.model, bundle.tokenizer, prompts)
    with torch.no_grad():  # make the adapter non-trivial (lora_B starts at zero)
        for p in bundle.model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.ones_like(p))
    before = relevance_scores(bundle.model, bundle.tokenizer, prompts)
    assert np.abs(before - untrained).max() > 1e-4
    save_bundle(bundle, tmp_path / "rllm")
    assert (tmp_path / "rllm" / "adapter_config.json").is_file()
    assert not (tmp_path / "rllm" / "config.json").exists()  # only the adapter, not the base weights
    loaded = load_bundle(tmp_path / "rllm")
    np.testing.assert_allclose(relevance_scores(loaded.model, loaded.tokenizer, prompts), before, atol=1e-6)


@pytest.mark.parametrize("lora", [True, False])
def test_make_trainable_unfreezes_what_sft_trained_in_a_reloaded_bundle(local_lm, tmp_path, lora):
    """PCO trains bundles reloaded frozen: a full pretrained model (``lora: false``) must get every weight back,
    not none (it used to keep only names with ``lora_``), and a LoRA model its adapter and new token rows only."""
    cats = [c for c in CATS if " " not in c]
    bundle = build_model_and_tokenizer(ModelConfig(base_model=str(local_lm), lora=lora, lora_r=4), cats, [], [2, 3])
    at_sft = {n for n, p in bundle.model.named_parameters() if p.requires_grad}
    save_bundle(bundle, tmp_path / "nllm")
    loaded = load_bundle(tmp_path / "nllm")
    assert not any(p.requires_grad for p in loaded.model.parameters())
    make_trainable(loaded)
    trainable = {n for n, p in loaded.model.named_parameters() if p.requires_grad}
    everything = {n for n, _ in loaded.model.named_parameters()}
    assert trainable == (at_sft if lora else everything)
    assert (trainable != everything) == lora and any("trainable_tokens" in n for n in trainable) == lora


def test_missing_local_path_is_an_actionable_error(tmp_path):
    cfg = ModelConfig(base_model=str(tmp_path / "no-such-model"))
    with pytest.raises(CoeaInputError, match="base model directory not found.*fix:") as err:
        build_model_and_tokenizer(cfg, CATS, [], [2])
    assert "no-such-model" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CoeaInputError, match="no config.json"):
        load_pretrained(ModelConfig(base_model=str(tmp_path / "empty")), [2])
    with pytest.raises(CoeaInputError, match="not a model bundle"):
        load_bundle(tmp_path / "empty")


def test_admit_categories_adds_tokens_for_new_names_and_survives_save(tmp_path):
    """A category that first appears after SFT (a later period) becomes nameable instead of crashing the index;
    old token ids and old scores are unchanged, the new row starts at the mean of the known categories' rows."""
    from coea.llm.models import admit_categories

    cfg = ModelConfig(hidden_size=32, intermediate_size=48)
    bundle = build_model_and_tokenizer(cfg, CATS, [CTX.profile], [2, 2])
    with pytest.raises(CoeaInputError, match="'Film Noir' maps to no token"):
        CategoryIndex(bundle.tokenizer, [*CATS, "Film Noir"])
    prompt = novelty_prompt(CTX)
    before = category_logprobs(bundle.model, bundle.tokenizer, [prompt], CategoryIndex(bundle.tokenizer, CATS))[0]
    old_ids = {c: bundle.tokenizer.convert_tokens_to_ids(category_text(c)) for c in CATS}

    assert admit_categories(bundle, [*CATS, "Film Noir", "Western"]) == ["Film Noir", "Western"]
    assert admit_categories(bundle, [*CATS, "Film Noir", "Western"]) == []  # idempotent
    assert {c: bundle.tokenizer.convert_tokens_to_ids(category_text(c)) for c in CATS} == old_ids
    emb = bundle.model.get_input_embeddings().weight
    assert emb.shape[0] == len(bundle.tokenizer)
    known = emb[list(old_ids.values())].mean(dim=0)
    new_id = bundle.tokenizer.convert_tokens_to_ids(category_text("Film Noir"))
    assert torch.allclose(emb[new_id], known)
    text = relevance_prompt(PromptContext((1, 0), CTX.profile, ("Film Noir", "Sci Fi")), "Film Noir")
    ids = bundle.tokenizer(text)["input_ids"]  # multi-word old and new names stay one token
    assert bundle.tokenizer.unk_token_id not in ids and bundle.tokenizer.decode(ids) == text
    assert ids[-1] == new_id
    index = CategoryIndex(bundle.tokenizer, [*CATS, "Film Noir", "Western"])
    after = category_logprobs(bundle.model, bundle.tokenizer, [prompt], index)[0]
    assert np.all(np.isfinite(after))
    shift = after[:len(CATS)] - before  # old names: only the softmax's normaliser changed (one more term each)
    assert np.allclose(shift, shift[0], atol=1e-4) and shift[0] < 0
    reloaded = load_bundle(save_bundle(bundle, tmp_path / "b"))
    again = category_logprobs(reloaded.model, reloaded.tokenizer, [prompt],
                              CategoryIndex(reloaded.tokenizer, index.categories))[0]
    assert np.allclose(again, after, atol=1e-5)


def test_prompt_options_are_saved_with_the_model_and_a_config_asking_for_others_is_refused(tmp_path):
    """A model fed prompts it was not trained with ranks silently worse: the options SFT used travel in
    bundle.json, and a config that asks for other ones is a one-line error naming the model dir and the fix."""
    from coea.errors import CoeaInputError
    from coea.llm.models import check_prompt_options
    from coea.llm.sft_config import SftDataConfig

    bundle = build_model_and_tokenizer(ModelConfig(hidden_size=32, intermediate_size=48), CATS, [CTX.profile], [2, 2])
    trained = SftDataConfig(long_term=5, sequence=0, items=0)  # the legacy check below: a model without seq/items
    bundle.prompt = trained.prompt_options()
    save_bundle(bundle, tmp_path / "nllm")
    loaded = load_bundle(tmp_path / "nllm")
    assert loaded.prompt == {"with_group": True, "full_csid": True, "long_term": 5, "sequence": 0, "items": 0}
    check_prompt_options(loaded, trained)  # the same options: fine
    with pytest.raises(CoeaInputError) as err:
        check_prompt_options(loaded, SftDataConfig())
    msg = str(err.value)
    assert str(tmp_path / "nllm") in msg and "long_term: 5" in msg and "long_term=0" in msg and "\n" not in msg
    legacy = json.loads((tmp_path / "nllm" / "bundle.json").read_text())
    for option in ("sequence", "items"):  # saved before the option existed: trained without the section
        del legacy["prompt"][option]
        (tmp_path / "nllm" / "bundle.json").write_text(json.dumps(legacy))
        check_prompt_options(load_bundle(tmp_path / "nllm"), trained)
        with pytest.raises(CoeaInputError, match=f"{option}: 0"):
            check_prompt_options(load_bundle(tmp_path / "nllm"), replace(trained, **{option: 3}))
    del legacy["prompt"]
    (tmp_path / "nllm" / "bundle.json").write_text(json.dumps(legacy))
    check_prompt_options(load_bundle(tmp_path / "nllm"), SftDataConfig())  # a bundle without the record: no check


def test_a_bf16_checkpoint_trains_all_its_weights_in_fp32(tmp_path):
    """Audit, session 55: ``lora: false`` on a bf16 checkpoint (Qwen2.5 ships bf16) trained bf16 weights, where most
    small updates round away. All weights train: fp32 master weights; with LoRA the frozen base keeps its dtype."""
    from transformers import AutoModelForCausalLM

    base = tiny_causal_lm(tmp_path / "base", WORDS)
    AutoModelForCausalLM.from_pretrained(base).to(torch.bfloat16).save_pretrained(base)
    cats = [c for c in CATS if " " not in c]
    full = build_model_and_tokenizer(ModelConfig(base_model=str(base), lora=False), cats, [], [2, 3])
    assert {p.dtype for p in full.model.parameters()} == {torch.float32}
    save_bundle(full, tmp_path / "full")
    assert {p.dtype for p in load_bundle(tmp_path / "full").model.parameters()} == {torch.float32}
    lora = build_model_and_tokenizer(ModelConfig(base_model=str(base), lora_r=4), cats, [], [2, 3])
    frozen = {p.dtype for p in lora.model.parameters() if not p.requires_grad}
    assert torch.bfloat16 in frozen  # the base as shipped


def test_a_lora_base_with_a_tied_head_trains_and_reloads_to_train_again(tmp_path):
    """A base whose output head is its input embedding (Qwen2.5 0.5B-3B): peft wraps the head with the CSID
    tokens' rows and trl's fused LM head read its missing ``bias``, so every SFT step failed (session 57, a tied
    Qwen2 with Qwen's BPE); the reloaded bundle (PCO's refreshes train it again) too."""
    from coea.llm.models import ModelBundle
    from coea.llm.sft import train_sft
    from coea.llm.sft_config import SftTrainConfig

    base = tiny_causal_lm(tmp_path / "tied", WORDS, tied=True)
    with warnings.catch_warnings():  # peft's question to transformers 5 warned on every load: not shown
        warnings.simplefilter("error", FutureWarning)
        model, tok = load_pretrained(ModelConfig(base_model=str(base), lora_r=4), csid_levels=[2, 3])
    examples = [{"prompt": novelty_prompt(CTX), "completion": " " + CATS[0] + " </s>"}] * 8
    cfg = SftTrainConfig(epochs=1, batch_size=4, max_length=128)
    assert train_sft(cfg, model, tok, examples).steps == 2
    bundle = ModelBundle(model, tok, ModelConfig(base_model=str(base), lora_r=4), False, True)
    save_bundle(bundle, tmp_path / "bundle")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        again = load_bundle(tmp_path / "bundle", trainable=True)
    assert train_sft(cfg, again.model, again.tokenizer, examples).steps == 2


@pytest.mark.parametrize("tied", [False, True])
def test_dpo_on_a_lora_policy_against_a_frozen_copy_of_it_as_pco_passes(tmp_path, tied):
    """PCO's reference is a frozen ``copy.deepcopy`` of the LoRA N-LLM (``round_reference``), a peft model: trl
    patched it whole, so its fused forward called the adapter wrapper for hidden states and every DPO update
    failed (session 57, a tied Qwen2 with Qwen's BPE, after both SFTs). The copy must score with its own, frozen
    weights while the policy's adapter moves."""
    import copy

    from coea.llm.dpo import train_dpo
    from coea.llm.dpo_config import DpoTrainConfig

    base = tiny_causal_lm(tmp_path / "base", WORDS, tied=tied)
    model, tok = load_pretrained(ModelConfig(base_model=str(base), lora_r=4), csid_levels=[2, 3])
    with torch.no_grad():  # a trained adapter, so the reference is not the base model
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    ref = copy.deepcopy(model).eval().requires_grad_(False)
    before = {n: p.detach().clone() for n, p in ref.named_parameters()}
    names = [c for c in CATS if " " not in c]  # one word each for the word-level tokenizer
    index = CategoryIndex(tok, names)
    prompts = [novelty_prompt(CTX)]
    ref_lp = category_logprobs(ref, tok, prompts, index, 4)
    pairs = [{"prompt": novelty_prompt(CTX), "chosen": f" {names[i]} </s>", "rejected": f" {names[4 - i]} </s>"}
             for i in range(4)]
    result = train_dpo(DpoTrainConfig(batch_size=2, epochs=1.0, lr=1e-2), model, tok, pairs, ref_model=ref)
    assert result.steps == 2
    assert all(torch.equal(before[n], p) for n, p in ref.named_parameters())
    np.testing.assert_allclose(category_logprobs(ref, tok, prompts, index, 4), ref_lp, atol=1e-6)
    assert not np.allclose(category_logprobs(model, tok, prompts, index, 4), ref_lp, atol=1e-4)
