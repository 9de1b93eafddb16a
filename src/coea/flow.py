"""The in-process training flow: the steps of the compiled ``coea_training`` pipeline, in the same order, as
plain calls of the stage functions (:mod:`coea.stages`) on one run folder (:class:`~coea.layout.RunLayout`).

``coea evaluate`` (without ``--from-run``), ``coea group``, ``coea ablate``, ``coea simulate``'s first period and
the benchmarks run it; ``coea run`` runs the compiled pipeline under kfp.local, whose tasks are the same steps
(:data:`TRAINING_STEPS`; a test compares the compiled task order with it). Steps run only when needed:
DSIE when a method needs groups, SFT when one needs the LLMs, PCO when one needs the PCO models; the state
commit when a ``state_uri`` is given; recommend/export when a served method is given.
"""

from __future__ import annotations

import contextlib
import enum
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from coea.config import SERVED_METHOD, RunConfig, check_cutoffs
from coea.evaluation.registry import Need, needs_of
from coea.layout import RunLayout
from coea.utils import atomic_dir

if TYPE_CHECKING:
    from coea.stages.prepare import PrepareResult

log = logging.getLogger(__name__)


class Step(enum.StrEnum):
    """A step of the training flow, named like its ``coea_training`` pipeline task."""

    PREPARE = "prepare-data"
    DSIE = "dsie-group"
    SFT_NOVELTY = "sft-novelty"
    SFT_RELEVANCE = "sft-relevance"
    PCO = "pco-loop"
    SAVE_STATE = "save-state"
    EVALUATE = "evaluate"
    RECOMMEND = "recommend"
    EXPORT = "export-recommendations"


TRAINING_STEPS: tuple[Step, ...] = tuple(Step)  # dependency order of coea_training


@dataclass(frozen=True)
class Serve:
    """What the flow serves after evaluating: ``method``'s top-``k`` into the state's KV store."""

    method: str = SERVED_METHOD
    k: int = 10
    gcs_export_uri: str = ""


@dataclass
class FlowResult:
    """The run folder and the steps that ran (with their stage results)."""

    layout: RunLayout
    results: dict[Step, object]

    @property
    def steps(self) -> list[Step]:
        return list(self.results)


def plan(needs: frozenset[Need], *, state_uri: str | None, serve: Serve | None, evaluate: bool) -> list[Step]:
    """The steps a flow with these needs and options runs, in :data:`TRAINING_STEPS` order."""
    if serve is not None:
        needs |= needs_of([serve.method])
    if state_uri:
        needs |= {Need.DSIE, Need.PCO}
    wanted = {Step.PREPARE}
    if needs & {Need.DSIE, Need.LLMS, Need.PCO}:
        wanted.add(Step.DSIE)
    if needs & {Need.LLMS, Need.PCO}:
        wanted |= {Step.SFT_NOVELTY, Step.SFT_RELEVANCE}
    if Need.PCO in needs:
        wanted.add(Step.PCO)
    if state_uri:
        wanted.add(Step.SAVE_STATE)
    if evaluate:
        wanted.add(Step.EVALUATE)
    if serve is not None:
        wanted.add(Step.RECOMMEND)
        if state_uri:
            wanted.add(Step.EXPORT)
    return [s for s in TRAINING_STEPS if s in wanted]


def run_flow(cfg: RunConfig, layout: RunLayout, *, needs: frozenset[Need] | None = None, evaluate: bool = True,
             state_uri: str | None = None, serve: Serve | None = None) -> FlowResult:
    """Run the steps of :func:`plan` on ``layout`` (``needs`` default: what ``cfg.eval.methods`` need). The data
    step and DSIE write beside ``data/`` and ``dsie/`` and replace them only once both are done
    (:func:`staged_data`): a log refused by a check (a cut-off above its categories, a split that leaves no user a
    history) or by the DSIE fit leaves an existing run folder as it was."""
    steps = plan(needs_of(cfg.eval.methods) if needs is None else needs, state_uri=state_uri, serve=serve,
                 evaluate=evaluate)
    check_local_models(cfg, steps)
    results: dict[Step, object] = {}
    with staged_data(cfg, layout.data, ks=Step.EVALUATE in steps, pco=Step.PCO in steps,
                     split=Step.EVALUATE in steps and Step.DSIE not in steps) as prepared:
        log.info("flow: %s -> %s", " -> ".join(steps), layout.root)  # once the log passed: a refusal is one line
        results[Step.PREPARE] = prepared
        if Step.DSIE in steps:  # fitted on the staged log; replaces dsie/ just before data/ is replaced
            results[Step.DSIE] = _staged_dsie(cfg, prepared.data_dir, layout.dsie)
    for step in steps:
        if step not in results:
            results[step] = _run_step(step, cfg, layout, state_uri, serve)
    return FlowResult(layout, results)


