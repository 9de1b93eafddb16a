"""Compile both pipelines and read the IR YAML: GPU stage resources and scheduling, caching, retries, image,
the drift condition; settings from the k8s overlays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kfp import dsl

from coea.config import SERVED_METHOD
from components.settings import DeploymentSettings
from pipelines.definitions import RECURRING, TRAINING
from tests.helpers import REPO
from tests.pipeline.compiled_spec import compile_specs as _compile
from tests.pipeline.compiled_spec import executor_tasks as _tasks
from tests.pipeline.compiled_spec import executors as _executors
from tests.pipeline.compiled_spec import k8s_executors as _k8s
from tests.pipeline.compiled_spec import may_run_together, read_spec

K8S = REPO / "k8s"
IO_TASKS = {"prepare-data", "load-state", "save-state", "load-models", "save-models", "export-recommendations"}
GPU_EXECUTORS = {TRAINING: {"exec-dsie-group", "exec-sft-novelty", "exec-sft-relevance", "exec-pco-loop"},
                 RECURRING: {"exec-dsie-group", "exec-sft-novelty", "exec-sft-relevance",  # re-SFT on regroup
                             "exec-pco-loop", "exec-pco-loop-2"}}  # PCO in both branches


@pytest.fixture(scope="module")
def specs(default_compiled: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Both pipelines of the session's fresh compile with the default settings, read by ``read_spec``."""
    return {name: read_spec(default_compiled["pipelines"] / f"{name.replace('-', '_')}.yaml")
            for name in (TRAINING, RECURRING)}


def test_both_pipelines_compile(specs: dict[str, dict[str, Any]]) -> None:
    assert specs[TRAINING]["pipelineInfo"]["name"] == TRAINING
    assert set(_tasks(specs[TRAINING])) == {"prepare-data", "dsie-group", "sft-novelty", "sft-relevance", "pco-loop",
                                            "save-state", "evaluate", "recommend", "export-recommendations"}
    assert {"load-state", "load-models", "monitor-drift", "dsie-group", "build-profiles", "pco-loop", "pco-loop-2",
            "save-state", "save-models", "evaluate", "evaluate-2"} <= set(_tasks(specs[RECURRING]))


