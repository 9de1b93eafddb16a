"""Every bound of the run config's checks, at its edge: the boundary value is refused with an error naming the key,
the nearest value on the other side is taken as it is. Audit: one-line mutants that moved a bound by one step
(``<= 0`` -> ``< 0``: dpo.beta 0, pco.pairs_per_prompt 0, SFT epochs 0, split.min_history 0, llm.temperature 0;
``< 1`` -> ``<= 1``: accept_threshold, long_tail_share, warmup_ratio 1; encoder.val_fraction 0.5; pco.candidates
1) passed every config test, as did a dropped top-level mapping check and a saved per-section device kept."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from coea.config import load_run_config, read_saved_config

SEED_MAX = 2**32 - 1
TOP = "<top level>"  # the whole document

# (key path, a value that must be refused, the nearest value that must be accepted, other keys both need)
ROWS: list[tuple[str, Any, Any, dict]] = [
    (TOP, 5, {}, {}), (TOP, ["a"], {}, {}),
    *[(f"synthetic.{name}", 0, 1, {}) for name in (
        "n_users", "n_groups", "items_per_category", "mean_interactions", "min_interactions", "core_categories",
        "focus_length", "span_days", "shift_periods")],
    ("synthetic.n_categories", 0, 1, {"synthetic": {"core_categories": 1}}),
    ("synthetic.core_categories", 41, 40, {}),
    ("synthetic.n_users", 833_334, 833_333, {}),  # x 60 events: above / within the 50,000,000 the generator builds
    ("synthetic.shift_period", 0, 1, {}), ("synthetic.shift_period", 4, 3, {}),
    ("synthetic.shift_strength", 0.0, 0.01, {}), ("synthetic.shift_strength", 1.01, 1.0, {}),
    ("synthetic.explore_rate", 1.0, 0.99, {}), ("synthetic.explore_rate", -0.01, 0.0, {}),
    ("synthetic.popularity_exponent", -0.01, 0.0, {}), ("synthetic.focus_strength", -0.01, 0.0, {}),
    ("synthetic.seed", SEED_MAX + 1, SEED_MAX, {}), ("synthetic.seed", -1, 0, {}),
    ("data.window_days", -1, 0, {}), ("data.gcs_retry_s", -0.01, 0.0, {}),
    ("split.n_future", 0, 1, {}), ("split.n_short", 0, 1, {}), ("split.min_history", 0, 1, {}),
    ("split.min_gap", -1, 0, {}), ("split.short_window", 0, 1, {}),
    ("eval.judge_users", -1, 0, {}), ("eval.round_users", -1, 0, {}), ("eval.ks", [0], [1], {}),
    ("eval.long_tail_share", 0.0, 0.01, {}), ("eval.long_tail_share", 1.0, 0.99, {}),
    ("eval.bootstrap", 0, 1, {}), ("eval.bootstrap", 1_000_001, 1_000_000, {}),
    ("eval.ci_level", 0.0, 0.01, {}), ("eval.ci_level", 1.0, 0.99, {}), ("eval.seed", SEED_MAX + 1, SEED_MAX, {}),
    ("dsie.encoder.dim", 0, 1, {"dsie": {"encoder": {"n_heads": 1}}}),
    *[(f"dsie.encoder.{name}", 0, 1, {}) for name in (
        "n_layers", "n_heads", "max_len", "epochs", "batch_size", "patience", "min_category_support",
        "min_item_support", "min_user_events", "target_horizon")],
    ("dsie.encoder.n_heads", 3, 4, {}),  # dim 32 must be divisible by it
    ("dsie.encoder.lr", 0.0, 1e-9, {}), ("dsie.encoder.weight_decay", -0.01, 0.0, {}),
    ("dsie.encoder.dropout", 1.0, 0.99, {}), ("dsie.encoder.dropout", -0.01, 0.0, {}),
    ("dsie.encoder.val_fraction", 0.5, 0.49, {}), ("dsie.encoder.val_fraction", -0.01, 0.0, {}),
    ("dsie.encoder.target_gap", -1, 0, {}), ("dsie.encoder.seed", SEED_MAX + 1, SEED_MAX, {}),
    ("dsie.rqvae.input_dim", 0, 32, {}), ("dsie.rqvae.input_dim", 31, 32, {}),  # the encoder's dim, 32
    *[(f"dsie.rqvae.{name}", 0, 1, {}) for name in ("latent_dim", "epochs", "batch_size", "kmeans_iters")],
    *[(f"dsie.rqvae.{name}", -1, 0, {}) for name in ("dead_code_threshold", "reset_dead_every")],
    ("dsie.rqvae.beta", -0.01, 0.0, {}), ("dsie.rqvae.weight_decay", -0.01, 0.0, {}),
    ("dsie.rqvae.lr", 0.0, 1e-9, {}), ("dsie.rqvae.hidden_dims", [0], [1], {}),
    ("dsie.rqvae.codebook_sizes", [4, 4, 1], [4, 4, 2], {}), ("dsie.rqvae.codebook_sizes", [], [2, 2], {}),
    ("dsie.rqvae.seed", SEED_MAX + 1, SEED_MAX, {}),
    ("dsie.group.depth", 0, 1, {}), ("dsie.group.depth", 4, 3, {}), ("dsie.group.min_group_size", 0, 1, {}),
    ("dsie.profile.top_categories", 0, 1, {}), ("dsie.profile.max_new_tokens", 0, 1, {}),
    ("dsie.seed", SEED_MAX + 1, SEED_MAX, {}),
    ("llm.model.hidden_size", 0, 4, {}),  # num_heads 4 must divide it
    ("llm.model.num_heads", 0, 1, {"llm": {"model": {"num_kv_heads": 1}}}), ("llm.model.num_heads", 3, 2, {}),
    *[(f"llm.model.{name}", 0, 1, {}) for name in (
        "num_layers", "num_kv_heads", "intermediate_size", "lora_r", "lora_alpha")],
    ("llm.model.max_position_embeddings", 0, 1, {"llm": {"model": {"base_model": "/models/x"}}}),
    ("llm.model.max_position_embeddings", 191, 192, {}),  # a scratch model: the longest max_length, 192
    ("llm.model.lora_dropout", 1.0, 0.99, {}), ("llm.model.lora_dropout", -0.01, 0.0, {}),
    ("llm.model.seed", SEED_MAX + 1, SEED_MAX, {}),
    *[(f"llm.novelty.{name}", 0, 1, {}) for name in ("batch_size", "max_length", "logging_steps", "max_examples")],
    ("llm.novelty.epochs", 0.0, 0.01, {}), ("llm.novelty.lr", 0.0, 1e-9, {}),
    ("llm.novelty.weight_decay", -0.01, 0.0, {}), ("llm.novelty.sequence_loss", -1, 0, {}),
    ("llm.novelty.warmup_ratio", 1.0, 0.99, {}), ("llm.novelty.warmup_ratio", -0.01, 0.0, {}),
    ("llm.novelty.checkpoint_minutes", -0.01, 0.0, {}), ("llm.novelty.seed", SEED_MAX + 1, SEED_MAX, {}),
    *[(f"llm.data.{name}", 0, 1, {}) for name in (
        "cuts_per_user", "novelty_cuts_per_user", "max_targets", "negatives_per_positive", "min_prefix", "horizon",
        "novelty_horizon", "n_short", "item_vocab", "item_min_count")],
    *[(f"llm.data.{name}", -1, 0, {}) for name in ("gap", "long_term", "sequence", "items")],
    ("llm.data.holdout_share", 1.0, 0.99, {}), ("llm.data.holdout_share", -0.01, 0.0, {}),
    ("llm.data.seed", SEED_MAX + 1, SEED_MAX, {}),
    ("llm.best_of_n", 0, 1, {}), ("llm.batch_size", 0, 1, {}), ("llm.temperature", 0.0, 0.01, {}),
    *[(f"llm.{name}", -0.01, 0.0, {}) for name in ("verify_weight", "encoder_weight", "cooc_weight", "novelty_bonus")],
    ("llm.relevance_heldout", -1, 0, {}),
    ("pco.dpo.beta", 0.0, 1e-6, {}), ("pco.dpo.alpha", -0.01, 0.0, {}), ("pco.dpo.nll", -0.01, 0.0, {}),
    ("pco.dpo.epochs", 0.0, 0.01, {}), ("pco.dpo.lr", 0.0, 1e-9, {}),
    *[(f"pco.dpo.{name}", 0, 1, {}) for name in ("batch_size", "max_length", "logging_steps")],
    ("pco.dpo.seed", SEED_MAX - 2, SEED_MAX - 3, {}),  # round r of 3 seeds with seed + r
    *[(f"pco.{name}", 0, 1, {}) for name in ("rounds", "pairs_per_prompt", "k", "feedback_horizon",
                                             "users_per_round")],
    ("pco.candidates", 1, 2, {}), ("pco.temperature", 0.0, 0.01, {}),
    ("pco.margin", 1.0, 0.99, {}), ("pco.margin", -0.01, 0.0, {}),
    ("pco.teacher_weight", -0.01, 0.0, {}), ("pco.teacher_cooc_weight", -0.01, 0.0, {}),
    ("pco.teacher_ease_weight", -0.01, 0.0, {}),
    ("pco.accept_threshold", 0.0, 0.01, {}), ("pco.accept_threshold", 1.0, 0.99, {}),
    ("pco.seed", SEED_MAX - 2, SEED_MAX - 3, {}),
    ("pco.relevance_refresh.epochs", 0.0, 0.01, {}), ("pco.novelty_refresh.warmup_ratio", 1.0, 0.99, {}),
]


def _document(path: str, value: Any, base: dict) -> Any:
    """The config mapping ``base`` with ``value`` at the dotted ``path`` (TOP: ``value`` is the whole document)."""
    if path == TOP:
        return value
    doc = copy.deepcopy(base)
    *sections, key = path.split(".")
    node = doc
    for name in sections:
        node = node.setdefault(name, {})
    node[key] = value
    return doc


@pytest.mark.parametrize(("path", "refused", "accepted", "base"), ROWS,
                         ids=[f"{path}={refused!r}" for path, refused, _, _ in ROWS])
def test_each_bound_refuses_its_edge_and_takes_the_nearest_value(tmp_path, path, refused, accepted, base):
    file = tmp_path / "c.yaml"
    file.write_text(json.dumps(_document(path, refused, base)))  # JSON is YAML
    with pytest.raises(ValueError) as err:
        load_run_config(file)
    named = "the top level must be a mapping" if path == TOP else path.rsplit(".", 1)[-1]
    assert named in str(err.value) and str(err.value).startswith(str(file)), str(err.value)
    file.write_text(json.dumps(_document(path, accepted, base)))
    cfg = load_run_config(file)
    if path != TOP:
        value = cfg
        for name in path.split("."):
            value = getattr(value, name)
        assert value == accepted


def test_a_saved_section_s_old_device_is_dropped_not_refused(tmp_path):
    """Outputs written before the one device switch saved a per-section ``device``: read back, it is dropped (the
    device is chosen where a model is loaded), while a config file's per-section device is an error."""
    from coea.dsie.config import EncoderConfig

    saved = tmp_path / "encoder_config.json"
    saved.write_text(json.dumps({"dim": 16, "n_heads": 2, "device": "cuda"}))
    assert read_saved_config(EncoderConfig, saved) == EncoderConfig(dim=16)
    config = tmp_path / "c.yaml"
    config.write_text("dsie: {encoder: {dim: 16, device: cuda}}\n")
    with pytest.raises(ValueError, match=r"\[dsie\].encoder: unknown key 'device': use the top-level `device:`"):
        load_run_config(config)
