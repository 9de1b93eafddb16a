"""Stage ``sft``: SFT of the Novelty and/or Relevance LLM on the prepared log's histories and a DSIE dir's groups.

Writes under ``out_dir``: ``novelty/`` and/or ``relevance/`` (model or LoRA adapter, tokenizer, configs),
``sft_metrics_<model>.json`` and ``llm_config.json`` (:func:`coea.llm.run.run_train_llms`). A category that appears only
in a later period is admitted when the models meet it (:func:`coea.llm.models.admit_categories`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coea import lineage
from coea.config import RunConfig, config_to_dict
from coea.data.prepared import read_prepared
from coea.data.schema import USER
from coea.data.split import Split, chronological_split
from coea.device import resolve_device
from coea.errors import CoeaInputError
from coea.llm.embedding_init import load_encoder_embeddings
from coea.llm.run import MODELS, run_train_llms
from coea.llm.sft_config import LlmConfig, resolve_llm, without_run_only
from coea.stages.artifacts import read_groups_dir

log = logging.getLogger(__name__)


@dataclass
class SftStageResult:
    """The LLM dir, how each SFT went (``coea.llm.run.LlmTrainResult.metrics``), the files written."""

    out_dir: Path
    sft: dict[str, dict[str, Any]]
    paths: dict[str, Path] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """``<model>.<figure>`` (examples, steps, seconds, first/last loss, the R-LLM's held-out AUC), flat (for a
        KFP Metrics artifact)."""
        return {f"{name}.{key}": float(m[key]) for name, m in self.sft.items()
                for key in ("examples", "steps", "seconds", "first_loss", "last_loss", "heldout_auc")
                if m.get(key) is not None}


def short_history_warning(split: Split, llm: LlmConfig) -> str | None:
    """A warning when the warm users' median history is at most twice the short-term window (``llm.data.n_short``,
    resolved) while the N-LLM's prompt shows the ``items:`` section, else None. On such histories its item tokens
    are too rare to learn: on the short MovieLens view (median 8 events) the ``seq:`` and ``items:`` sections at 50
    cost the N-LLM .045 and the served fusion .020 (docs/results.md, session 44; before the sequence loss), while
    ``seq:`` alone at 10, with the sequence loss, gained .010 and coea+x .003 (session 53); on MovieLens'
    ~160-event histories both gain .029. Where between the two the items stop paying was not measured, so this
    warns and changes nothing."""
    if not llm.data.items or not split.warm_users:
        return None
    median = float(split.histories.interactions.groupby(USER).size().reindex(split.warm_users).median())
    if median > 2 * llm.data.n_short:
        return None
    return (f"the warm users' histories have a median of {median:g} events (at most twice llm.data.n_short="
            f"{llm.data.n_short}) and the N-LLM's prompt shows llm.data.items={llm.data.items}: on such short "
            "histories the item tokens are too rare to learn, and with the seq: section they cost the N-LLM .045 on "
            "the short MovieLens view (docs/results.md, session 44); set llm.data: {sequence: 10, items: 0}, or run "
            "with --config short, which does")


# the LLM settings each model's SFT depends on (llm_config.json keys); a warm-started R-LLM also the N-LLM's
_TRAINED_FROM = {"novelty": ("model", "data", "novelty"),
                 "relevance": ("model", "data", "relevance", "relevance_heldout", "relevance_init")}


def _training_settings(llm: dict[str, Any], name: str) -> dict[str, Any]:
    """The settings of ``llm`` (an LLM config as a dict) model ``name``'s SFT depends on, without the run-only ones."""
    keys = _TRAINED_FROM[name] + (("novelty",) if name == "relevance" and llm.get("relevance_init") == "novelty"
                                  else ())
    return without_run_only({key: llm.get(key) for key in keys})


