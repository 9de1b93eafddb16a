"""``coea train-llms``: build and SFT-train the Novelty and Relevance LLMs from histories and DSIE groups.

Outputs under ``out_dir``: ``novelty/`` and ``relevance/`` (model or LoRA adapter, tokenizer, configs),
``sft_metrics_<model>.json`` (example counts, losses, wall time) and ``llm_config.json``; each model's files as soon
as its SFT ends. While a model trains, ``sft_checkpoints/<model>/`` holds its last resumable checkpoint
(:class:`coea.llm.sft.SftCheckpoints`): the same call run again after a kill resumes from it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from coea.config import config_to_dict, save_config
from coea.data.schema import ITEM
from coea.data.split import Histories
from coea.errors import CoeaInputError
from coea.llm.embedding_init import EncoderEmbeddings, init_from_encoder
from coea.llm.models import ModelBundle, build_model_and_tokenizer, check_prompt_options, load_bundle, save_bundle
from coea.llm.prompts import item_text, option_words
from coea.llm.sft import SftCheckpoints, SftResult, train_sft
from coea.llm.sft_config import MODELS, LlmConfig, RelevanceInit, SftDataConfig, without_run_only
from coea.llm.sft_data import GroupInfo, RelevanceExamples, build_sft_examples, group_infos
from coea.pco.config import RewardKind
from coea.utils import seed_everything, write_json_atomic

log = logging.getLogger(__name__)
CHECKPOINTS = "sft_checkpoints"  # under the LLM dir, one folder per model while it trains


@dataclass
class LlmTrainResult:
    """The trained models (None = not trained in this call), how their SFT went, and where they were written."""

    novelty: ModelBundle | None
    relevance: ModelBundle | None
    sft: dict[str, SftResult]
    groups: dict[str, GroupInfo]
    paths: dict[str, Path] = field(default_factory=dict)
    checks: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> held-out figures (heldout_auc)

    def metrics(self) -> dict[str, Any]:
        return {name: {"examples": r.n_examples, "steps": r.steps, "seconds": round(r.seconds, 2),
                       "first_loss": r.losses[0] if r.losses else None,
                       "last_loss": r.losses[-1] if r.losses else None, **self.checks.get(name, {}),
                       "losses": r.losses}
                for name, r in self.sft.items()}


CHANCE_AUC = 0.55  # a held-out AUC below this: the R-LLM barely tells taken-up from other candidates
# the PCO rewards that score candidates with the R-LLM's P(yes) (coea.pco.reward.RllmReward's subclasses; hybrid for
# the users without feedback); feedback and teacher never read it
RLLM_REWARDS = frozenset({RewardKind.SERENDIPITY, RewardKind.RELEVANCE, RewardKind.HYBRID})


def _chance_note(auc: float, reward: RewardKind | None) -> tuple[int, str]:
    """(log level, message) for an R-LLM whose held-out AUC is near chance: a warning when ``reward`` (the PCO
    reward of the config, None = not known here) scores with it, an INFO line otherwise."""
    head = (f"the R-LLM's held-out AUC is {auc:.3f} (0.5 = chance): its P(yes) barely separates taken-up "
            "candidates from others")
    fix = "give it more examples or epochs (llm.relevance.max_examples, epochs) or a lower llm.relevance.lr"
    rllm = ", ".join(sorted(r.value for r in RLLM_REWARDS))
    if reward is None:
        return logging.WARNING, (f"{head}, so the PCO rewards that score with it (pco.reward {rllm}; not the default "
                                 f"feedback) would be close to noise; {fix}")
    if reward in RLLM_REWARDS:
        return logging.WARNING, f"{head}, so PCO's rewards (pco.reward {reward.value}) are close to noise; {fix}"
    return logging.INFO, (f"{head}; pco.reward {reward.value} does not score with it (only {rllm} do), so it "
                          "matters here only for PCO's acceptance figures and the R-LLM-ranked methods "
                          "(dual_best_of_n, coea_dual, rllm_rank)")


def heldout_auc(bundle: ModelBundle, examples: RelevanceExamples, batch_size: int,
                reward: RewardKind | str | None = None) -> dict[str, float]:
    """``heldout_examples`` and ``heldout_auc`` (ROC AUC of the R-LLM's P(yes) against the examples' answers;
    0.5 = chance) of held-out R-LLM examples; below :data:`CHANCE_AUC` a warning when ``reward`` (the config's PCO
    reward; None = not known) scores with the R-LLM (:data:`RLLM_REWARDS`), an INFO line otherwise. Empty when the
    examples do not hold both answers."""
    from sklearn.metrics import roc_auc_score

    from coea.llm.decode import relevance_scores

    labels = examples.labels
    if len(set(labels)) < 2:
        return {}
    p = relevance_scores(bundle.model, bundle.tokenizer, [e["prompt"] for e in examples], batch_size=batch_size)
    auc = float(roc_auc_score(labels, p))
    if auc < CHANCE_AUC:
        log.log(*_chance_note(auc, None if reward is None else RewardKind(reward)))
    return {"heldout_examples": len(labels), "heldout_auc": round(auc, 4)}


UNKNOWN_ITEM_SHARE = 0.05  # a warning when more of the history's events than this read as the unknown item


def item_vocabulary(interactions: pd.DataFrame, max_items: int | None, min_count: int = 1) -> list[str]:
    """The items of ``interactions`` a scratch tokenizer gives a token (sorted by id): the ``max_items`` most
    frequent (None = all) of those with at least ``min_count`` events, ties broken by id so the vocabulary does not
    depend on row order. Logs how many are left to the unknown token."""
    counts = interactions[ITEM].astype(str).value_counts()
    kept = counts[counts >= min_count]
    if max_items is not None:  # by count, ties by id (a stable sort of the id-sorted counts)
        kept = kept.sort_index().sort_values(ascending=False, kind="stable").head(max_items)
    if len(kept) < len(counts):
        events = int(counts.sum())
        share = (events - int(kept.sum())) / max(events, 1)
        heavy = share > UNKNOWN_ITEM_SHARE
        log.log(logging.WARNING if heavy else logging.INFO,
                "scratch tokenizer: %d of %d items get a token (llm.data.item_vocab %s, item_min_count %d); the "
                "other %d (%.1f %% of %d events) read as the unknown token%s", len(kept), len(counts), max_items,
                min_count, len(counts) - len(kept), 100.0 * share, events,
                "; raise llm.data.item_vocab or lower item_min_count if the items: section matters" if heavy else "")
    return sorted(kept.index.tolist())


def section_texts(data: SftDataConfig, interactions: pd.DataFrame) -> list[str]:
    """The words of the optional prompt sections ``data`` asks for, which a scratch tokenizer must hold: the
    sections' marks and, with ``items``, the words of the items of ``interactions`` (the history) that
    :func:`item_vocabulary` keeps (``data.item_vocab``, ``data.item_min_count``)."""
    texts = [" ".join(option_words(data.full_csid, data.long_term, data.sequence, data.items))]
    if data.items:
        texts.append(" ".join(map(item_text, item_vocabulary(interactions, data.item_vocab, data.item_min_count))))
    return texts


def _bundle(cfg: LlmConfig, categories: Sequence[str], profiles: Mapping[str, Mapping], csid_levels: Sequence[int],
            seed_offset: int, device: str, sections: Sequence[str] = (),
            embeddings: EncoderEmbeddings | None = None) -> ModelBundle:
    """A new model and tokenizer; a scratch tokenizer also gets the profiles' words and ``sections``
    (:func:`section_texts`). With ``llm.model.embedding_init: encoder`` the category and item rows start from
    ``embeddings``, the DSIE encoder's (:mod:`coea.llm.embedding_init`)."""
    texts = [*(str(p.get("profile", "")) for p in profiles.values()), *sections]
    model_cfg = replace(cfg.model, seed=cfg.model.seed + seed_offset)
    bundle = build_model_and_tokenizer(model_cfg, categories, texts, csid_levels, device=device)
    if model_cfg.embedding_init == "encoder":
        if embeddings is None:
            raise ValueError("llm.model.embedding_init is encoder but no encoder embeddings were passed")
        n = init_from_encoder(bundle.model, bundle.tokenizer, embeddings, seed=model_cfg.seed)
        log.info("%d category and %d item embeddings start from the DSIE encoder's (llm.model.embedding_init)",
                 n["categories"], n["items"])
    return bundle


