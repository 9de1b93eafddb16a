"""What a cluster needs from the compiled pipelines: the images given to ``coea compile`` (tags and digests) on
every executor, the pipeline root, retries and timeouts of the GPU steps, no ReadWriteOnce volume on two tasks
that may run at once, parameter descriptions and task display names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components.functions import STAGES
from components.settings import GPU_STAGES, DeploymentSettings
from pipelines.definitions import PARAMETER_HELP, RECURRING, TRAINING
from tests.helpers import REPO, run_cli
from tests.pipeline.compiled_spec import (
    compile_specs,
    executor_of,
    executor_tasks,
    executors,
    k8s_executors,
    may_run_together,
    read_spec,
)

DIGEST = "europe-docker.pkg.dev/proj/coea/coea@sha256:" + "0123456789abcdef" * 4
GPU_DIGEST = "europe-docker.pkg.dev/proj/coea/coea-gpu@sha256:" + "fedcba9876543210" * 4
FILES = {TRAINING: "coea_training.yaml", RECURRING: "coea_recurring.yaml"}
OVERLAYS = {"default": None, "gpu-pool": "overlays/gpu-pool", "cpu-dev": "overlays/cpu-dev"}


def compiled_by_cli(out: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    code, _, err = run_cli(["compile", "--out", str(out), *argv], capsys)
    assert code == 0, err
    return {name: read_spec(out / file) for name, file in FILES.items()}


def test_compile_image_digest_sets_every_executor_of_both_pipelines(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    specs = compiled_by_cli(tmp_path, ["--image", DIGEST], capsys)
    for name, spec in specs.items():
        images = {ex: body["container"]["image"] for ex, body in executors(spec).items()}
        assert len(images) >= 9 and set(images.values()) == {DIGEST}, name


def test_gpu_image_goes_to_exactly_the_gpu_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    specs = compiled_by_cli(tmp_path, ["--image", DIGEST, "--gpu-image", GPU_DIGEST], capsys)
    for name, spec in specs.items():
        for executor, body in executors(spec).items():
            on_gpu = "accelerator" in body["container"].get("resources", {})
            assert on_gpu == (executor.rsplit("-2", 1)[0].removeprefix("exec-").replace("-", "_") in GPU_STAGES)
            assert body["container"]["image"] == (GPU_DIGEST if on_gpu else DIGEST), (name, executor)


@pytest.mark.parametrize(("argv", "message"), [
    (["--image", "coea@sha256:abc"], "option --image: image 'coea@sha256:abc' has a malformed digest"),
    (["--image", "Coea:latest"], "option --image: image 'Coea:latest' is not a valid reference"),
    (["--gpu-image", "reg/coea gpu"], "option --gpu-image: image 'reg/coea gpu' is not a valid reference"),
    (["--pipeline-root", "/tmp/root"], "option --pipeline-root: pipeline root '/tmp/root' is not an object-store"),
])
def test_bad_image_or_root_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  argv: list[str], message: str) -> None:
    code, out, err = run_cli(["compile", "--out", str(tmp_path / "build"), *argv], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "build").exists()  # nothing compiled


def test_pipeline_root_is_compiled_only_when_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    given = compiled_by_cli(tmp_path / "a", ["--pipeline-root", "gs://bucket/kfp-root"], capsys)
    assert {spec["defaultPipelineRoot"] for spec in given.values()} == {"gs://bucket/kfp-root"}
    default = compiled_by_cli(tmp_path / "b", [], capsys)
    assert not any("defaultPipelineRoot" in spec for spec in default.values())


def test_schedule_passes_the_pipeline_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    code, out, err = run_cli(["schedule", "--dry-run", "--out", str(tmp_path), "--image", DIGEST,
                              "--pipeline-root", "gs://bucket/root", "--data", "synthetic"], capsys)
    assert code == 0, err
    (line,) = [ln for ln in out.splitlines() if ln.startswith("POST   /apis/v2beta1/recurringruns")]
    assert json.loads(line[line.index("{"):])["runtime_config"]["pipeline_root"] == "gs://bucket/root"
    spec = read_spec(tmp_path / FILES[RECURRING])
    assert spec["defaultPipelineRoot"] == "gs://bucket/root"
    assert {b["container"]["image"] for b in executors(spec).values()} == {DIGEST}


@pytest.fixture(scope="module")
def overlay_specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, dict[str, Any]]]:
    """overlay -> pipeline -> spec, compiled with that overlay's pipeline.yaml (default settings for 'default')."""
    out = {}
    for overlay, folder in OVERLAYS.items():
        settings = DeploymentSettings.from_yaml(REPO / "k8s" / folder / "pipeline.yaml") if folder else None
        out[overlay] = compile_specs(tmp_path_factory.mktemp(overlay), settings)
    return out


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
@pytest.mark.parametrize("name", [TRAINING, RECURRING])
def test_every_gpu_task_has_retries_timeout_and_limits(overlay_specs, overlay: str, name: str) -> None:
    spec = overlay_specs[overlay][name]
    gpu_tasks = {t: task for t, task in executor_tasks(spec).items()
                 if t.rsplit("-2", 1)[0].replace("-", "_") in GPU_STAGES}
    assert len(gpu_tasks) == (4 if name == TRAINING else 5)
    for task_name, task in gpu_tasks.items():
        policy = task["retryPolicy"]
        assert policy["maxRetryCount"] == 2 and policy["backoffDuration"] == "120s", task_name
        assert policy["backoffFactor"] == 2.0
        assert policy["backoffMaxDuration"] == f"{3 * 6 * 3600 + 3600}s"  # room for 3 full attempts, not kfp's 1h
        executor = executor_of(spec, task)
        assert int(k8s_executors(spec)[executor]["activeDeadlineSeconds"]) == 6 * 3600, task_name
        resources = executors(spec)[executor]["container"]["resources"]
        assert {"resourceCpuLimit", "resourceMemoryLimit", "resourceMemoryRequest"} <= set(resources), task_name


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
@pytest.mark.parametrize("name", [TRAINING, RECURRING])
def test_no_pvc_is_mounted_by_two_tasks_that_can_run_at_once(overlay_specs, overlay: str, name: str) -> None:
    """Every PVC in these settings is ReadWriteOnce (k8s/base/pvc.yaml): two pods on two nodes cannot both
    attach it. So for every pair of tasks mounting the same claim, one must wait for the other or the two sit
    in exclusive branches. The GPU steps (the two SFT steps may land on two GPU nodes) use emptyDir caches."""
    spec = overlay_specs[overlay][name]
    mounts: dict[str, list[str]] = {}
    for task_name, task in executor_tasks(spec).items():
        for mount in k8s_executors(spec).get(executor_of(spec, task), {}).get("pvcMount", []):
            mounts.setdefault(mount["constant"], []).append(task_name)
    for claim, tasks in mounts.items():
        for i, a in enumerate(tasks):
            for b in tasks[i + 1:]:
                assert not may_run_together(spec, a, b), f"{claim} mounted by {a} and {b}, which may run at once"
    assert may_run_together(spec, "save-state", "evaluate")  # the check can tell parallel tasks apart
    assert may_run_together(spec, "sft-novelty", "sft-relevance")  # the SFT steps side by side (default settings)
    if overlay == "cpu-dev":  # state on the PVC: its readers and writers do mount it
        assert {"prepare-data", "save-state"} <= set(mounts["coea-model-cache"])


