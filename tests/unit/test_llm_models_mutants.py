"""Pins a mutation audit of coea.llm.models, coea.llm.run and coea.stages.sft found unguarded: seeded model
initialisation, the CSID tokens and their rows, the pad-token fallback, peft wrappers, what load_bundle refuses and
how it leaves the model, the SFT checkpoint key, the request checks, and the SFT stage's reuse fingerprint. Tiny
models built from a config; nothing trains."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from coea.errors import CoeaInputError
from coea.llm import run as llm_run
from coea.llm.config import ModelConfig
from coea.llm.models import (
    _add_csid_tokens,
    admit_categories,
    build_model_and_tokenizer,
    build_scratch_model,
    check_prompt_options,
    is_peft,
    load_bundle,
    load_pretrained,
    local_model_dir,
    save_bundle,
    unpatch_forward,
)
from coea.llm.sft_config import LlmConfig, RelevanceInit, SftDataConfig
from coea.llm.tokenizer import build_scratch_tokenizer
from tests.helpers import tiny_causal_lm

CATS = ["Comedy", "Drama", "Thriller"]
WORDS = ["group:", "profile:", "recent:", ";", "novel:", "candidate:", "relevant:", "yes", "no", *CATS]
SMALL = ModelConfig(hidden_size=32, intermediate_size=48)


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))


# models.py: build_scratch_model seeds its init with cfg.seed

def test_a_scratch_model_is_initialised_from_the_config_seed():
    """Two seeds give two different models, the same seed the same one: the N-LLM and the R-LLM differ by seed."""
    tok = build_scratch_tokenizer(CATS, [], [2])
    assert _same(build_scratch_model(SMALL, tok), build_scratch_model(SMALL, tok))
    assert not _same(build_scratch_model(SMALL, tok), build_scratch_model(replace(SMALL, seed=1), tok))


# run.py: _bundle builds each model from llm.model.seed + its offset

def test_each_llm_is_built_from_the_model_seed_plus_its_own_offset():
    """``_bundle`` with offset 1 (the R-LLM) is the model of seed+1, not the N-LLM's (offset 0): training the two
    in one call or in two steps gives the same models because each has its own seed."""
    cfg = LlmConfig(model=replace(SMALL, seed=5))
    novelty = llm_run._bundle(cfg, CATS, {}, [2], 0, "cpu")
    relevance = llm_run._bundle(cfg, CATS, {}, [2], 1, "cpu")
    assert relevance.config.seed == 6 and novelty.config.seed == 5
    assert _same(relevance.model, build_scratch_model(replace(SMALL, seed=6), relevance.tokenizer))
    assert not _same(novelty.model, relevance.model)


# models.py: local_model_dir expands ~

def test_a_base_model_path_under_home_is_expanded(tmp_path, monkeypatch):
    """``base_model: ~/models/base`` names the directory under $HOME, not a folder literally called ``~``."""
    monkeypatch.setenv("HOME", str(tmp_path))
    tiny_causal_lm(tmp_path / "models" / "base", WORDS)
    assert local_model_dir("~/models/base") == tmp_path / "models" / "base"


# models.py: _add_csid_tokens returns the ids of every new token

def test_every_new_csid_token_id_is_returned_the_first_one_included(tmp_path):
    """Levels (2, 3) add 5 CSID tokens, ids len(vocab)..len(vocab)+4; all five are the rows LoRA trains
    (``trainable_token_indices``), the first one too; tokens already there are not returned."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_causal_lm(tmp_path / "base", WORDS))
    before = len(tok)
    assert _add_csid_tokens(tok, [2, 3]) == list(range(before, before + 5))
    assert _add_csid_tokens(tok, [2, 3]) == []


# models.py: load_pretrained seeds the new embedding rows with cfg.seed

def test_the_new_csid_rows_of_a_pretrained_model_are_seeded_and_leave_the_callers_rng_alone(tmp_path):
    """The rows the CSID tokens add are drawn from ``cfg.seed``: the same seed gives the same rows, another seed
    other rows, and the global RNG is where it was. 40 words over 16 dimensions: with fewer tokens than dimensions
    transformers' covariance is singular and every new row is the plain mean, whatever the seed."""
    base = tiny_causal_lm(tmp_path / "base", [f"w{i}" for i in range(40)])
    cfg = ModelConfig(base_model=str(base), lora=False)

    def rows(c):
        model, tok = load_pretrained(c, [2, 3])
        return model.get_input_embeddings().weight[len(tok) - 5:].detach().clone()

    state = torch.random.get_rng_state()
    first = rows(cfg)
    assert torch.equal(state, torch.random.get_rng_state())
    assert torch.equal(first, rows(cfg))
    assert not torch.equal(first, rows(replace(cfg, seed=1)))


