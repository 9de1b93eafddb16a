"""One KFP v2 component per stage: a thin wrapper that calls one ``run_*`` function of ``coea.stages`` or
``coea.state`` and records its outputs as typed artifacts.

The functions below are plain Python; :func:`components.build.build_components` turns them into lightweight
components with the deployment's image (``dsl.component(base_image=..., install_kfp_package=False)``: the image
already holds coea and kfp, nothing is pip-installed at start-up). KFP ships each function's source to its pod, so
every body imports what it uses; the artifact types come from the ``from kfp.dsl import *`` KFP puts in front of it.
This module deliberately has no ``from __future__ import annotations``: KFP reads the annotations as types.
The steps that train or score models take the ``device`` parameter (``auto`` | ``cpu`` | ``cuda[:N]``; auto = cuda
when the pod has a GPU); ``evaluate`` and ``recommend`` run on CPU pods, where ``cuda[:N]`` means ``auto``
(:func:`coea.device.cpu_step_device`). ``prepare_data`` receives every run parameter and checks them all first
(:mod:`coea.stages.run_parameters`), so a bad one fails the run before any GPU step. Every output artifact except
``Metrics`` (whose metadata are the metrics) records the package version (``coea_version``; ``coea_git_sha`` too
in images built by ``make images``) in its metadata (:func:`coea.stages.record_version`). Every body runs under
:func:`coea.interrupts.pipeline_step`: a SIGTERM (a preempted pod, a deadline) unwinds it, so its ``finally`` blocks
remove its temporary files (e.g. ``.current.json.*.tmp`` on a state volume), then the step exits 143.

``sft_novelty`` and ``sft_relevance`` train one LLM each (``run_sft_stage(which=...)``); ``evaluate`` and
``recommend`` take both as optional inputs and load exactly what their methods need (a method whose artifact is
not wired in is an error, never an in-process training); ``pco_loop`` runs the
PCO rounds from them (``run_pco_stage``) and its dir feeds the ``coea`` method of ``evaluate``/``recommend``; it
also hands the last round's models on in the ``sft_*`` layout, which ``save_models`` stores under ``state_uri`` and
``load_models`` brings back for the next period's PCO update.
"""

from typing import NamedTuple

from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output


def prepare_data(data_config: str, data: Output[Dataset], stats: Output[Metrics], scheduled_time: str = "",
                 data_spec: str = "", state_uri: str = "", split_config: str = "{}", dsie_config: str = "{}",
                 eval_config: str = "{}", llm_config: str = "{}", pco_config: str = "{}", device: str = "auto",
                 pco_rounds: int = 0, pco_alpha: float = -1.0, rec_method: str = "coea_seq+x", rec_k: int = 10,
                 gcs_export_uri: str = "", drift_config: str = "{}", drift_threshold: float = 0.5,
                 recurring: bool = False):
    """Check every run parameter (:func:`coea.stages.run_parameters.check_run_parameters`: the pipelines pass
    them all; ``recurring`` adds the drift check's), then load and validate the log named by ``data_config``
    ({"data": ..., "synthetic": ...}; a non-empty ``data_spec`` replaces its ``data.spec``; one of them must name
    it) and check the cut-offs against its categories; write it as a prepared data dir (interactions.parquet,
    stats, synthetic ground truth, the config used). ``scheduled_time`` (the pipelines wire in the run's scheduled
    time) is the as-of time of a partitioned log unless ``data.as_of`` is set."""
    from pathlib import Path

    from coea.interrupts import pipeline_step
    from coea.stages import record_version, run_prepare_data
    from coea.stages.run_parameters import RunParameters, check_log_parameters, check_run_parameters

    with pipeline_step():
        cfg = check_run_parameters(RunParameters(
            state_uri=state_uri, data_config=data_config, split_config=split_config, dsie_config=dsie_config,
            eval_config=eval_config, llm_config=llm_config, pco_config=pco_config, data_spec=data_spec,
            pco_rounds=pco_rounds, pco_alpha=pco_alpha, device=device, rec_method=rec_method, rec_k=rec_k,
            gcs_export_uri=gcs_export_uri, drift_config=drift_config if recurring else None,
            drift_threshold=drift_threshold))
        result = run_prepare_data(cfg, Path(data.path), scheduled_time=scheduled_time)
        check_log_parameters(cfg, int(result.stats["categories"]))
        record_version(data)
        for name, value in result.metrics().items():
            stats.log_metric(name, float(value))
        data.metadata.update({"spec": cfg.data.spec, "source": result.source, "users": result.stats["users"],
                              "interactions": result.stats["interactions"], "as_of": result.as_of or ""})


