"""The CoEA Kubeflow pipelines (KFP v2): ``coea_training`` and ``coea_recurring``.

``coea_training``: prepare_data -> dsie_group (GPU step); sft_novelty, sft_relevance (GPU steps, side by side; with
the setting ``relevance_from_novelty`` one after the other, the R-LLM's SFT starting from the trained N-LLM with
``llm.relevance_init: novelty``) -> pco_loop (GPU step: PCO rounds) ->
save_state (the data + groups and the last round's N-LLM and R-LLM become the state, one pointer write) and
evaluate (LLM methods use the trained LLMs, ``coea`` the last PCO round); recommend (``coea_seq+x``) -> export (after
the state is saved).
``coea_recurring``: prepare_data (the new period), load_state and load_models -> monitor_drift against the reference
window (both windows' histories under the run's split: never the future the period's evaluate step scores) ->
``dsl.If(drift_share >= drift_threshold)``: dsie_group (regroup), then sft_novelty and sft_relevance (as in
``coea_training``) on the period with the new groups (new groups are new CSID codes: the loaded models' code
tokens would name other groups); ``dsl.Else``: keep the groups and rebuild their profiles (build_profiles), keep the
loaded models -> in either branch the PCO update (pco_loop, GPU step, from the branch's models on the period's data
with the branch's groups) -> save_state (If: new groups and new models switch together) or save_models (Else: new
models beside the kept groups), and evaluate (``nllm_sft`` & co. use the branch's models: the loaded ones, or those
the If branch trained again; ``coea`` this period's last PCO round) -> recommend (``coea_seq+x``; with the state's
seen categories and served lists) -> export. The recurring save steps commit only onto the snapshot and models
that load_state and load_models returned (``expected_snapshot``/``expected_models``), each export publishes only
while the models its save committed are active (``committed_models``), and load_models refuses a period whose
update the state already holds (:mod:`coea.state`).

kfp.local 2.17 cannot merge artifacts of two branches (``dsl.OneOf`` of artifacts), so each branch has its own
pco_loop/save/evaluate/recommend/export tasks (one helper adds them).

Pipeline parameters: the run config as JSON objects of its sections (``coea.stages.pipeline_arguments``),
``state_uri`` (local directory or ``gs://``), ``rec_method``/``rec_k`` for the served list and
``gcs_export_uri`` ("" = no GCS export). What a user changes in the run form is a typed parameter: ``rec_k``,
``drift_threshold``, ``device``, and ``data_spec``, ``pco_rounds``, ``pco_alpha``, whose defaults keep the
JSON configs' values and which the steps merge into them (``coea.stages.with_ui_parameters``, one function).
Each parameter has a description in the compiled spec (:data:`PARAMETER_HELP`, shown in the Kubeflow UI's run
form); prepare_data, the first step, receives and checks all of them (``coea.stages.run_parameters``). Build
them for a deployment with :func:`build_pipelines` (image, GPU settings, ``pipeline_root`` ->
``defaultPipelineRoot``); compile them with :func:`pipelines.compile.compile_pipelines`.
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Model
from kfp.dsl.pipeline_channel import PipelineChannel

from coea.config import SERVED_METHOD
from coea.stages.params import UiParameters
from components.build import Components, build_components
from components.resources import apply_gpu, apply_io, apply_resources, cheap_task_checks, mount_models
from components.settings import DeploymentSettings, StageClass

TRAINING = "coea-training"
RECURRING = "coea-recurring"
TRAINING_METHOD = SERVED_METHOD  # served by coea_training: the N-LLM after PCO with the DSIE encoder, seen excluded
DEFAULT_METHOD = TRAINING_METHOD  # served by coea_recurring: the N-LLM after this period's PCO update
PIPELINE_DESCRIPTIONS = {
    TRAINING: "CoEA: data -> DSIE groups -> SFT of both LLMs -> PCO rounds -> evaluation -> top-K categories to the "
              "KV store; writes the state the recurring pipeline starts from.",
    RECURRING: "CoEA each period: drift check against the reference window; regroup (DSIE) and re-SFT the LLMs only "
               "when the drift share reaches the threshold; PCO update of the LLMs; serve.",
}
_JSON = " as a JSON object of config sections, the run-config YAML's shape ({} = the defaults)"
# the description of every pipeline parameter, compiled into root.inputDefinitions (the Kubeflow UI's run form)
PARAMETER_HELP = {
    "data_config": 'data source: {"data": {"spec": "csv:gs://BUCKET/log.csv"}, "synthetic": {...}}' + _JSON
                   + '; a folder of dt=YYYY-MM-DD/ partitions ("csv:gs://BUCKET/events/", "window_days": N) is read '
                     "up to the run's scheduled time unless data.as_of is set",
    "split_config": "leakage-free split (n_future, n_short, min_history, min_gap, short_window, validation)" + _JSON,
    "dsie_config": "DSIE: encoder, RQ-VAE codebooks, grouping, profiles" + _JSON,
    "eval_config": "evaluation: methods, K values, bootstrap; PCO's per-round metric users" + _JSON,
    "llm_config": "the two LLMs and their SFT (base_model, sizes, epochs, batch)" + _JSON,
    "pco_config": "PCO: rounds, candidates, DPO+KL alpha, reward" + _JSON,
    "drift_config": "drift check: DriftConfig fields (stattest, stattest_threshold, top_categories, min_users)" + _JSON,
    "drift_threshold": "regroup (re-run DSIE and the SFT of both LLMs) when the drift share is >= this, in (0, 1]",
    "state_uri": "where the state lives: gs://BUCKET/PREFIX, or a directory on the cache volume",
    "rec_method": "the method whose top-K categories are served, default coea_seq+x (the N-LLM after PCO with the "
                  "DSIE encoder beside it, seen categories excluded)",
    "rec_k": "categories served per user (K)",
    "gcs_export_uri": 'also export the recommendations as shards under this gs:// URI ("" = no export)',
    "device": "auto | cpu | cuda | cuda:N for every model (auto = the GPU when the step's pod has one; the CPU steps "
              "evaluate and recommend read cuda as auto)",
    "data_spec": 'the interaction log, e.g. parquet:gs://BUCKET/events/ (dt=YYYY-MM-DD/ partitions), '
                 'csv:gs://BUCKET/log.csv, or synthetic (generated demo data); replaces data_config\'s data.spec; '
                 '"" = data_config\'s data.spec, and the run fails when neither names the data',
    "pco_rounds": "PCO rounds (sample, score, DPO+KL, R-LLM refresh), >= 1 replaces pco_config's pco.rounds; "
                  "0 does NOT skip PCO: it keeps pco_config's rounds (3 by default)",
    "pco_alpha": "PCO's KL weight alpha: >= 0 replaces pco_config's pco.dpo.alpha (0 = plain DPO); any negative "
                 "value keeps pco_config's alpha (0.4 by default)",
}
# a GPU step's checkpoints in the state store: the same for every retry of one task, distinct between tasks and runs
# (coea.stages.pco_remote, coea.stages.sft_remote). Two inputs, each ONE placeholder: a KFP backend resolves a
# placeholder only when it is an input's whole value; a string holding two reaches the pod literally.
TASK_KEY = {"run_id": dsl.PIPELINE_JOB_ID_PLACEHOLDER, "task_name": dsl.PIPELINE_TASK_NAME_PLACEHOLDER}
UI = UiParameters()  # the typed parameters' defaults: "keep the JSON config's value"


class TrainingOutputs(NamedTuple):
    data: Dataset  # the prepared data dir
    report: Dataset  # the evaluation dir: metrics.json, metrics.md, plot PNG and HTML
    dsie: Model  # the DSIE dir
    novelty: Model  # the N-LLM dir (novelty/, sft_metrics_novelty.json, llm_config.json)
    relevance: Model  # the R-LLM dir (relevance/, ...)
    pco: Model  # the PCO dir (rounds/round_NNN/, pco_state.json, pco_metrics.json/.png)
    recommendations: Dataset  # user_id, rank, category, score
    kv_store: Artifact  # a copy of the SQLite KV store after the publish


@dataclass(frozen=True)
class Pipelines:
    """Both pipelines built for one deployment."""

    training: Any  # kfp GraphComponent
    recurring: Any
    settings: DeploymentSettings


# every run parameter prepare_data checks before anything expensive runs (coea.stages.run_parameters)
_CHECKED = ("state_uri", "split_config", "dsie_config", "eval_config", "llm_config", "pco_config", "device",
            "pco_rounds", "pco_alpha", "rec_method", "rec_k", "gcs_export_uri")


def _prepare(c: Components, p: dict[str, Any]) -> dsl.PipelineTask:
    """prepare_data (``data_config`` with ``data_spec`` over it) with the run's scheduled time as the as-of time
    of a partitioned log: the backend resolves the placeholder per run (a recurring run's scheduled time, a
    one-off run's creation time), so each run of a schedule reads its own period (``coea.data.partitions``).
    It gets every other run parameter too and checks them all first (``coea.stages.run_parameters``): a bad value
    fails the run here, before any GPU step; the recurring pipeline's drift parameters with ``recurring``."""
    drift = {k: p[k] for k in ("drift_config", "drift_threshold") if k in p}
    return c.prepare_data(data_config=p["data_config"], data_spec=p["data_spec"],
                          scheduled_time=dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER,
                          **{k: p[k] for k in _CHECKED}, **drift, recurring=bool(drift))


def _serve(c: Components, settings: DeploymentSettings, data: PipelineChannel, dsie: PipelineChannel,
           p: dict[str, Any], llms: dict[str, PipelineChannel] | None = None,
           state: dsl.PipelineTask | None = None,
           committed: PipelineChannel | None = None) -> dict[str, dsl.PipelineTask]:
    """evaluate, recommend and export on one prepared log, one DSIE dir and (optionally) the LLM and PCO dirs;
    ``state``: the recurring pipeline's load_state task (its served lists and seen categories go to recommend);
    ``committed``: the models version the save step committed, which the export checks is still active."""
    configs = {k: p[k] for k in ("split_config", "dsie_config", "eval_config", "llm_config", "pco_config", "device")}
    llms = llms or {}
    evaluate = c.evaluate(data=data, dsie=dsie, **llms, **configs, pco_rounds=p["pco_rounds"],
                          pco_alpha=p["pco_alpha"]).set_display_name("evaluate methods")
    apply_resources(mount_models(evaluate, settings), settings, StageClass.COMPUTE)
    before = {} if state is None else {"seen_before": state.outputs["seen"], "served": state.outputs["served"]}
    recommend = c.recommend(data=data, dsie=dsie, method=p["rec_method"], k=p["rec_k"], **llms, **configs, **before)
    apply_resources(mount_models(recommend.set_display_name("recommend top-K"), settings), settings,
                    StageClass.COMPUTE)
    export = c.export_recommendations(recommendations=recommend.outputs["recommendations"],
                                      seen=recommend.outputs["seen"], state_uri=p["state_uri"],
                                      gcs_uri=p["gcs_export_uri"],
                                      **({} if committed is None else {"committed_models": committed}))
    apply_io(export.set_display_name("export recommendations"), settings)
    return {"evaluate": evaluate, "recommend": recommend, "export": export}


def _dsie(c: Components, settings: DeploymentSettings, data: PipelineChannel, p: dict[str, Any]) -> dsl.PipelineTask:
    task = c.dsie_group(data=data, split_config=p["split_config"], dsie_config=p["dsie_config"], device=p["device"])
    return apply_gpu(task.set_display_name("DSIE groups"), settings)


def _sft(c: Components, settings: DeploymentSettings, data: PipelineChannel, dsie: PipelineChannel,
         p: dict[str, Any]) -> dict[str, PipelineChannel]:
    """SFT of the N-LLM and of the R-LLM (two GPU steps, side by side; with the setting ``relevance_from_novelty``
    the R-LLM's step reads the trained N-LLM, for ``llm.relevance_init: novelty``, and runs after the N-LLM's);
    returns their model dirs by input name."""
    configs = {k: p[k] for k in ("split_config", "dsie_config", "llm_config", "device")}
    # each training's last checkpoint mirrored under state_uri, keyed by run and task: a retry resumes from it
    # (coea.stages.sft_remote)
    configs |= {"state_uri": p["state_uri"], **TASK_KEY}
    novelty = apply_gpu(c.sft_novelty(data=data, dsie=dsie, **configs).set_display_name("SFT novelty LLM"), settings)
    warm = {"novelty": novelty.outputs["model"]} if settings.relevance_from_novelty else {}
    relevance = apply_gpu(c.sft_relevance(data=data, dsie=dsie, **warm, **configs, pco_config=p["pco_config"])
                          .set_display_name("SFT relevance LLM"), settings)
    return {"novelty": novelty.outputs["model"], "relevance": relevance.outputs["model"]}


def _pco_and_save(c: Components, settings: DeploymentSettings, data: PipelineChannel, dsie: PipelineChannel,
                  llms: dict[str, PipelineChannel], p: dict[str, Any], *, new_groups: bool,
                  served: PipelineChannel | None = None,
                  loaded: dict[str, PipelineChannel] | None = None) -> tuple[dsl.PipelineTask, dsl.PipelineTask]:
    """The PCO rounds from the given models (a GPU step), then the state commit: with ``new_groups`` the data +
    DSIE snapshot AND the last round's models in one pointer write (``save_state``: groups and the models tuned
    on them switch together), otherwise the models beside the kept groups (``save_models``). Returns the PCO
    task (``model``: its dir, the ``coea`` models) and the save task. ``served``: the state's served lists (the
    recurring pipeline), the users' exposure during the period (``pco.exposure_inject``). ``loaded``: the ids
    load_state and load_models returned (``expected_snapshot``, ``expected_models``): the save refuses to commit
    when another run committed since (the recurring pipeline; the training pipeline re-seeds the state)."""
    configs = {k: p[k] for k in ("split_config", "dsie_config", "eval_config", "llm_config", "pco_config", "device",
                                 "pco_rounds", "pco_alpha")}  # eval_config: the per-round metrics' users
    # kept models on a new period read interactions they were not trained on (pco.refresh_novelty on auto)
    exposure = {} if served is None else {"served": served}
    # each complete round mirrored under state_uri, keyed by run and task (the same for every retry of this task):
    # a retried attempt resumes after the last mirrored round (coea.stages.pco_remote)
    task = apply_gpu(c.pco_loop(data=data, dsie=dsie, **llms, **configs, new_interactions=not new_groups, **exposure,
                                state_uri=p["state_uri"], **TASK_KEY)
                     .set_display_name("PCO rounds"), settings)
    final = {"novelty": task.outputs["final_novelty"], "relevance": task.outputs["final_relevance"]}
    loaded = loaded or {}
    if new_groups:
        save = c.save_state(state_uri=p["state_uri"], data=data, dsie=dsie, **final, **loaded,
                            run_id=TASK_KEY["run_id"])
    else:  # data: the period the models were updated on, recorded in the pointer
        save = c.save_models(state_uri=p["state_uri"], data=data, **final, **loaded, run_id=TASK_KEY["run_id"])
    save.set_display_name("save state" if new_groups else "save models")
    apply_io(save, settings)
    return task, save


def _update_and_serve(c: Components, settings: DeploymentSettings, data: PipelineChannel, dsie: PipelineChannel,
                      llms: dict[str, PipelineChannel], p: dict[str, Any], *, new_groups: bool,
                      state: dsl.PipelineTask | None = None,
                      models: dsl.PipelineTask | None = None) -> dict[str, dsl.PipelineTask]:
    """A PCO run and its state commit (see :func:`_pco_and_save`), then evaluate/recommend/export with the given
    models and the PCO dir; the store is published after the state commit, and only while the models it committed
    are active. ``state`` and ``models``: the recurring pipeline's load_state and load_models tasks (the served
    lists are the PCO step's exposure and, with the seen categories, recommend's input; the ids they loaded are
    what the save expects to find). Returns the tasks by role."""
    loaded = None if state is None or models is None else {"expected_snapshot": state.outputs["Output"],
                                                            "expected_models": models.outputs["Output"]}
    pco, save = _pco_and_save(c, settings, data, dsie, llms, p, new_groups=new_groups,
                              served=None if state is None else state.outputs["served"], loaded=loaded)
    served = _serve(c, settings, data, dsie, p, {**llms, "pco": pco.outputs["model"]}, state, save.output)
    served["export"].after(save)  # the state first, then the store version that came from it
    return {**served, "pco": pco, "save": save}


def _as_pipeline(fn: Callable, name: str, description: str, settings: DeploymentSettings):
    """``dsl.pipeline`` with the description, the deployment's pipeline root (``defaultPipelineRoot``) and an
    ``Args:`` docstring built from :data:`PARAMETER_HELP`, which kfp compiles into each parameter's description."""
    params = inspect.signature(fn).parameters
    fn.__doc__ = f"{description}\n\nArgs:\n" + "".join(f"    {n}: {PARAMETER_HELP[n]}\n" for n in params)
    return dsl.pipeline(fn, name=name, description=description, pipeline_root=settings.pipeline_root or None)


def _training(c: Components, settings: DeploymentSettings):
    def coea_training(data_spec: str = UI.data_spec, pco_rounds: int = UI.pco_rounds,
                      pco_alpha: float = UI.pco_alpha,
                      data_config: str = "{}", split_config: str = "{}", dsie_config: str = "{}",
                      eval_config: str = "{}", llm_config: str = "{}", pco_config: str = "{}",
                      state_uri: str = settings.state_uri,
                      rec_method: str = TRAINING_METHOD, rec_k: int = 10,
                      gcs_export_uri: str = "", device: str = "auto") -> TrainingOutputs:
        p = locals()  # the pipeline parameters by name
        prep = apply_io(_prepare(c, p).set_display_name("prepare data"), settings)
        data = prep.outputs["data"]
        dsie = _dsie(c, settings, data, p)
        llms = _sft(c, settings, data, dsie.outputs["dsie"], p)
        served = _update_and_serve(c, settings, data, dsie.outputs["dsie"], llms, p, new_groups=True)
        pco = served["pco"].outputs["model"]
        return TrainingOutputs(data=data, report=served["evaluate"].outputs["report"], dsie=dsie.outputs["dsie"],
                               **llms, pco=pco, recommendations=served["recommend"].outputs["recommendations"],
                               kv_store=served["export"].outputs["kv_store"])

    return _as_pipeline(coea_training, TRAINING, PIPELINE_DESCRIPTIONS[TRAINING], settings)


def _recurring(c: Components, settings: DeploymentSettings):
    def coea_recurring(data_spec: str = UI.data_spec, pco_rounds: int = UI.pco_rounds,
                       pco_alpha: float = UI.pco_alpha,
                       data_config: str = "{}", split_config: str = "{}", dsie_config: str = "{}",
                       eval_config: str = "{}", llm_config: str = "{}", pco_config: str = "{}",
                       drift_config: str = "{}",
                       drift_threshold: float = 0.5,
                       state_uri: str = settings.state_uri, rec_method: str = DEFAULT_METHOD, rec_k: int = 10,
                       gcs_export_uri: str = "", device: str = "auto"):
        p = locals()  # the pipeline parameters by name
        prep = apply_io(_prepare(c, p).set_display_name("prepare data (new period)"), settings)
        data = prep.outputs["data"]
        state = apply_io(c.load_state(state_uri=state_uri).set_display_name("load state"), settings)
        # load_models reads the period: a state that already holds its update is refused (PCO would run twice)
        models = apply_io(c.load_models(state_uri=state_uri, data=data).set_display_name("load models"), settings)
        if settings.state_on_cache_volume:  # one ReadWriteOnce volume: its three readers one after the other
            models.after(state.after(prep))
        llms = {"novelty": models.outputs["novelty"], "relevance": models.outputs["relevance"]}
        # both windows' histories under the run's split (what DSIE groups), never the future evaluate scores
        drift = c.monitor_drift(reference=state.outputs["reference"], current=data, dsie=state.outputs["dsie"],
                                drift_config=drift_config, split_config=split_config, threshold=drift_threshold)
        apply_resources(drift.set_display_name("monitor drift"), settings, StageClass.COMPUTE)
        drift.set_caching_options(False)
        with dsl.If(drift.outputs["drift_share"] >= drift_threshold, name="drift: regroup"):
            regroup = _dsie(c, settings, data, p)
            # new groups = new CSID codes: the loaded models' code tokens would name other groups, so both LLMs
            # get their SFT again on the period with the new groups, then the PCO rounds
            refit = _sft(c, settings, data, regroup.outputs["dsie"], p)
            _update_and_serve(c, settings, data, regroup.outputs["dsie"], refit, p, new_groups=True,
                              state=state, models=models)
        with dsl.Else(name="no drift: keep groups"):
            keep = c.build_profiles(data=data, dsie_in=state.outputs["dsie"], split_config=split_config,
                                    dsie_config=dsie_config)
            apply_resources(mount_models(keep.set_display_name("refresh profiles"), settings), settings,
                            StageClass.COMPUTE)  # the llm profiler loads a local model
            _update_and_serve(c, settings, data, keep.outputs["dsie"], llms, p, new_groups=False,
                              state=state, models=models)

    return _as_pipeline(coea_recurring, RECURRING, PIPELINE_DESCRIPTIONS[RECURRING], settings)


def build_pipelines(settings: DeploymentSettings | None = None) -> Pipelines:
    """``coea_training`` and ``coea_recurring`` with this deployment's image, GPU and volume settings."""
    settings = settings or DeploymentSettings()
    c = build_components(settings)
    with cheap_task_checks():
        return Pipelines(_training(c, settings), _recurring(c, settings), settings)