# models.py: load_pretrained falls back to the eos token for padding

def test_a_base_tokenizer_without_a_pad_token_pads_with_its_eos_token(tmp_path):
    """Llama-style tokenizers ship without a pad token: batching needs one, so eos stands in, and the model's
    config and generation config learn its id."""
    from transformers import AutoTokenizer

    base = tiny_causal_lm(tmp_path / "base", WORDS)
    tok = AutoTokenizer.from_pretrained(base)
    tok.pad_token = None
    tok.save_pretrained(base)
    assert AutoTokenizer.from_pretrained(base).pad_token is None
    model, tok = load_pretrained(ModelConfig(base_model=str(base), lora=False), [2])
    assert tok.pad_token == tok.eos_token == "</s>"
    assert model.config.pad_token_id == model.generation_config.pad_token_id == tok.eos_token_id


# models.py: admit_categories without any known name starts the new rows at the whole vocabulary's mean

def test_admitted_categories_none_of_them_known_start_at_the_mean_of_the_whole_vocabulary():
    """With no known name among ``categories`` there is no category row to average: every new row is the mean of
    all the rows the vocabulary had before (finite), as the docstring says."""
    bundle = build_model_and_tokenizer(SMALL, CATS, [], [2])
    old = bundle.model.get_input_embeddings().weight.detach().clone()
    assert admit_categories(bundle, ["Western", "Film Noir"]) == ["Western", "Film Noir"]
    emb = bundle.model.get_input_embeddings().weight
    assert emb.shape[0] == old.shape[0] + 2
    for row in emb[old.shape[0]:]:
        assert torch.allclose(row, old.mean(dim=0))


# models.py: is_peft / unpatch_forward on a LoRA model and the module it wraps

def test_only_the_peft_wrapper_is_peft_and_unpatching_it_also_unpatches_the_wrapped_model(tmp_path):
    """The wrapped module answers ``peft_config`` but is not a peft wrapper; trl's instance-level ``forward`` is
    dropped from the wrapper and from the model it wraps (a deep copy of either would run the original's weights)."""
    model, _ = load_pretrained(ModelConfig(base_model=str(tiny_causal_lm(tmp_path / "b", WORDS)), lora_r=4), [2])
    inner = model.get_base_model()
    assert is_peft(model) and hasattr(inner, "peft_config") and not is_peft(inner)
    model.forward = inner.forward = lambda *a, **k: None  # what trl's add_fused_lm_head leaves
    assert unpatch_forward(model) is model
    assert "forward" not in model.__dict__ and "forward" not in inner.__dict__


# models.py: load_bundle refuses a directory without bundle.json; how it leaves the model

def test_a_bundle_without_its_bundle_json_is_not_a_model_bundle(tmp_path):
    """Either file missing (a copy cut short) is the actionable error, not a KeyError or FileNotFoundError."""
    save_bundle(build_model_and_tokenizer(SMALL, CATS, [], [2]), tmp_path / "b")
    (tmp_path / "b" / "bundle.json").unlink()
    with pytest.raises(CoeaInputError, match="not a model bundle"):
        load_bundle(tmp_path / "b")


def test_a_full_bundle_reloads_frozen_in_eval_mode_or_with_every_weight_trainable(tmp_path):
    """``trainable=False`` (scoring): no weight needs a gradient and dropout is off (eval mode); ``trainable=True``
    (PCO's refresh of a full model): every weight needs a gradient (the trainer switches to training mode)."""
    save_bundle(build_model_and_tokenizer(SMALL, CATS, [], [2]), tmp_path / "b")
    frozen = load_bundle(tmp_path / "b")
    assert not frozen.model.training and not any(p.requires_grad for p in frozen.model.parameters())
    live = load_bundle(tmp_path / "b", trainable=True)
    assert all(p.requires_grad for p in live.model.parameters())


# models.py: check_prompt_options lets a recorded option win over the value before it was recorded