def dsie_group(data: Input[Dataset], split_config: str, dsie_config: str, dsie: Output[Model],
               metrics: Output[Metrics], device: str = "auto"):
    """DSIE on the prepared log's histories: encoder -> RQ-VAE CSIDs -> groups, profiles, report, weights."""
    from pathlib import Path

    from coea.interrupts import pipeline_step
    from coea.stages import config_from_json, record_version, run_dsie_group

    with pipeline_step():
        cfg = config_from_json(split_config, dsie_config, device=device)
        result = run_dsie_group(cfg, Path(data.path), Path(dsie.path))
        record_version(dsie)
        for name, value in result.metrics().items():
            metrics.log_metric(name, float(value))
        dsie.metadata.update({"M_N": result.summary.m_n, "framework": "pytorch"})


def build_profiles(data: Input[Dataset], dsie_in: Input[Model], split_config: str, dsie_config: str,
                   dsie: Output[Model], metrics: Output[Metrics]):
    """Keep the groups of ``dsie_in``; rebuild their profiles from the prepared log's histories."""
    from pathlib import Path

    from coea.interrupts import pipeline_step
    from coea.stages import config_from_json, record_version, run_build_profiles

    with pipeline_step():
        cfg = config_from_json(split_config, dsie_config)
        result = run_build_profiles(cfg, Path(data.path), Path(dsie_in.path), Path(dsie.path))
        record_version(dsie)
        metrics.log_metric("profiles_refreshed", float(len(result.refreshed)))
        metrics.log_metric("profiles_kept", float(len(result.kept)))
        dsie.metadata.update({"refreshed": result.refreshed, "kept": result.kept})


def sft_novelty(data: Input[Dataset], dsie: Input[Model], split_config: str, dsie_config: str, llm_config: str,
                model: Output[Model], metrics: Output[Metrics], device: str = "auto", state_uri: str = "",
                run_id: str = "", task_name: str = ""):
    """SFT of the Novelty LLM on the prepared log's histories and the DSIE groups (``model/novelty/``).
    ``state_uri``, ``run_id`` and ``task_name`` (the same for every retry of this task): the training's last
    checkpoint (every ``llm.novelty.checkpoint_minutes``) is mirrored under
    ``<state_uri>/checkpoints/<run_id>-<task_name>/novelty/``, a retried attempt (a preempted pod) resumes from it,
    and the prefix is deleted when the step succeeds (:mod:`coea.stages.sft_remote`; any empty: no mirror)."""
    from pathlib import Path

    from coea.interrupts import pipeline_step
    from coea.stages import config_from_json, record_version, run_sft_stage
    from coea.stages.pco_remote import task_checkpoint_key
    from coea.stages.sft_remote import mirrored_sft

    with pipeline_step():
        cfg = config_from_json(split_config, dsie_config, llm_config, device=device)
        key = task_checkpoint_key(run_id, task_name)
        with mirrored_sft(state_uri, key, Path(model.path), ("novelty",)) as on_checkpoint:
            result = run_sft_stage(cfg, Path(data.path), Path(dsie.path), Path(model.path), which=("novelty",),
                                   on_checkpoint=on_checkpoint)
        record_version(model)
        for name, value in result.metrics().items():
            metrics.log_metric(name, value)
        model.metadata.update({"llm": "novelty", "framework": "transformers", "base_model": cfg.llm.model.base_model})