def _saved_novelty(path: Path | None, cfg: LlmConfig, device: str) -> ModelBundle:
    """The trained N-LLM at ``path`` a warm-started R-LLM copies when the N-LLM is not trained in the same call; it
    must have been trained with the prompt options of ``cfg``."""
    if path is None or not (path / "bundle.json").is_file():
        raise CoeaInputError("llm.relevance_init is novelty but there is no trained N-LLM to start the R-LLM from",
                             source=path or "the LLM output dir", option="llm.relevance_init",
                             fix="train the N-LLM first into the same output dir (coea train-llms, or the "
                                 "sft-novelty step), or set llm.relevance_init: scratch")
    bundle = load_bundle(path, trainable=True, device=device)
    check_prompt_options(bundle, cfg.data)
    return bundle


def _hold_out(train: dict[str, Any], cfg: LlmConfig) -> RelevanceExamples | None:
    """Splits ``cfg.relevance_heldout`` (at most a tenth) R-LLM examples off ``train["relevance"]``, in place."""
    if not cfg.relevance_heldout:
        return None
    train["relevance"], heldout = train["relevance"].split_off(min(cfg.relevance_heldout,
                                                                   len(train["relevance"]) // 10))
    return heldout


def _check_request(cfg: LlmConfig, out_dir: Path | None, which: Sequence[str]) -> None:
    """Fail before training when ``which`` names no known model, or when a LoRA adapter would be saved over its own
    base model's directory (continuing a run's own model, ``base_model: RUN/llm/novelty``): a LoRA bundle reloads
    from that directory, so the adapter would be left without its base."""
    unknown = sorted(set(which) - set(MODELS))
    if unknown or not which:
        raise ValueError(f"which must name models of {MODELS}, got {list(which)!r}")
    if out_dir is None or cfg.model.is_scratch or not cfg.model.lora:
        return
    base = Path(cfg.model.base_model).expanduser().resolve()
    for name in which:
        target = (Path(out_dir) / name).resolve()
        if base == target or target in base.parents:
            raise CoeaInputError(f"the {name} LoRA adapter would be saved over its own base model",
                                 source=base, option="llm.model.base_model",
                                 fix="copy the base model to another folder first, or set llm.model.lora: false "
                                     "to continue training every weight")


def _checkpoints(cfg: LlmConfig, out_dir: Path | None, name: str,
                 on_checkpoint: Callable[[str, Path], None] | None) -> SftCheckpoints | None:
    """Model ``name``'s checkpoint folder under ``out_dir`` (None without one), keyed by the settings its start
    depends on: the model and prompt settings, its own SFT settings and (a warm-started R-LLM) the N-LLM's, all but
    the run-only ones (:data:`coea.llm.sft_config.RUN_ONLY_FIELDS`)."""
    if out_dir is None:
        return None
    start = [name, config_to_dict(cfg.model), config_to_dict(cfg.data)]
    if name == "relevance" and cfg.relevance_init is RelevanceInit.NOVELTY:
        start.append(without_run_only(config_to_dict(cfg.novelty)))
    hook = None if on_checkpoint is None else (lambda path: on_checkpoint(name, path))
    return SftCheckpoints(Path(out_dir) / CHECKPOINTS / name, json.dumps(start, sort_keys=True, default=str), hook)


def run_train_llms(cfg: LlmConfig, histories: Histories, groups: pd.DataFrame, profiles: Mapping[str, Mapping],
                   csid_levels: Sequence[int], out_dir: Path | None = None,
                   which: Sequence[str] = MODELS, device: str = "cpu",
                   novelty_dir: Path | None = None, pco_reward: RewardKind | str | None = None,
                   embeddings: EncoderEmbeddings | None = None,  # see _bundle
                   saved: Callable[[str], None] | None = None,
                   on_checkpoint: Callable[[str, Path], None] | None = None) -> LlmTrainResult:
    """SFT the LLMs named in ``which`` (default both) on examples cut from ``histories`` (never the future), on
    ``device`` (a resolved torch device string, see :func:`coea.device.resolve_device`). ``cfg.data`` must be
    resolved (:func:`coea.llm.sft_config.resolve_llm`); ``csid_levels`` are the code counts of the CSID levels
    prompts show (every level of the user's code with ``cfg.data.full_csid``, else the group prefix's).

    Each model is built from its own seed and the same tokenizer recipe, and trained with its own seed, so
    training one at a time (two pipeline steps) gives the same models as training both in one call. With
    ``cfg.relevance_init`` novelty the R-LLM starts from the trained N-LLM instead: trained first in this call, or
    read from ``novelty_dir`` (default ``out_dir/novelty``) when ``which`` is the R-LLM alone. ``pco_reward``: the
    PCO reward to tune them with (None = not known), for :func:`heldout_auc`'s warning.

    With ``out_dir`` each model is written as soon as its SFT (and held-out check) ends, then ``saved(name)`` is
    called; its checkpoints, while it trains, go to ``out_dir/sft_checkpoints/`` and ``on_checkpoint(name, folder)``."""
    _check_request(cfg, out_dir, which)
    seed_everything(cfg.model.seed)
    infos = group_infos(groups, profiles)
    warm = "relevance" in which and cfg.relevance_init is RelevanceInit.NOVELTY
    sections = section_texts(cfg.data, histories.interactions) if cfg.model.is_scratch else []  # sub-word: spelt
    bundles = {name: _bundle(cfg, histories.categories, profiles, csid_levels, MODELS.index(name), device, sections,
                             embeddings) for name in MODELS if name in which and not (warm and name == "relevance")}
    for b in bundles.values():
        b.prompt = cfg.data.prompt_options()  # saved with the model, checked where it is used
    source = bundles.get("novelty") or (
        _saved_novelty(novelty_dir or (out_dir and Path(out_dir) / "novelty"), cfg, device) if warm else None)
    eos = (source or next(iter(bundles.values()))).tokenizer.eos_token
    examples = build_sft_examples(histories.interactions, infos, cfg.data, eos=eos, which=tuple(which))
    log.info("sft data: %s", " and ".join(f"{len(getattr(examples, n))} {n} examples" for n in MODELS if n in which))
    train = {"novelty": examples.novelty, "relevance": examples.relevance}
    heldout = _hold_out(train, cfg) if "relevance" in which else None
    result = LlmTrainResult(None, None, {}, infos)
    for name in (n for n in MODELS if n in which):  # the N-LLM first: a warm-started R-LLM copies it trained
        if name == "relevance" and warm:
            bundles[name] = replace(source, model=copy.deepcopy(source.model), path=None)
            log.info("the R-LLM starts from the trained N-LLM (llm.relevance_init: novelty)")
        b = bundles[name]
        result.sft[name] = train_sft(cfg.sft_for(name), b.model, b.tokenizer, train[name], name=name, device=device,
                                     checkpoints=_checkpoints(cfg, out_dir, name, on_checkpoint))
        setattr(result, name, b)
        if name == "relevance" and heldout:
            result.checks["relevance"] = heldout_auc(b, heldout, cfg.batch_size, pco_reward)
        if out_dir is not None:  # now: a later model's failure must not cost this one
            _save_model(result, cfg, Path(out_dir), name, saved)
    return result


def _save_model(result: LlmTrainResult, cfg: LlmConfig, out_dir: Path, name: str,
                saved: Callable[[str], None] | None) -> None:
    """Model ``name``'s bundle, its ``sft_metrics_<name>.json`` (one file per model: two SFT steps may share
    ``out_dir``) and ``llm_config.json`` under ``out_dir``, the paths into ``result.paths``; then ``saved(name)``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result.paths[name] = save_bundle(getattr(result, name), out_dir / name)
    result.paths[f"sft_metrics_{name}"] = out_dir / f"sft_metrics_{name}.json"
    write_json_atomic(result.paths[f"sft_metrics_{name}"], {name: result.metrics()[name],
                                                            "config": config_to_dict(cfg)})
    result.paths["llm_config"] = out_dir / "llm_config.json"
    save_config(cfg, result.paths["llm_config"])
    with contextlib.suppress(OSError):  # gone once no model's checkpoints are left in it
        (out_dir / CHECKPOINTS).rmdir()
    if saved is not None:
        saved(name)