@pytest.mark.parametrize("name", [TRAINING, RECURRING])
def test_gpu_stage_resources_selector_toleration(specs: dict[str, dict[str, Any]], name: str) -> None:
    spec = specs[name]
    for executor in GPU_EXECUTORS[name]:  # DSIE and, in training, both SFT steps and PCO
        resources = _executors(spec)[executor]["container"]["resources"]
        assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu", executor
        assert resources["accelerator"]["resourceCount"] == "1"
        assert (resources["resourceCpuRequest"], resources["resourceMemoryRequest"]) == ("4", "16Gi")
        assert (resources["resourceCpuLimit"], resources["resourceMemoryLimit"]) == ("8", "32Gi")
        k8s = _k8s(spec)[executor]
        # no node selector by default: the GPU request places the pod (GKE's GPU nodes carry no nvidia.com/gpu.present)
        assert "nodeSelector" not in k8s, executor
        assert k8s["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        # an emptyDir cache, never the ReadWriteOnce PVC (the two SFT steps run side by side on two nodes)
        assert k8s["emptyDirMounts"] == [{"mountPath": "/cache", "sizeLimit": "50Gi", "volumeName": "coea-gpu-cache"}]
        assert "pvcMount" not in k8s and k8s["activeDeadlineSeconds"] == str(6 * 3600)
    # no other step asks for a GPU or lands on the GPU pool
    for executor, body in _executors(spec).items():
        if executor not in GPU_EXECUTORS[name]:
            assert "accelerator" not in body["container"].get("resources", {}), executor
    for executor, body in _k8s(spec).items():
        if executor not in GPU_EXECUTORS[name]:
            assert "nodeSelector" not in body and "tolerations" not in body, executor


def test_training_feeds_both_llms_to_evaluate_and_recommend(specs: dict[str, dict[str, Any]]) -> None:
    tasks = _tasks(specs[TRAINING])
    for name in ("evaluate", "recommend", "pco-loop"):
        artifacts = tasks[name]["inputs"]["artifacts"]
        assert artifacts["novelty"]["taskOutputArtifact"] == {"producerTask": "sft-novelty", "outputArtifactKey":
                                                              "model"}
        assert artifacts["relevance"]["taskOutputArtifact"]["producerTask"] == "sft-relevance"
    for name in ("evaluate", "recommend"):  # the coea method reads the last PCO round
        assert tasks[name]["inputs"]["artifacts"]["pco"]["taskOutputArtifact"]["producerTask"] == "pco-loop"
    for name in ("sft-novelty", "sft-relevance"):
        assert tasks[name]["inputs"]["artifacts"]["dsie"]["taskOutputArtifact"]["producerTask"] == "dsie-group"
    # the default settings: the R-LLM's SFT starts from scratch and does not wait for the N-LLM's
    assert "novelty" not in tasks["sft-relevance"]["inputs"]["artifacts"]
    # the training run's PCO replays the history its SFT just fit: pco.refresh_novelty's auto stays off
    assert tasks["pco-loop"]["inputs"]["parameters"]["new_interactions"]["runtimeValue"]["constant"] is False
    assert "served" not in tasks["pco-loop"]["inputs"]["artifacts"]  # nothing was served before a training run
    params = specs[TRAINING]["root"]["inputDefinitions"]["parameters"]
    assert params["rec_method"]["defaultValue"] == SERVED_METHOD and "llm_config" in params and "pco_config" in params
    save = tasks["save-state"]["inputs"]["artifacts"]  # groups + the last PCO round's models, saved together
    assert save["novelty"]["taskOutputArtifact"] == {"producerTask": "pco-loop", "outputArtifactKey": "final_novelty"}
    assert save["relevance"]["taskOutputArtifact"]["outputArtifactKey"] == "final_relevance"
    assert save["dsie"]["taskOutputArtifact"]["producerTask"] == "dsie-group"
    assert "save-state" in tasks["export-recommendations"]["dependentTasks"]  # the store after the state


TYPED = ("data_spec", "pco_rounds", "pco_alpha")
# the steps that merge typed parameters into their config; prepare-data checks every run parameter first
MERGED_BY = {"prepare-data": {"data_spec", "pco_rounds", "pco_alpha"}, "pco-loop": {"pco_rounds", "pco_alpha"},
             "evaluate": {"pco_rounds", "pco_alpha"}}


@pytest.mark.parametrize("name", [TRAINING, RECURRING])
def test_typed_parameters_reach_exactly_the_steps_that_merge_them(specs: dict[str, dict[str, Any]],
                                                                   name: str) -> None:
    """``data_spec`` goes to prepare_data, ``pco_rounds``/``pco_alpha`` to every PCO and evaluate task (in both
    recurring branches), each straight from the pipeline parameter of that name."""
    seen = set()
    for task_name, task in _tasks(specs[name]).items():
        params = task["inputs"].get("parameters", {})
        base = task_name.rsplit("-2", 1)[0]
        assert {p for p in TYPED if p in params} == MERGED_BY.get(base, set()), task_name
        for param in MERGED_BY.get(base, set()):
            # a root task reads the pipeline parameter; a task in a condition branch its channel
            assert params[param]["componentInputParameter"] in (param, f"pipelinechannel--{param}"), task_name
            seen.add(base)
    assert seen == set(MERGED_BY)


@pytest.mark.parametrize("name", [TRAINING, RECURRING])
def test_every_pco_step_reads_the_eval_config_for_its_round_metrics(specs: dict[str, dict[str, Any]], name: str):
    """The PCO step's per-round metrics sample ``eval.round_users`` / ``judge_users`` users as `coea pco` does; the
    step was not given ``eval_config`` and measured every user whatever the run form said (session 57)."""
    steps = {n: t for n, t in _tasks(specs[name]).items() if n.startswith("pco-loop")}
    assert steps and len(steps) == (1 if name == TRAINING else 2), sorted(steps)
    for task_name, task in steps.items():
        source = task["inputs"]["parameters"]["eval_config"]["componentInputParameter"]
        assert source in ("eval_config", "pipelinechannel--eval_config"), task_name


def _branch_tasks(spec: dict[str, Any]) -> list[dict[str, dict[str, Any]]]:
    """The tasks of each condition branch's DAG (not the DAG that holds the two branches)."""
    return [c["dag"]["tasks"] for name, c in sorted(spec["components"].items())
            if name.startswith("comp-condition") and "dag" in c
            and not all(t["componentRef"]["name"].startswith("comp-condition") for t in c["dag"]["tasks"].values())]


def _producer(task: dict[str, Any], artifact: str) -> str:
    """The task an input artifact comes from (inside a branch, a root task's output arrives as a component
    input named ``pipelinechannel--<task>-<key>``)."""
    ref = task["inputs"]["artifacts"][artifact]
    if "taskOutputArtifact" in ref:
        return ref["taskOutputArtifact"]["producerTask"]
    return ref["componentInputArtifact"]


def test_recurring_updates_the_loaded_models_with_pco_in_both_branches(specs: dict[str, dict[str, Any]]) -> None:
    spec = specs[RECURRING]
    branches = _branch_tasks(spec)
    assert len(branches) == 2
    for tasks in branches:
        (pco_name,) = [n for n in tasks if n.startswith("pco-loop")]
        pco = tasks[pco_name]
        (dsie,) = [n for n in tasks if n.startswith(("dsie-group", "build-profiles"))]
        for llm in ("novelty", "relevance"):  # PCO starts from the state's models, or from a re-SFT on new groups
            if dsie.startswith("build-profiles"):
                assert _producer(pco, llm) == f"pipelinechannel--load-models-{llm}"
                assert not any(n.startswith("sft-") for n in tasks)
            else:
                sft = _producer(pco, llm)
                assert sft.startswith(f"sft-{llm}") and _producer(tasks[sft], "dsie") == dsie
        assert _producer(pco, "dsie") == dsie  # with the branch's groups
        # kept models on a new period read interactions they were not trained on: pco.refresh_novelty's auto is on
        fresh = pco["inputs"]["parameters"]["new_interactions"]["runtimeValue"]["constant"]
        assert fresh is dsie.startswith("build-profiles")
        # what the store showed each user before the period (the state's served lists): PCO's exposure
        assert _producer(pco, "served") == "pipelinechannel--load-state-served"
        (save_name,) = [n for n in tasks if n.startswith(("save-models", "save-state"))]
        save = tasks[save_name]
        assert _producer(save, "novelty") == _producer(save, "relevance") == pco_name
        # the period's data: save_state makes it the next drift reference, save_models records it as the period
        # (audit, session 56: save_state fed load-state's reference, the reference never reset, passed all but the
        # golden YAML)
        assert _producer(save, "data") == "pipelinechannel--prepare-data-data"
        if save_name.startswith("save-state"):  # regrouped: the new groups switch with the models tuned on them
            assert dsie.startswith("dsie-group") and _producer(save, "dsie") == dsie
        (evaluate,) = [t for n, t in tasks.items() if n.startswith("evaluate")]
        (recommend,) = [t for n, t in tasks.items() if n.startswith("recommend")]
        for task in (evaluate, recommend):
            assert _producer(task, "pco") == pco_name
            assert _producer(task, "novelty") == _producer(pco, "novelty")  # nllm_sft & co. = PCO's start
            assert _producer(task, "data") == "pipelinechannel--prepare-data-data"  # the period's log
            assert _producer(task, "dsie") == dsie  # the branch's groups: the new DSIE, or the refreshed profiles
        # +x over every period so far, and the users served before who have no event now keep a list (audit,
        # session 55: recommend without the state's seen or served lists passed every fast test)
        assert _producer(recommend, "seen_before") == "pipelinechannel--load-state-seen"
        assert _producer(recommend, "served") == "pipelinechannel--load-state-served"
        if dsie.startswith("build-profiles"):  # the kept groups' profiles from the period's histories
            assert _producer(tasks[dsie], "data") == "pipelinechannel--prepare-data-data"
            assert _producer(tasks[dsie], "dsie_in") == "pipelinechannel--load-state-dsie"
        else:
            assert _producer(tasks[dsie], "data") == "pipelinechannel--prepare-data-data"
    root = spec["root"]["dag"]["tasks"]  # the drift check: the state's reference window against the period
    drift = root["monitor-drift"]
    assert (_producer(drift, "reference"), _producer(drift, "current"), _producer(drift, "dsie")) == (
        "load-state", "prepare-data", "load-state")
    assert drift["inputs"]["artifacts"]["reference"]["taskOutputArtifact"]["outputArtifactKey"] == "reference"
    # both windows' histories under the run's split (audit, session 56: without it the drift check read the future
    # the period's evaluate step scores)
    assert drift["inputs"]["parameters"]["split_config"] == {"componentInputParameter": "split_config"}
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["rec_method"]["defaultValue"] == SERVED_METHOD


@pytest.mark.parametrize("name", [TRAINING, RECURRING])
def test_caching_and_retries(specs: dict[str, dict[str, Any]], name: str) -> None:
    tasks = _tasks(specs[name])
    for task_name, task in tasks.items():
        cached = task.get("cachingOptions", {}).get("enableCache", False)
        pure = task_name.startswith(("evaluate", "recommend", "build-profiles"))
        assert cached is pure, task_name  # training, drift and every step with side effects: no cache
        retries = task.get("retryPolicy", {}).get("maxRetryCount", 0)
        base = task_name.split("-2")[0]
        # every step is retried: a node drained or preempted under a CPU compute step would fail the run too
        assert retries == (3 if base in IO_TASKS else 2), task_name
        if base in ("evaluate", "recommend", "build-profiles", "monitor-drift"):  # compute_retries' backoff
            assert (task["retryPolicy"]["backoffDuration"], task["retryPolicy"]["backoffFactor"]) == ("60s", 2.0)


@pytest.mark.parametrize("name", [TRAINING, RECURRING])
def test_image_and_no_runtime_installs(specs: dict[str, dict[str, Any]], name: str) -> None:
    for executor, body in _executors(specs[name]).items():
        container = body["container"]
        assert container["image"] == "coea:latest", executor
        assert "pip install" not in " ".join(container["command"] + container.get("args", [])), executor


def test_recurring_branches_on_drift_share(specs: dict[str, dict[str, Any]]) -> None:
    spec = specs[RECURRING]
    conditions = [t["triggerPolicy"]["condition"] for c in spec["components"].values() if "dag" in c
                  for t in c["dag"]["tasks"].values() if "triggerPolicy" in t]
    regroup = "inputs.parameter_values['pipelinechannel--monitor-drift-drift_share'] >= " \
              "inputs.parameter_values['pipelinechannel--drift_threshold']"
    assert sorted(conditions) == sorted([f"!({regroup})", regroup])
    branch = {t["triggerPolicy"]["condition"]: set(spec["components"][t["componentRef"]["name"]]["dag"]["tasks"])
              for c in spec["components"].values() if "dag" in c
              for t in c["dag"]["tasks"].values() if "triggerPolicy" in t}
    # the drifted branch regroups and re-trains both LLMs; the other keeps the groups and models
    assert {"dsie-group", "sft-novelty", "sft-relevance"} <= branch[regroup], branch[regroup]
    assert not {"dsie-group", "sft-novelty", "sft-relevance"} & branch[f"!({regroup})"], branch[f"!({regroup})"]
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["drift_threshold"]["defaultValue"] == 0.5
    assert params["state_uri"]["defaultValue"] == "/cache/coea-state"


def test_gpu_pool_overlay_settings(tmp_path: Path) -> None:
    settings = DeploymentSettings.from_yaml(K8S / "overlays" / "gpu-pool" / "pipeline.yaml")
    spec = _compile(tmp_path, settings)[TRAINING]
    k8s = _k8s(spec)
    assert k8s["exec-dsie-group"]["nodeSelector"]["labels"] == {"coea.io/pool": "gpu"}
    assert spec["deploymentSpec"]["executors"]["exec-prepare-data"]["container"]["image"] == "REGISTRY/coea:TAG"
    assert spec["root"]["inputDefinitions"]["parameters"]["state_uri"]["defaultValue"].startswith("gs://")
    assert set(k8s) == GPU_EXECUTORS[TRAINING]  # state on GCS: only the GPU steps have k8s settings
    assert not any("pvcMount" in body for body in k8s.values())  # and none mounts the RWO cache PVC


def test_gpu_scheduling_follows_non_default_settings_on_every_gpu_step(tmp_path: Path) -> None:
    """Every GPU setting reaches every GPU step of both pipelines, not the defaults' values: a taint of our own with
    a value (operator Equal) and another effect, another node label, accelerator type and count."""
    settings = DeploymentSettings(gpu_node_selector_key="pool.example/kind", gpu_node_selector_value="a100",
                                  gpu_toleration_key="example.com/gpu-only", gpu_toleration_value="yes",
                                  gpu_toleration_effect="NoExecute", accelerator_type="nvidia.com/gpu-a100",
                                  accelerator_limit=2)
    specs = _compile(tmp_path, settings)
    for name in (TRAINING, RECURRING):
        for executor in GPU_EXECUTORS[name]:
            accelerator = _executors(specs[name])[executor]["container"]["resources"]["accelerator"]
            assert (accelerator["resourceType"], accelerator["resourceCount"]) == ("nvidia.com/gpu-a100", "2")
            k8s = _k8s(specs[name])[executor]
            assert k8s["nodeSelector"]["labels"] == {"pool.example/kind": "a100"}, executor
            assert k8s["tolerations"] == [{"key": "example.com/gpu-only", "operator": "Equal", "value": "yes",
                                           "effect": "NoExecute"}], executor


def test_cpu_dev_overlay_has_no_gpu_scheduling(tmp_path: Path) -> None:
    settings = DeploymentSettings.from_yaml(K8S / "overlays" / "cpu-dev" / "pipeline.yaml")
    spec = _compile(tmp_path, settings)[RECURRING]
    assert "accelerator" not in _executors(spec)["exec-dsie-group"]["container"]["resources"]
    k8s = _k8s(spec)
    assert "nodeSelector" not in k8s["exec-dsie-group"] and "tolerations" not in k8s["exec-dsie-group"]
    # the state lives on the cache volume (/cache/coea-state): every I/O step and the training step mount it
    assert set(k8s) == {"exec-prepare-data", "exec-load-state", "exec-save-state", "exec-export-recommendations",
                        "exec-export-recommendations-2", "exec-dsie-group", "exec-load-models", "exec-save-models",
                        "exec-pco-loop", "exec-pco-loop-2", "exec-sft-novelty", "exec-sft-relevance"}


def test_training_pipeline_runs_the_steps_of_the_in_process_flow(specs: dict[str, dict[str, Any]]) -> None:
    """coea run (the compiled coea_training) and coea.flow (coea evaluate, simulate's seed) run the same steps:
    the compiled tasks are exactly coea.flow.TRAINING_STEPS, and that order respects every dependency edge."""
    from coea.evaluation.registry import Need
    from coea.flow import TRAINING_STEPS, Serve, plan

    tasks = specs[TRAINING]["root"]["dag"]["tasks"]
    order = [s.value for s in TRAINING_STEPS]
    assert sorted(tasks) == sorted(order)
    for name, task in tasks.items():
        for dep in task.get("dependentTasks", []):
            assert order.index(dep) < order.index(name), f"{dep} must come before {name} in the flow"
    # the flow with the pipeline's options (state, the served method) plans every step of the pipeline
    full = plan(frozenset({Need.PCO}), state_uri="/tmp/state", serve=Serve(), evaluate=True)
    assert full == list(TRAINING_STEPS)


@pytest.mark.parametrize("name", [TRAINING, RECURRING])
def test_prepare_data_gets_the_run_s_scheduled_time(specs: dict[str, dict[str, Any]], name: str) -> None:
    """The backend substitutes the placeholder per run: the as-of time of a partitioned log (coea.data.partitions)."""
    task = _tasks(specs[name])["prepare-data"]
    value = task["inputs"]["parameters"]["scheduled_time"]["runtimeValue"]["constant"]
    assert value == dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER == "{{$.pipeline_job_schedule_time_utc}}"


def _constants(node: Any) -> list[str]:
    """Every string a compiled spec passes as a task input's runtime constant."""
    if isinstance(node, dict):
        const = node.get("runtimeValue", {}).get("constant") if isinstance(node.get("runtimeValue"), dict) else None
        return ([const] if isinstance(const, str) else []) + [c for v in node.values() for c in _constants(v)]
    return [c for v in node for c in _constants(v)] if isinstance(node, list) else []


@pytest.mark.parametrize("name", [TRAINING, RECURRING])
def test_every_kfp_placeholder_is_a_whole_input_value(specs: dict[str, dict[str, Any]], name: str) -> None:
    """A KFP backend's driver resolves a run-time placeholder only when it is an input's whole value (a switch on
    the string); kfp.local replaces it inside any string. Session 55: the GPU steps' checkpoint key
    ``"{{$.pipeline_job_uuid}}-{{$.pipeline_task_name}}"`` passed every local test and would have reached the pods
    as that literal, one key shared by every run and task."""
    placeholders = {dsl.PIPELINE_JOB_ID_PLACEHOLDER, dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
                    dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER, dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                    dsl.PIPELINE_TASK_ID_PLACEHOLDER, dsl.PIPELINE_JOB_RESOURCE_NAME_PLACEHOLDER}
    used = [c for c in _constants(specs[name]) if "{{$" in c]
    assert used and all(c in placeholders for c in used), used
    # each GPU step's run id and task name (its checkpoints), and each save step's run id (its commit's committer)
    assert used.count(dsl.PIPELINE_JOB_ID_PLACEHOLDER) > used.count(dsl.PIPELINE_TASK_NAME_PLACEHOLDER) >= 3


def test_cheap_task_checks_raise_kfp_s_error_and_restore_its_check() -> None:
    """components.resources.cheap_task_checks (used while the pipelines are built) keeps kfp's check that a
    ``set_*`` call is on a single-step component, with kfp's message, and puts kfp's own check back after."""
    from kfp.dsl import PipelineTask

    from components.resources import cheap_task_checks

    # no annotations on the kfp functions: with postponed annotations kfp would read "None" as a type
    @dsl.component(base_image="python:3.11")
    def step():
        pass

    @dsl.pipeline
    def inner():
        step()

    messages = []

    def outer():
        step().set_cpu_limit("1")  # a single-step component: allowed
        with pytest.raises(ValueError, match="^set_cpu_limit can only be used on single-step components") as err:
            inner().set_cpu_limit("1")
        messages.append(str(err.value))

    original = PipelineTask.__dict__["_ensure_container_spec_exists"]
    dsl.pipeline(outer)  # kfp's own check
    with cheap_task_checks():
        assert PipelineTask.__dict__["_ensure_container_spec_exists"] is not original
        dsl.pipeline(outer)
    assert PipelineTask.__dict__["_ensure_container_spec_exists"] is original
    assert len(messages) == 2 and messages[0] == messages[1]


def test_relevance_from_novelty_setting_feeds_the_trained_n_llm_to_the_r_llm_sft(tmp_path: Path,
                                                                                  specs: dict[str, dict[str, Any]]):
    """Compiled with ``relevance_from_novelty``, every sft-relevance task (training, and the recurring pipeline's
    regroup branch) reads its sft-novelty task's model, for ``llm.relevance_init: novelty``, so the two run one
    after the other; with the default settings they may run side by side."""
    chained = _compile(tmp_path, DeploymentSettings(relevance_from_novelty=True))
    for name, spec in chained.items():
        relevance = {n: t for n, t in _tasks(spec).items() if n.startswith("sft-relevance")}
        assert relevance, name
        for task in relevance.values():
            assert task["inputs"]["artifacts"]["novelty"]["taskOutputArtifact"] == {
                "producerTask": "sft-novelty", "outputArtifactKey": "model"}
    assert not may_run_together(chained[TRAINING], "sft-novelty", "sft-relevance")
    assert may_run_together(specs[TRAINING], "sft-novelty", "sft-relevance")


@pytest.mark.parametrize("name", [TRAINING, RECURRING])
def test_the_r_llm_sft_step_reads_the_run_s_pco_config(specs: dict[str, dict[str, Any]], name: str) -> None:
    """The R-LLM's SFT step warns about a chance-level R-LLM only when the PCO reward reads its score, so it needs
    the run's ``pco_config``; without it every run looked like the default (feedback) reward."""
    steps = [task for task_name, task in _tasks(specs[name]).items() if task_name.startswith("sft-relevance")]
    assert steps
    for task in steps:
        source = task["inputs"]["parameters"]["pco_config"]["componentInputParameter"]
        assert source in ("pco_config", "pipelinechannel--pco_config")