def sft_relevance(data: Input[Dataset], dsie: Input[Model], split_config: str, dsie_config: str, llm_config: str,
                  model: Output[Model], metrics: Output[Metrics], device: str = "auto",
                  novelty: Input[Model] = None, pco_config: str = "{}", state_uri: str = "", run_id: str = "",
                  task_name: str = ""):
    """SFT of the Relevance LLM on the prepared log's histories and the DSIE groups (``model/relevance/``); with
    ``llm.relevance_init: novelty`` it starts from the trained N-LLM of ``novelty`` (sft_novelty's output, wired
    only when the pipeline is compiled with the setting ``relevance_from_novelty``). ``pco_config`` only tells
    whether the PCO reward reads the R-LLM's score (a chance-level R-LLM is then a warning, not an info line).
    ``state_uri``, ``run_id``, ``task_name``: the training's checkpoints survive a preempted pod, as in
    ``sft_novelty``."""
    from pathlib import Path

    from coea.errors import CoeaInputError
    from coea.interrupts import pipeline_step
    from coea.stages import config_from_json, record_version, run_sft_stage
    from coea.stages.pco_remote import task_checkpoint_key
    from coea.stages.sft_remote import mirrored_sft

    with pipeline_step():
        cfg = config_from_json(split_config, dsie_config, llm_config, pco_config, device=device)
        if novelty is None and cfg.llm.relevance_init == "novelty":
            raise CoeaInputError("llm.relevance_init is novelty but this pipeline's sft-relevance step has no N-LLM "
                                 "input", source="llm_config", option="llm.relevance_init",
                                 fix="compile the pipeline with the deployment setting relevance_from_novelty: true "
                                     "(the SFT steps then run one after the other), or set llm.relevance_init: scratch")
        key = task_checkpoint_key(run_id, task_name)
        with mirrored_sft(state_uri, key, Path(model.path), ("relevance",)) as on_checkpoint:
            result = run_sft_stage(cfg, Path(data.path), Path(dsie.path), Path(model.path), which=("relevance",),
                                   novelty_dir=Path(novelty.path) / "novelty" if novelty is not None else None,
                                   on_checkpoint=on_checkpoint)
        record_version(model)
        for name, value in result.metrics().items():
            metrics.log_metric(name, value)
        model.metadata.update({"llm": "relevance", "framework": "transformers", "base_model": cfg.llm.model.base_model})


def pco_loop(data: Input[Dataset], dsie: Input[Model], novelty: Input[Model], relevance: Input[Model],
             split_config: str, dsie_config: str, llm_config: str, pco_config: str, model: Output[Model],
             metrics: Output[Metrics], curves: Output[HTML], final_novelty: Output[Model],
             final_relevance: Output[Model], device: str = "auto", pco_rounds: int = 0, pco_alpha: float = -1.0,
             new_interactions: bool = False, served: Input[Dataset] = None, state_uri: str = "",
             run_id: str = "", task_name: str = "", eval_config: str = "{}"):
    """PCO rounds (sample, R-LLM score, DPO+KL, re-evaluate, R-LLM refresh) from the given models; per-round
    checkpoints and metrics in ``model/``, the last round's models as ``final_novelty``/``final_relevance`` (the
    ``sft_*`` layout), the last round's figures as metrics, the rounds as an HTML page (inline SVG).
    ``pco_rounds`` > 0 and ``pco_alpha`` >= 0 replace ``pco_config``'s rounds and KL weight. ``new_interactions``
    (set by the pipeline: the recurring run's kept models on a new period): the N-LLM was not trained on this data,
    so ``pco.refresh_novelty`` on auto continues its SFT on each round's window. ``served`` (the recurring
    pipeline's ``load_state``): what the serving store showed each user before this period (``pco.exposure_inject``).
    ``state_uri``, ``run_id`` and ``task_name`` (the same for every retry of this task): each complete round is
    mirrored under ``<state_uri>/checkpoints/<run_id>-<task_name>/``, a retried attempt (a preempted pod) resumes
    after the last mirrored round, and the prefix is deleted when the step succeeds (:mod:`coea.stages.pco_remote`;
    any empty: no mirror). ``eval_config``: the per-round metrics' users (``eval.round_users``, ``judge_users``) and
    long-tail share, as `coea pco` reads them (the step ignored them before session 57)."""
    from pathlib import Path

    from coea.interrupts import pipeline_step
    from coea.stages import (
        UiParameters,
        config_from_json,
        export_round_models,
        record_version,
        rounds_page,
        run_pco_stage,
    )
    from coea.stages.pco_remote import mirrored_rounds, task_checkpoint_key

    with pipeline_step():
        cfg = config_from_json(split_config, dsie_config, eval_config, llm_config, pco_config, device=device,
                               ui=UiParameters(pco_rounds=pco_rounds, pco_alpha=pco_alpha))
        with mirrored_rounds(state_uri, task_checkpoint_key(run_id, task_name), Path(model.path)) as resume:
            result = run_pco_stage(cfg, Path(data.path), Path(dsie.path), [Path(novelty.path), Path(relevance.path)],
                                   Path(model.path), new_interactions=new_interactions, resume=resume,
                                   served=Path(served.path) if served is not None else None)
            export_round_models(result.out_dir, Path(final_novelty.path), Path(final_relevance.path))
            record_version(model, curves, final_novelty, final_relevance)
            for name, value in result.metrics().items():
                metrics.log_metric(name, value)
            Path(curves.path).write_text(rounds_page(result.rounds, "PCO rounds"), encoding="utf-8")
            model.metadata.update({"rounds": cfg.pco.rounds, "alpha": cfg.pco.dpo.alpha})


