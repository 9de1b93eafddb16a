"""Model factory for the N-LLM and the R-LLM: a small model built from scratch, or a local pretrained one + LoRA.

Nothing here touches a model hub: pretrained models load with ``local_files_only=True`` from a directory.

A saved bundle directory holds ``model_config.json`` (the :class:`ModelConfig`), ``bundle.json`` (what kind of
bundle it is), the tokenizer files, and either the full model (scratch, or pretrained without LoRA) or only the
LoRA adapter. A LoRA bundle reloads as: base model from ``model_config.json``'s ``base_model`` (which must still
exist locally) -> embeddings resized to the saved tokenizer -> ``PeftModel.from_pretrained(base, bundle_dir)``.
Because the CSID tokens enlarge the vocabulary, peft saves the resized embedding (and output) matrices inside the
adapter, so the reloaded model is identical to the saved one.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coea.config import read_saved_config, save_config
from coea.errors import CoeaInputError, reads
from coea.llm.config import ModelConfig
from coea.llm.tokenizer import (
    build_scratch_tokenizer,
    category_token_ids,
    check_encodable,
    csid_vocab,
    extend_scratch_tokenizer,
    is_single_token,
    unknown_names,
)
from coea.utils import atomic_dir

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

CONFIG_FILE = "model_config.json"
META_FILE = "bundle.json"
# the value a prompt option had before bundles recorded it (``sequence`` came in session 22, ``items`` in 35): an
# older bundle was trained without the section
PROMPT_OPTIONS_BEFORE_RECORDED = {"sequence": 0, "items": 0}


@dataclass
class ModelBundle:
    """A causal LM with its tokenizer and the config that made it."""

    model: Any  # PreTrainedModel, or a peft PeftModel wrapping one
    tokenizer: PreTrainedTokenizerBase
    config: ModelConfig
    is_scratch: bool  # built from the config (True) or loaded from a local pretrained directory (False)
    single_token_categories: bool  # every category name is one token (the fast decoding path applies)
    # the prompt options the model was trained with (SftDataConfig.prompt_options); None = not recorded (older bundles)
    prompt: dict[str, Any] | None = None
    path: Path | None = None  # where it was loaded from (error messages)


def build_scratch_model(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase, *,
                        device: str = "cpu") -> PreTrainedModel:
    """A randomly initialised Llama or Qwen2 causal LM sized by ``cfg`` over ``tokenizer``'s vocabulary, on
    ``device`` (a resolved torch device string)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    config_cls, model_cls = {"llama": (LlamaConfig, LlamaForCausalLM),
                             "qwen2": (Qwen2Config, Qwen2ForCausalLM)}[cfg.architecture]
    config = config_cls(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_position_embeddings, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
        torch.manual_seed(cfg.seed)
        model = model_cls(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model.to(device)


def local_model_dir(path: str | Path, *, what: str = "base model", option: str = "base_model",
                    instead: str = "base_model: scratch") -> Path:
    """``path`` as an existing local Hugging Face model directory, or a CoeaInputError saying what to do (point
    ``option`` elsewhere, or use ``instead``)."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise CoeaInputError(f"{what} directory not found (models are never downloaded)", source=p,
                             fix=f"pass a local directory saved with save_pretrained, or {instead}")
    if not (p / "config.json").is_file() and not (p / "adapter_config.json").is_file():
        raise CoeaInputError(f"{what} directory has no config.json", source=p,
                             fix=f"point {option} at a directory written by save_pretrained")
    return p


def _add_csid_tokens(tokenizer: PreTrainedTokenizerBase, csid_levels: Sequence[int]) -> list[int]:
    """Add the CSID code tokens as special (never split) tokens; return the ids of those that were new."""
    tokens = csid_vocab(csid_levels)
    before = len(tokenizer)
    tokenizer.add_tokens(tokens, special_tokens=True)  # same API in transformers 4.x and 5.x
    return [i for i in tokenizer.convert_tokens_to_ids(tokens) if i >= before]


def _wrap_lora(model: PreTrainedModel, cfg: ModelConfig, new_ids: list[int]) -> Any:
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(task_type="CAUSAL_LM", r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                      lora_dropout=cfg.lora_dropout, target_modules=list(cfg.lora_target_modules),
                      trainable_token_indices=new_ids if (cfg.train_new_tokens and new_ids) else None)
    return _peft_model(lambda: get_peft_model(model, lora))


def _peft_model(make: Callable[[], Any]) -> Any:
    """``make()``, a peft model (fresh or reloaded), without the FutureWarning peft's question to transformers 5
    (the deprecated ``is_gradient_checkpointing``) raises, and with an output head that answers ``bias``. A head
    tied to the input embedding (Qwen2.5 0.5B-3B) is wrapped by peft with the new tokens' rows; the wrapper
    forwards ``weight`` (merged with those rows) but not ``bias``, which trl's fused LM head reads: every SFT step
    failed with AttributeError (session 57, a tied Qwen2 with Qwen's tokenizer)."""
    from coea.llm.trainer_output import GRADIENT_CHECKPOINTING_DEPRECATED

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", GRADIENT_CHECKPOINTING_DEPRECATED, FutureWarning)
        model = make()
    head = model.get_output_embeddings()
    if not hasattr(head, "bias") and getattr(head, "original_module", None) is not None:
        head.bias = head.original_module.bias
    return model


def load_pretrained(cfg: ModelConfig, csid_levels: Sequence[int], *, device: str = "cpu",
                    categories: Sequence[str] = ()) -> tuple[Any, PreTrainedTokenizerBase]:
    """A LOCAL pretrained model + tokenizer with CSID tokens added, on ``device``; LoRA-wrapped when ``cfg.lora``.

    ``categories`` are checked to be writable by the tokenizer (:func:`coea.llm.tokenizer.check_encodable`)
    before the model's weights load: a name it cannot write fails in seconds, not after training."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if cfg.is_scratch:
        raise ValueError("load_pretrained needs base_model to be a local directory, got 'scratch'")
    path = local_model_dir(cfg.base_model)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    new_ids = _add_csid_tokens(tokenizer, csid_levels)
    check_encodable(tokenizer, categories, what=f"the tokenizer of base model {path}")
    # every weight trains without LoRA: fp32 master weights (bf16 autocast still runs the maths where asked), or
    # most small updates round away in a bf16 checkpoint's own dtype (audit, session 55: 21 % of the weights moved
    # against 70 % in fp32); a LoRA base stays frozen in its checkpoint's dtype
    dtype = {} if cfg.lora else {"dtype": torch.float32}
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, **dtype)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        with torch.random.fork_rng(devices=[]):  # new rows are sampled: seed them, leave the caller's RNG alone
            torch.manual_seed(cfg.seed)
            model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    log.info("loaded %s: vocab %d (%d CSID tokens added)", path, len(tokenizer), len(new_ids))
    if cfg.lora:
        model = _wrap_lora(model, cfg, new_ids)
    return model.to(device), tokenizer


def build_model_and_tokenizer(cfg: ModelConfig, categories: Sequence[str], extra_texts: Iterable[str],
                              csid_levels: Sequence[int], *, device: str = "cpu") -> ModelBundle:
    """Scratch: build the word-level tokenizer and a fresh model. Otherwise: :func:`load_pretrained`. The model
    is on ``device`` (a resolved torch device string, see :func:`coea.device.resolve_device`)."""
    if cfg.is_scratch:
        tokenizer = build_scratch_tokenizer(categories, extra_texts, csid_levels)
        model = build_scratch_model(cfg, tokenizer, device=device)
    else:
        model, tokenizer = load_pretrained(cfg, csid_levels, device=device, categories=categories)
    single = is_single_token(tokenizer, list(categories))
    return ModelBundle(model, tokenizer, cfg, cfg.is_scratch, single)


def admit_categories(bundle: ModelBundle, categories: Sequence[str]) -> list[str]:
    """Make every name in ``categories`` nameable by ``bundle`` (in place); returns the names that were added.

    A pretrained sub-word tokenizer spells any new name, so nothing changes. A scratch tokenizer knows only the
    categories it was built with: a category that first appears in a later period (the recurring pipeline)
    gets a new token, and the tied embedding matrix a new row initialised to the mean of the rows of the known
    names of ``categories`` (of the whole vocabulary when none is known): a neutral "average category" that
    the N-LLM proposes at an average rate and the R-LLM refresh then learns about, instead of a crash.
    """
    import torch

    new = unknown_names(bundle.tokenizer, categories)
    if not new:
        return []
    if not bundle.is_scratch:
        check_encodable(bundle.tokenizer, categories, what=f"the tokenizer of base model {bundle.config.base_model}")
    old_vocab = len(bundle.tokenizer)
    ref_ids = [ids[0] for ids in category_token_ids(bundle.tokenizer, [c for c in categories if c not in new])]
    bundle.tokenizer = extend_scratch_tokenizer(bundle.tokenizer, new)
    with torch.random.fork_rng(devices=[]):
        bundle.model.resize_token_embeddings(len(bundle.tokenizer), mean_resizing=False)
    emb = bundle.model.get_input_embeddings().weight
    with torch.no_grad():
        emb[old_vocab:] = (emb[ref_ids] if ref_ids else emb[:old_vocab]).mean(dim=0)
    bundle.single_token_categories = is_single_token(bundle.tokenizer, list(categories))
    log.warning("%d categories unknown to the scratch tokenizer were added with mean-initialised embeddings: %s",
                len(new), new[:10])
    return new


def unpatch_forward(model: Any) -> Any:
    """Drop the instance-level ``forward`` that trl's trainers install (``add_fused_lm_head``), restoring the
    class's own forward; returns ``model``.

    trl's patched forward closes over the *original object's* bound forward, so a ``copy.deepcopy`` of a
    patched model silently runs the ORIGINAL model's weights (a copy trained by DPO would score like the
    model it was copied from). Call this after every training run; trl re-patches on the next trainer.
    """
    for m in (model, model.get_base_model() if is_peft(model) else None):
        if m is not None:
            m.__dict__.pop("forward", None)
    return model


def is_peft(model: Any) -> bool:
    """``model`` is a peft wrapper (the LoRA models): the module it wraps, with the adapter injected into its
    layers, answers ``peft_config`` too but not ``get_base_model``."""
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


ADAPTER_PARAMS = ("lora_", "trainable_tokens")  # the names of peft's trainable parts: LoRA matrices, new token rows


def make_trainable(bundle: ModelBundle) -> None:
    """Unfreeze what training updates (a reloaded bundle comes frozen): every weight of a full model (scratch, or
    pretrained with ``lora: false``), only the adapter of a LoRA model (its matrices and the new CSID token rows,
    as :func:`load_pretrained` left them for SFT)."""
    adapter = is_peft(bundle.model)
    for name, param in bundle.model.named_parameters():
        param.requires_grad_(not adapter or any(part in name for part in ADAPTER_PARAMS))


def save_bundle(bundle: ModelBundle, out_dir: Path, *, announce: bool = True) -> Path:
    """Write model (or LoRA adapter), tokenizer, ``model_config.json`` and ``bundle.json`` to ``out_dir``; log
    where, once it is there. ``announce=False``: no log line, for a caller writing into a temporary directory of its
    own (its path is gone after the rename; the caller names the final one)."""
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        if is_peft(bundle.model):  # the CSID tokens resized the embeddings: keep those matrices with the adapter
            bundle.model.save_pretrained(tmp, save_embedding_layers=True)
        else:
            bundle.model.save_pretrained(tmp)
        bundle.tokenizer.save_pretrained(tmp)
        save_config(bundle.config, tmp / CONFIG_FILE)
        meta = {"is_scratch": bundle.is_scratch, "single_token_categories": bundle.single_token_categories,
                "adapter": is_peft(bundle.model), "prompt": bundle.prompt}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    if announce:
        log.info("saved model bundle to %s", out_dir)
    return out_dir


@reads("re-run the step that wrote it: `coea train-llms` (or `coea pco` for a round's models)")
def load_bundle(out_dir: Path, *, trainable: bool = False, device: str = "cpu") -> ModelBundle:
    """Reload what :func:`save_bundle` wrote onto ``device``. A LoRA bundle needs its base model directory (see
    module doc)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out_dir = Path(out_dir)
    if not (out_dir / CONFIG_FILE).is_file() or not (out_dir / META_FILE).is_file():
        raise CoeaInputError(f"not a model bundle (no {CONFIG_FILE} / {META_FILE})", source=out_dir,
                             fix="pass a directory written by save_bundle")
    cfg = read_saved_config(ModelConfig, out_dir / CONFIG_FILE)
    meta = json.loads((out_dir / META_FILE).read_text(encoding="utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(out_dir, local_files_only=True)
    if meta["adapter"]:
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(local_model_dir(cfg.base_model), local_files_only=True)
        if len(tokenizer) > base.get_input_embeddings().weight.shape[0]:  # as load_pretrained grew it (never
            with torch.random.fork_rng(devices=[]):  # shrinks: a base padded past its tokenizer keeps its rows)
                base.resize_token_embeddings(len(tokenizer))  # rows are overwritten by the adapter's saved matrices
        model = _peft_model(lambda: PeftModel.from_pretrained(base, out_dir, is_trainable=trainable))
    else:
        model = AutoModelForCausalLM.from_pretrained(out_dir, local_files_only=True, dtype=torch.float32)
        model.requires_grad_(trainable)
    if not trainable:
        model.eval()
    return ModelBundle(model.to(device), tokenizer, cfg, meta["is_scratch"],
                       meta["single_token_categories"], meta.get("prompt"), out_dir)


def check_prompt_options(bundle: ModelBundle, data) -> None:
    """A :class:`~coea.errors.CoeaInputError` when ``data`` (the config's ``llm.data``) asks for prompts other than
    the ones ``bundle`` was trained with: a model fed prompts it never saw ranks silently worse."""
    wanted = data.prompt_options()
    if bundle.prompt is None:
        return
    had = {**PROMPT_OPTIONS_BEFORE_RECORDED, **bundle.prompt}  # bundles saved before an option existed lacked it
    diff = {k: (had.get(k), v) for k, v in wanted.items() if had.get(k) != v}
    if not diff:
        return
    trained = ", ".join(f"{k}: {t!r}" for k, (t, _) in diff.items())
    asked = ", ".join(f"{k}={w!r}" for k, (_, w) in diff.items())
    raise CoeaInputError(f"the model was trained with prompt option(s) {trained}, but the config asks for {asked}",
                         source=bundle.path, option="llm.data",
                         fix=f"use the config the models were trained with (e.g. the run's config.json), or set "
                             f"llm.data {{{trained}}}")