MODEL_LOADERS = {"dsie-group", "sft-novelty", "sft-relevance", "pco-loop", "build-profiles", "evaluate", "recommend"}


def _model_mounts(spec: dict[str, Any], claim: str) -> dict[str, list[dict[str, Any]]]:
    """Task name (without kfp's ``-2`` suffix) -> its pvcMount entries naming ``claim``."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, task in executor_tasks(spec).items():
        mounts = k8s_executors(spec).get(executor_of(spec, task), {}).get("pvcMount", [])
        out.setdefault(name.rsplit("-2", 1)[0], []).extend(m for m in mounts if m.get("constant") == claim)
    return out


@pytest.fixture(scope="module")
def model_volume_specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """pipeline -> spec compiled with ``model_pvc_name`` set (once for the module)."""
    settings = DeploymentSettings(state_uri="gs://b/state", model_pvc_name="coea-base-models",
                                  model_mount_path="/base-models")
    return compile_specs(tmp_path_factory.mktemp("model-volume"), settings)


@pytest.mark.parametrize("name", [TRAINING, RECURRING])
def test_model_volume_is_mounted_on_every_model_loading_step(model_volume_specs, overlay_specs, name: str) -> None:
    """With ``model_pvc_name`` set, every task that loads a local Hugging Face model (base_model, the llm
    profiler's model_path) mounts the claim at model_mount_path, and no other task does; without it (the default
    settings) none does."""
    mounts = _model_mounts(model_volume_specs[name], "coea-base-models")
    mounted = {task for task, found in mounts.items() if found}
    assert mounted == MODEL_LOADERS & set(mounts), mounted
    assert {"evaluate", "recommend", "pco-loop"} <= mounted
    assert all(m["mountPath"] == "/base-models" and not m.get("subPath") for task in mounted for m in mounts[task])
    assert not any(_model_mounts(overlay_specs["default"][name], "coea-base-models").values())


def test_installed_kfp_kubernetes_has_no_read_only_pvc_mount() -> None:
    """kfp-kubernetes cannot mark a PVC mount read-only (the claim's access mode does it; see
    components.resources.mount_models). When a release adds it, this fails: then pass it in mount_models."""
    import inspect

    from kfp.kubernetes import kubernetes_executor_config_pb2 as pb
    from kfp.kubernetes import mount_pvc

    assert not any("read" in f.name.lower() for f in pb.PvcMount.DESCRIPTOR.fields)
    assert set(inspect.signature(mount_pvc).parameters) == {"task", "pvc_name", "mount_path", "sub_path"}


@pytest.mark.parametrize("path", ["/cache", "/cache/", "models"])
def test_model_mount_path_must_be_absolute_and_apart_from_the_gpu_cache(path: str) -> None:
    with pytest.raises(ValueError, match="model_mount_path"):
        DeploymentSettings(model_pvc_name="coea-base-models", model_mount_path=path)


@pytest.mark.parametrize("name", [TRAINING, RECURRING])
def test_parameters_have_descriptions_and_tasks_display_names(overlay_specs, name: str) -> None:
    spec = overlay_specs["default"][name]
    params = spec["root"]["inputDefinitions"]["parameters"]
    for param, body in params.items():
        assert body["description"] == PARAMETER_HELP[param], param
    assert params["device"]["defaultValue"] == "auto"  # components default to the auto device
    # the typed parameters of the run form: their types, and defaults that keep the JSON configs' values
    typed = {"data_spec": ("STRING", ""), "pco_rounds": ("NUMBER_INTEGER", 0), "pco_alpha": ("NUMBER_DOUBLE", -1.0),
             "rec_k": ("NUMBER_INTEGER", 10), "device": ("STRING", "auto")}
    if name == RECURRING:
        typed["drift_threshold"] = ("NUMBER_DOUBLE", 0.5)
    for param, (kind, default) in typed.items():
        assert (params[param]["parameterType"], params[param]["defaultValue"]) == (kind, default), param
    for task_name, task in executor_tasks(spec).items():
        shown = task["taskInfo"]["name"]
        assert shown != task_name.rsplit("-2", 1)[0] and " " in shown, task_name  # a human name, not the key


@pytest.mark.parametrize("fn", STAGES, ids=lambda fn: fn.__name__)
def test_every_output_artifact_records_the_package_version(fn) -> None:
    """Each component passes every output artifact except Metrics (whose metadata are the metrics) to
    coea.stages.record_version."""
    import ast
    import inspect
    from typing import get_args

    from kfp.dsl import Metrics
    from kfp.dsl.types.type_annotations import OutputAnnotation

    outputs = {name: get_args(ann)[0] for name, ann in fn.__annotations__.items() if OutputAnnotation in get_args(ann)}
    calls = [node for node in ast.walk(ast.parse(inspect.getsource(fn)))
             if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "record_version"]
    recorded = {arg.id for call in calls for arg in call.args}
    assert recorded == {name for name, kind in outputs.items() if kind is not Metrics}, fn.__name__


def test_local_pipeline_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """kfp.local's pipeline root: RUN/kfp by default, the given directory otherwise; `coea run --pipeline-root`
    refuses an object-store URI (kfp.local writes locally) with one line and exit 2, before running anything."""
    from kfp.local import config

    from pipelines.local import init_local

    assert init_local(tmp_path / "run") == (tmp_path / "run" / "kfp").resolve()
    assert init_local(tmp_path / "run", tmp_path / "elsewhere") == (tmp_path / "elsewhere").resolve()
    assert config.LocalExecutionConfig.instance.pipeline_root == str((tmp_path / "elsewhere").resolve())
    code, _, err = run_cli(["run", "--runs-dir", str(tmp_path / "runs"), "--pipeline-root", "gs://b/root"], capsys)
    assert code == 2 and "option --pipeline-root: kfp.local writes artifacts to a local directory" in err
    assert not (tmp_path / "runs").exists()


def test_compiling_the_same_settings_twice_gives_the_same_version_names(tmp_path: Path) -> None:
    """`coea upload` is a no-op the second time only if a fresh compile of the same settings hashes the same:
    two real compiles (no cached copy) with a gs:// state, a pipeline root and a model volume, into other folders,
    give equal version names; another state URI gives another one."""
    from pipelines.compile import compile_pipelines
    from pipelines.upload import version_name

    settings = DeploymentSettings(state_uri="gs://b/state", pipeline_root="gs://b/root",
                                  model_pvc_name="coea-base-models", model_mount_path="/base-models")
    first = compile_pipelines(tmp_path / "a", settings)
    second = compile_pipelines(tmp_path / "b", settings)
    other = compile_pipelines(tmp_path / "c", DeploymentSettings(state_uri="gs://b/other", pipeline_root="gs://b/root",
                                                                 model_pvc_name="coea-base-models",
                                                                 model_mount_path="/base-models"))
    assert set(first) == set(second) == {TRAINING, RECURRING}
    for name in first:
        assert first[name] != second[name]
        assert version_name(first[name], sha="s") == version_name(second[name], sha="s")
        assert version_name(other[name], sha="s") != version_name(first[name], sha="s")