def evaluate(data: Input[Dataset], dsie: Input[Model], split_config: str, dsie_config: str, eval_config: str,
             llm_config: str, pco_config: str, metrics: Output[Metrics], table: Output[Markdown],
             html_report: Output[HTML], report: Output[Dataset], novelty: Input[Model] = None,
             relevance: Input[Model] = None, pco: Input[Model] = None, device: str = "auto", pco_rounds: int = 0,
             pco_alpha: float = -1.0):
    """Fit every method on histories, score on futures, with exactly the artifacts the methods need; the report
    dir (``report``), its table as Markdown and its page (metrics, inline SVG chart) as HTML. ``pco_rounds`` and
    ``pco_alpha`` are merged as in ``pco_loop``, so the saved ``config.json`` is the one PCO ran with."""
    import shutil
    from pathlib import Path

    from coea.device import cpu_step_device
    from coea.interrupts import pipeline_step
    from coea.stages import ArtifactDirs, UiParameters, config_from_json, record_version, run_evaluate_stage

    with pipeline_step():
        cfg = config_from_json(split_config, dsie_config, eval_config, llm_config, pco_config,
                               device=cpu_step_device(device),
                               ui=UiParameters(pco_rounds=pco_rounds, pco_alpha=pco_alpha))
        dirs = ArtifactDirs(dsie=Path(dsie.path),
                            llm=tuple(Path(m.path) for m in (novelty, relevance) if m is not None),
                            pco=Path(pco.path) if pco is not None else None)
        result = run_evaluate_stage(cfg, Path(data.path), Path(report.path), dirs)
        record_version(table, html_report, report)
        for name, value in result.main.items():
            metrics.log_metric(name, value)
        shutil.copyfile(result.paths["metrics_md"], table.path)
        shutil.copyfile(result.paths["report_html"], html_report.path)


def recommend(data: Input[Dataset], dsie: Input[Model], split_config: str, dsie_config: str, eval_config: str,
              llm_config: str, pco_config: str, method: str, k: int, recommendations: Output[Dataset],
              seen: Output[Dataset], novelty: Input[Model] = None, relevance: Input[Model] = None,
              pco: Input[Model] = None, seen_before: Input[Dataset] = None, served: Input[Dataset] = None,
              device: str = "auto"):
    """Top-k categories for every user by ``method`` (e.g. coea+x), fitted on all events (nothing held out). The
    recurring pipeline gives the state's ``seen_before`` (each user's categories of earlier periods, excluded by
    ``+x`` too) and ``served`` (users without an event in the period keep these lists); ``seen``: the pairs the
    next period reads."""
    from pathlib import Path

    from coea.device import cpu_step_device
    from coea.interrupts import pipeline_step
    from coea.stages import ArtifactDirs, config_from_json, record_version, run_recommend

    with pipeline_step():
        cfg = config_from_json(split_config, dsie_config, eval_config, llm_config, pco_config,
                               device=cpu_step_device(device))
        dirs = ArtifactDirs(dsie=Path(dsie.path),
                            llm=tuple(Path(m.path) for m in (novelty, relevance) if m is not None),
                            pco=Path(pco.path) if pco is not None else None)
        result = run_recommend(cfg, Path(data.path), dirs, method, int(k), Path(recommendations.path),
                               seen=Path(seen_before.path) if seen_before is not None else None,
                               served=Path(served.path) if served is not None else None, seen_out=Path(seen.path))
        record_version(recommendations, seen)
        recommendations.metadata.update({"method": result.method, "k": result.k, "users": result.n_users,
                                         "rows": result.n_rows, "short_users": result.short_users,
                                         "kept_users": result.kept_users})