def check_local_models(cfg: RunConfig, steps: Iterable[Step] = TRAINING_STEPS) -> None:
    """The local model directories ``steps`` would load (the LLMs' ``llm.model.base_model`` in the SFT steps, the
    ``llm`` profiler's ``dsie.profile.model_path`` in DSIE) exist as model directories: a wrong path fails in a
    second, before the data step, not after the DSIE fit (half an hour on MovieLens)."""
    from coea.dsie.config import ProfilerKind
    from coea.llm.models import local_model_dir

    steps = set(steps)
    if steps & {Step.SFT_NOVELTY, Step.SFT_RELEVANCE} and not cfg.llm.model.is_scratch:
        local_model_dir(cfg.llm.model.base_model, what="llm.model.base_model", option="llm.model.base_model",
                        instead="llm.model.base_model: scratch")
    if Step.DSIE in steps and cfg.dsie.profile.kind is ProfilerKind.LLM:
        local_model_dir(cfg.dsie.profile.model_path or "", what="dsie.profile.model_path",
                        option="dsie.profile.model_path", instead="dsie.profile.kind: template")


@contextlib.contextmanager
def staged_data(cfg: RunConfig, data_dir: Path, *, ks: bool, pco: bool = False, split: bool = False,
                check: Callable[[Path], None] | None = None) -> Iterator[PrepareResult]:
    """The data step into a staging folder beside ``data_dir``, then the checks that can refuse its log: the
    cut-offs against its categories (``eval.ks`` when ``ks``, ``pco.k`` when ``pco``), with ``split`` a split that
    leaves some user a history, and ``check`` (given the staging folder). The block runs on the staged log (the
    result's paths are in the staging folder until it ends); ``data_dir`` is replaced only when it ends without an
    error, so a refused log leaves an existing ``data_dir`` as it was. The data step's own log line (naming the
    staging folder, deleted afterwards) is left out; its numbers are logged once the log passed the checks."""
    from coea import stages

    with atomic_dir(data_dir) as staging:
        with _quiet(logging.getLogger(stages.run_prepare_data.__module__)):
            prepared = stages.run_prepare_data(cfg, staging)
        check_cutoffs(cfg, prepared.stats["categories"], ks=ks, pco=pco)
        if split:
            from coea.data.prepared import read_prepared
            from coea.data.split import chronological_split, require_warm_users

            loaded = read_prepared(staging)
            require_warm_users(chronological_split(loaded.interactions, cfg.split), loaded.source)
        if check is not None:
            check(staging)
        log.info("data: %s: %d events, %d users, %d categories", prepared.source, prepared.stats["interactions"],
                 prepared.stats["users"], prepared.stats["categories"])
        yield prepared
    prepared.data_dir, prepared.paths = Path(data_dir), rebased(prepared.paths, staging, Path(data_dir))
    log.info("prepared data -> %s", data_dir)


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """``logger``'s INFO and DEBUG records dropped while open (its warnings still show)."""
    def drop(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING

    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def _staged_dsie(cfg: RunConfig, data_dir: Path, dsie_dir: Path) -> object:
    from coea import stages

    with atomic_dir(dsie_dir) as staging:
        result = stages.run_dsie_group(cfg, data_dir, staging)
    result.paths = rebased(result.paths, staging, dsie_dir)
    return result


def rebased(paths: dict[str, Path], old: Path, new: Path) -> dict[str, Path]:
    """``paths`` under the folder ``old`` moved to ``new`` (the others as they are)."""
    return {name: new / p.relative_to(old) if p.is_relative_to(old) else p for name, p in paths.items()}


def _run_step(step: Step, cfg: RunConfig, layout: RunLayout, state_uri: str | None, serve: Serve | None) -> object:
    from coea import stages

    if step in (Step.SFT_NOVELTY, Step.SFT_RELEVANCE):
        which = "novelty" if step is Step.SFT_NOVELTY else "relevance"
        return stages.run_sft_stage(cfg, layout.data, layout.dsie, layout.llm, which=(which,))
    if step is Step.PCO:
        return stages.run_pco_stage(cfg, layout.data, layout.dsie, [layout.llm], layout.pco)
    if step is Step.SAVE_STATE:
        final = stages.last_complete_round(layout.pco)
        return stages.run_save_state(str(state_uri), layout.data, layout.dsie, final, final)
    if step is Step.EVALUATE:
        return stages.run_evaluate_stage(cfg, layout.data, layout.eval, layout.artifacts())
    if step is Step.RECOMMEND:
        assert serve is not None
        return stages.run_recommend(cfg, layout.data, layout.artifacts(), serve.method, serve.k,
                                    layout.recommendations, seen_out=layout.seen)
    assert serve is not None and state_uri
    return stages.run_export(stages.PublishConfig(metadata={"recommendations": str(layout.recommendations)}),
                             layout.recommendations, state_uri, layout.kv_store,
                             gcs_uri=serve.gcs_export_uri or None, seen=layout.seen)