def trained_with(llm_dir: Path, name: str, cfg: RunConfig, data_dir: Path, dsie_dir: Path) -> bool:
    """Whether ``llm_dir/<name>`` is a finished SFT model (its lineage record written) of ``cfg``'s LLM settings on
    ``data_dir``'s histories under ``cfg.split`` and ``dsie_dir``'s groups: training it again would give the same
    model (seeded), so a re-run after a later failure keeps it and an ablation reuses it."""
    resolved = json.loads(json.dumps(config_to_dict(resolve_llm(cfg.llm, cfg.split))))
    try:
        lineage.check(Path(llm_dir) / name, name, lineage.histories(data_dir, cfg.split), {"dsie": Path(dsie_dir)})
        trained = json.loads((Path(llm_dir) / f"sft_metrics_{name}.json").read_text(encoding="utf-8"))["config"]
        if _training_settings(trained, name) != _training_settings(resolved, name):
            return False
    except (CoeaInputError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return _readable(Path(llm_dir) / name)


def _readable(model_dir: Path) -> bool:
    """Whether the model files of ``model_dir`` can be read: its JSON files parse and every ``*.safetensors`` file
    opens (safetensors checks the header against the file's length: a truncated copy fails). A damaged model is
    trained again rather than kept, which the error of the step that failed to load it tells one to do."""
    from safetensors import safe_open

    try:
        for path in sorted(model_dir.glob("*.json")):
            json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(model_dir.glob("*.safetensors")):
            with safe_open(str(path), "pt"):
                pass
    except Exception as err:  # noqa: BLE001 - any reader error means the same: not a usable model
        log.warning("%s cannot be read (%s: %s); it is trained again", model_dir, type(err).__name__, err)
        return False
    return True


def run_sft_stage(cfg: RunConfig, data_dir: Path, dsie_dir: Path, out_dir: Path,
                  which: Sequence[str] = MODELS, novelty_dir: Path | None = None,
                  on_checkpoint: Callable[[str, Path], None] | None = None) -> SftStageResult:
    """SFT the LLMs named in ``which`` on the histories of the prepared log in ``data_dir`` with the groups and
    profiles of ``dsie_dir``; written under ``out_dir``. The SFT windows left unset follow ``cfg.split``
    (:func:`coea.llm.sft_config.resolve_llm`); ``llm_config.json`` records the resolved values. ``novelty_dir``: the
    trained N-LLM a warm-started R-LLM (``llm.relevance_init: novelty``) copies, when it is not ``out_dir/novelty``
    (the pipeline's sft-relevance step reads the sft-novelty step's output). Each model is written, with its
    lineage record, as soon as its SFT ends; a run started again resumes a model's SFT from its last checkpoint
    under ``out_dir/sft_checkpoints/`` (:func:`coea.llm.run.run_train_llms`; ``on_checkpoint(name, folder)``
    hears of each new one)."""
    for name in which:  # a run killed after saving one of the two leaves the other unusable, not a mixed pair
        lineage.clear(Path(out_dir) / name)
    split = chronological_split(read_prepared(data_dir).interactions, cfg.split)
    g = read_groups_dir(dsie_dir)
    llm = resolve_llm(cfg.llm, cfg.split)  # SFT windows follow the split unless set
    if "novelty" in which and (warning := short_history_warning(split, llm)) is not None:
        log.warning(warning)
    embeddings = load_encoder_embeddings(dsie_dir) if llm.model.embedding_init == "encoder" else None
    key = lineage.histories(data_dir, cfg.split)
    result = run_train_llms(llm, split.histories, g.groups, g.profiles, g.prompt_levels(llm.data.full_csid),
                            Path(out_dir), which=tuple(which), device=resolve_device(cfg.device),
                            novelty_dir=novelty_dir, pco_reward=cfg.pco.reward, embeddings=embeddings,
                            saved=lambda name: lineage.write(Path(out_dir) / name, key, {"dsie": Path(dsie_dir)}),
                            on_checkpoint=on_checkpoint)
    return SftStageResult(Path(out_dir), result.metrics(), result.paths)