def monitor_drift(reference: Input[Dataset], current: Input[Dataset], dsie: Input[Model], drift_config: str,
                  split_config: str, threshold: float, report: Output[HTML], summary: Output[Dataset],
                  metrics: Output[Metrics]) -> NamedTuple("DriftOutputs", [("drift_share", float), ("drifted", bool)]):
    """Evidently drift of per-user behaviour, reference window vs current, on their histories under the run's split
    (never the future evaluate scores): the Evidently page (``report``) and drift.json (``summary``: per feature)."""
    import shutil
    import tempfile
    from pathlib import Path

    from coea.interrupts import pipeline_step
    from coea.stages import config_from_json, drift_config_from_json, record_version, run_monitor_drift

    with pipeline_step():
        cfg, split = drift_config_from_json(drift_config, threshold=threshold), config_from_json(split_config).split
        with tempfile.TemporaryDirectory() as tmp:
            result = run_monitor_drift(cfg, *(Path(a.path) for a in (reference, current, dsie)), Path(tmp), split=split)
            shutil.copyfile(result.html_path, report.path)
            shutil.copyfile(result.json_path, summary.path)
        record_version(report, summary)
        metrics.log_metric("drift_share", result.drift_share)
        metrics.log_metric("drifted_columns", float(len(result.drifted_columns)))
        report.metadata.update({"drifted_columns": result.drifted_columns, "threshold": cfg.threshold})
        return (result.drift_share, result.drifted)


def load_state(state_uri: str, reference: Output[Dataset], dsie: Output[Model], served: Output[Dataset],
               seen: Output[Dataset]) -> str:
    """The active snapshot under ``state_uri``: the reference window and the groups fitted on it; what the
    serving store shows now (``served``: every user's active top-K as a recommendations parquet, empty before the
    first publish), which the PCO step reads as the users' exposure during the new period and the recommend step
    keeps for the users without an event in it; and ``seen``, each user's categories of the periods so far.
    Returns the snapshot id, which the save step expects to find still active (``expected_snapshot``)."""
    from pathlib import Path

    from coea.interrupts import pipeline_step
    from coea.stages import record_version
    from coea.state import run_load_seen, run_load_served, run_load_state

    with pipeline_step():
        record_version(reference, dsie, served, seen)
        snap = run_load_state(state_uri, Path(reference.path), Path(dsie.path))
        reference.metadata.update({"snapshot": snap.snapshot, "created_at": snap.created_at})
        dsie.metadata.update({"snapshot": snap.snapshot})
        served.metadata.update({"users": run_load_served(state_uri, Path(served.path))})
        seen.metadata.update({"pairs": run_load_seen(state_uri, Path(seen.path), Path(reference.path))})
        return snap.snapshot