def test_a_recorded_prompt_option_wins_over_the_value_before_options_were_recorded():
    """The defaults for unrecorded options (sequence 0, items 0) only fill gaps: a bundle trained with
    ``sequence: 10`` matches a config asking for 10 and is refused for 0."""
    bundle = build_model_and_tokenizer(SMALL, CATS, [], [2])
    trained = SftDataConfig(sequence=10, items=3)
    bundle.prompt = trained.prompt_options()
    check_prompt_options(bundle, trained)
    with pytest.raises(CoeaInputError, match="sequence: 10"):
        check_prompt_options(bundle, replace(trained, sequence=0))


# run.py: _hold_out keeps at most a tenth of the R-LLM examples

def test_the_heldout_r_llm_examples_are_at_most_a_tenth_of_them():
    """``relevance_heldout`` larger than a tenth of the examples holds out exactly a tenth (rounded down); a smaller
    one holds out itself; 0 holds out nothing."""
    from tests.unit.test_rllm_heldout import _examples

    n = len(_examples(30))
    assert n >= 20
    for asked, held in ((10**6, n // 10), (1, 1), (0, None)):
        train = {"relevance": _examples(30)}
        out = llm_run._hold_out(train, LlmConfig(relevance_heldout=asked))
        if held is None:
            assert out is None and len(train["relevance"]) == n
        else:
            assert len(out) == held and len(train["relevance"]) == n - held


# run.py: _check_request

def test_a_request_for_no_model_is_refused():
    with pytest.raises(ValueError, match="which must name models"):
        llm_run._check_request(LlmConfig(), None, ())


def test_a_lora_adapter_is_refused_over_a_base_inside_its_own_folder_but_a_full_model_may_continue_itself(tmp_path):
    """LoRA with ``base_model`` at ``out/novelty`` or below it (its reload would need the folder being replaced)
    is refused; with ``lora: false`` the model saves whole, so continuing ``out/novelty`` is allowed."""
    for base in (tmp_path / "out" / "novelty", tmp_path / "out" / "novelty" / "base"):
        cfg = LlmConfig(model=ModelConfig(base_model=str(base)))
        with pytest.raises(CoeaInputError, match="saved over its own base model"):
            llm_run._check_request(cfg, tmp_path / "out", ["novelty"])
        llm_run._check_request(cfg, tmp_path / "out", ["relevance"])  # another folder: fine
    full = LlmConfig(model=ModelConfig(base_model=str(tmp_path / "out" / "novelty"), lora=False))
    llm_run._check_request(full, tmp_path / "out", ["novelty"])


# run.py: _checkpoints' key (the SFT resume fingerprint's description of the start)

def test_the_checkpoint_key_changes_with_the_prompt_settings_and_a_warm_r_llm_with_the_n_llm_settings(tmp_path):
    """A checkpoint of other prompt settings (``llm.data``) must not be resumed from; a warm-started R-LLM's also
    not one of another N-LLM recipe (``llm.novelty``), while a scratch R-LLM's does not depend on it."""
    def key(cfg, name):
        return llm_run._checkpoints(cfg, tmp_path, name, None).key

    cfg = LlmConfig()
    other_data = replace(cfg, data=replace(cfg.data, long_term=3))
    other_novelty = replace(cfg, novelty=replace(cfg.novelty, lr=1e-4))
    assert key(other_data, "novelty") != key(cfg, "novelty")
    assert key(other_novelty, "relevance") == key(cfg, "relevance")
    warm = replace(cfg, relevance_init=RelevanceInit.NOVELTY)
    assert key(replace(other_novelty, relevance_init=RelevanceInit.NOVELTY), "relevance") != key(warm, "relevance")
    assert llm_run._checkpoints(cfg, None, "novelty", None) is None


# stages/sft.py: SftStageResult.metrics keeps zeros

def test_stage_metrics_keep_a_figure_of_zero_and_drop_only_missing_ones():
    """``steps: 0`` (every example cut) and a loss of 0.0 are figures, not gaps; None and absent keys are left out."""
    from coea.stages.sft import SftStageResult

    res = SftStageResult(Path("x"), {"novelty": {"examples": 0, "steps": 0, "seconds": 0.0, "first_loss": None,
                                                 "last_loss": 0.0}})
    assert res.metrics() == {"novelty.examples": 0.0, "novelty.steps": 0.0, "novelty.seconds": 0.0,
                             "novelty.last_loss": 0.0}


# stages/sft.py: _training_settings, the reuse fingerprint of a trained model

def _llm_dict(**changes):
    from coea.config import config_to_dict

    return json.loads(json.dumps(config_to_dict(replace(LlmConfig(), **changes))))


def test_the_r_llm_reuse_fingerprint_holds_its_heldout_count_and_a_warm_start_the_n_llm_settings():
    """An R-LLM trained with another ``relevance_heldout`` saw other examples: not the same model. A warm-started
    one also depends on ``llm.novelty``; a scratch one does not. The N-LLM's ignores the R-LLM's settings."""
    from coea.stages.sft import _training_settings

    base = _llm_dict()
    assert _training_settings(_llm_dict(relevance_heldout=7), "relevance") != _training_settings(base, "relevance")
    assert _training_settings(_llm_dict(relevance_heldout=7), "novelty") == _training_settings(base, "novelty")
    novelty = replace(LlmConfig().novelty, lr=1e-4)
    assert _training_settings(_llm_dict(novelty=novelty), "relevance") == _training_settings(base, "relevance")
    warm = _llm_dict(relevance_init=RelevanceInit.NOVELTY)
    assert (_training_settings(_llm_dict(relevance_init=RelevanceInit.NOVELTY, novelty=novelty), "relevance")
            != _training_settings(warm, "relevance"))


def test_the_reuse_fingerprint_ignores_run_only_settings():
    """``checkpoint_minutes`` changes how often a training saves, not the model: a model trained with another
    value is still reused."""
    from coea.stages.sft import _training_settings

    other = _llm_dict(novelty=replace(LlmConfig().novelty, checkpoint_minutes=1.0))
    assert _training_settings(other, "novelty") == _training_settings(_llm_dict(), "novelty")


# stages/sft.py: trained_with / _readable refuse a damaged model

def test_a_finished_model_of_the_same_settings_with_a_truncated_weights_file_is_trained_again(tmp_path, monkeypatch):
    """Everything matches (lineage, settings) but ``model.safetensors`` was cut short: the model is not kept, while
    the intact one is."""
    from coea import lineage
    from coea.config import RunConfig, config_to_dict
    from coea.llm.sft_config import resolve_llm
    from coea.stages import sft

    cfg = RunConfig()
    monkeypatch.setattr(lineage, "check", lambda *a, **k: None)
    monkeypatch.setattr(lineage, "histories", lambda *a, **k: {})
    save_bundle(build_model_and_tokenizer(SMALL, CATS, [], [2]), tmp_path / "novelty")
    metrics = {"novelty": {}, "config": config_to_dict(resolve_llm(cfg.llm, cfg.split))}
    (tmp_path / "sft_metrics_novelty.json").write_text(json.dumps(metrics, default=str))
    assert sft.trained_with(tmp_path, "novelty", cfg, tmp_path, tmp_path)
    weights = tmp_path / "novelty" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    assert not sft.trained_with(tmp_path, "novelty", cfg, tmp_path, tmp_path)


# models.py: save_bundle writes through a temporary folder

def test_a_save_that_fails_halfway_leaves_the_previous_bundle_whole(tmp_path, monkeypatch):
    """A save over an existing bundle that dies after the weights (here: in the tokenizer's save) leaves the old
    bundle loadable with its old weights, not a mix of new weights and old files."""
    old = build_model_and_tokenizer(SMALL, CATS, [], [2])
    save_bundle(old, tmp_path / "b")
    new = build_model_and_tokenizer(replace(SMALL, seed=1), CATS, [], [2])

    def dies(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(new.tokenizer, "save_pretrained", dies)
    with pytest.raises(OSError, match="disk full"):
        save_bundle(new, tmp_path / "b")
    assert _same(load_bundle(tmp_path / "b").model, old.model)


# run.py: _checkpoints leaves run-only settings out of a warm R-LLM's key (bug found by this audit)

def test_a_warm_r_llm_resumes_its_checkpoint_after_the_n_llm_checkpoint_interval_changed(tmp_path):
    """``checkpoint_minutes`` is run-only (``RUN_ONLY_FIELDS``: the SFT resume fingerprint leaves it out): a warm
    R-LLM's key, which holds the N-LLM's SFT settings, must not change with ``llm.novelty.checkpoint_minutes``
    either, or a restart with another interval throws away the R-LLM's checkpoint. Its real settings still count."""
    warm = LlmConfig(relevance_init=RelevanceInit.NOVELTY)
    every_minute = replace(warm, novelty=replace(warm.novelty, checkpoint_minutes=1.0))
    other_lr = replace(warm, novelty=replace(warm.novelty, lr=1e-4))

    def key(cfg):
        return llm_run._checkpoints(cfg, tmp_path, "relevance", None).key

    assert key(every_minute) == key(warm)
    assert key(other_lr) != key(warm)