def save_state(state_uri: str, data: Input[Dataset], dsie: Input[Model], novelty: Input[Model],
               relevance: Input[Model], expected_snapshot: str = "", expected_models: str = "",
               run_id: str = "") -> str:
    """Make ``data`` + ``dsie`` (the groups) and the models tuned on them (``sft_*`` layout) the active state
    under ``state_uri``, switched together by one pointer write that records ``data`` as the period and ``run_id``
    (the KFP run) as its committer; refused when the pointer no longer names ``expected_snapshot``/
    ``expected_models`` (what load_state/load_models loaded; "" = not checked: the training pipeline) unless it is
    this run's own earlier attempt's commit. Returns the models version id (what the export checks)."""
    from pathlib import Path

    from coea.interrupts import pipeline_step
    from coea.state import run_save_state

    with pipeline_step():
        return run_save_state(state_uri, Path(data.path), Path(dsie.path), Path(novelty.path), Path(relevance.path),
                              expected_snapshot=expected_snapshot, expected_models=expected_models,
                              run_id=run_id).models


def load_models(state_uri: str, data: Input[Dataset], novelty: Output[Model], relevance: Output[Model]) -> str:
    """The active models under ``state_uri``: the N-LLM (``novelty/novelty/``) and the R-LLM
    (``relevance/relevance/``), the layout of the ``sft_*`` steps' outputs; refused when the state already holds
    the update from ``data`` (the new period). Returns the models version id (the save step's ``expected_models``)."""
    from pathlib import Path

    from coea.interrupts import pipeline_step
    from coea.stages import record_version
    from coea.state import run_load_models

    with pipeline_step():
        record_version(novelty, relevance)
        version = run_load_models(state_uri, Path(novelty.path), Path(relevance.path), data_dir=Path(data.path))
        novelty.metadata.update({"llm": "novelty", "models_version": version.snapshot,
                                 "created_at": version.created_at})
        relevance.metadata.update({"llm": "relevance", "models_version": version.snapshot,
                                   "created_at": version.created_at})
        return version.snapshot


def save_models(state_uri: str, data: Input[Dataset], novelty: Input[Model], relevance: Input[Model],
                expected_snapshot: str = "", expected_models: str = "", run_id: str = "") -> str:
    """Make the N-LLM in ``novelty`` and the R-LLM in ``relevance`` (``sft_*`` layout) the active models under
    ``state_uri``, beside the active groups (the no-drift branch), recording ``data`` (the period they were updated
    on) as the period; ``expected_*`` and ``run_id`` as in ``save_state``. Returns the models version id."""
    from pathlib import Path

    from coea.interrupts import pipeline_step
    from coea.state import run_save_models

    with pipeline_step():
        return run_save_models(state_uri, Path(novelty.path), Path(relevance.path), data_dir=Path(data.path),
                               expected_snapshot=expected_snapshot, expected_models=expected_models,
                               run_id=run_id).snapshot


def export_recommendations(recommendations: Input[Dataset], seen: Input[Dataset], state_uri: str, gcs_uri: str,
                           kv_store: Output[Artifact], metrics: Output[Metrics], committed_models: str = "") -> str:
    """Publish to the state's SQLite KV store (a copy becomes ``kv_store``); export to ``gcs_uri`` if given;
    ``seen`` (the recommend step's) becomes the state's record of each user's categories. Refused, before anything
    is written, when the state no longer names ``committed_models`` (the save step's models version; "" = not
    checked): another run committed after this one, and its lists stay."""
    from pathlib import Path

    from coea.interrupts import pipeline_step
    from coea.stages import record_version
    from coea.state import check_models_active, run_export
    from coea.store import PublishConfig

    with pipeline_step():
        if committed_models:
            check_models_active(state_uri, committed_models)
        record_version(kv_store)
        result = run_export(PublishConfig(metadata={"recommendations": recommendations.uri}),
                            Path(recommendations.path), state_uri, Path(kv_store.path), gcs_uri=gcs_uri or None,
                            seen=Path(seen.path))
        metrics.log_metric("users", float(result.publish.n_users))
        metrics.log_metric("rows", float(result.publish.n_rows))
        kv_store.metadata.update({"version": result.publish.version, "gcs_manifest": result.gcs.manifest_uri
                                  if result.gcs else ""})
        return result.publish.version


# every component, in pipeline order; components.build.Components has one field per entry, named after it
STAGES = (prepare_data, dsie_group, sft_novelty, sft_relevance, pco_loop, build_profiles, evaluate, recommend,
          monitor_drift, load_state, save_state, load_models, save_models, export_recommendations)
