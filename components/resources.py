"""Kubernetes settings of pipeline tasks: GPU scheduling, volumes, CPU/memory requests and limits, retries,
timeouts.

kfp-kubernetes settings compile into the pipeline YAML (``platforms.kubernetes``); ``kfp.local`` ignores them.

Volumes and parallel tasks: the ReadWriteOnce cache PVC (``cache_pvc_name``) can be attached to one node at a
time, so no two tasks that may run at once mount it. The GPU steps (the two SFT steps run side by side) get an
``emptyDir`` at ``cache_mount_path`` for the Hugging Face / torch caches instead; base models come from the
optional ReadOnlyMany PVC ``model_pvc_name``, which any number of pods on any nodes may mount. Only the state
steps mount the RWO PVC (when ``state_uri`` lives on it), and :func:`pipelines.definitions` orders them.
"""

import contextlib
import sys
from collections.abc import Iterator

from kfp import kubernetes
from kfp.dsl import PipelineTask

from components.settings import DeploymentSettings, StageClass

GPU_CACHE_VOLUME = "coea-gpu-cache"  # name of the GPU steps' emptyDir volume


@contextlib.contextmanager
def cheap_task_checks() -> Iterator[None]:
    """While open, kfp's check behind every ``PipelineTask.set_*`` call (``_ensure_container_spec_exists``: the task
    must be a single-step component) names its caller with ``sys._getframe`` instead of ``inspect.stack()``, which
    reads the source of every frame on the stack: same check, same error, but in a process with torch and a deep
    stack (pytest, the CLI) building both pipelines took seconds instead of a tenth of one. A kfp without that
    method is left alone."""
    original = PipelineTask.__dict__.get("_ensure_container_spec_exists")
    if original is None:
        yield
        return

    def ensure_container_spec_exists(task: PipelineTask) -> None:
        if task.container_spec is None:
            caller = sys._getframe(1).f_code.co_name
            raise ValueError(f"{caller} can only be used on single-step components, not pipelines used as "
                             "components, or special components like importers.")

    PipelineTask._ensure_container_spec_exists = ensure_container_spec_exists
    try:
        yield
    finally:
        PipelineTask._ensure_container_spec_exists = original


def apply_resources(task: PipelineTask, settings: DeploymentSettings, stage: StageClass) -> PipelineTask:
    """CPU and memory requests and limits of the stage's class; a compute-class step (evaluate, recommend, the
    profiles, drift: deterministic, no side effects) also gets ``compute_retries`` with backoff, so a node drained
    or preempted under it does not fail the run after its GPU steps (the light and train classes get theirs from
    :func:`apply_io` and :func:`apply_gpu`)."""
    cpu, memory = settings.requests(stage)
    cpu_limit, memory_limit = settings.limits(stage)
    if stage is StageClass.COMPUTE and settings.compute_retries:
        task.set_retry(num_retries=settings.compute_retries, backoff_duration=settings.compute_retry_backoff,
                       backoff_factor=2.0)
    task.set_cpu_request(cpu).set_memory_request(memory)
    return task.set_cpu_limit(cpu_limit).set_memory_limit(memory_limit)


def mount_cache(task: PipelineTask, settings: DeploymentSettings) -> PipelineTask:
    """Mount the ReadWriteOnce cache PVC (``coea-model-cache`` at ``/cache`` by default): state steps only."""
    return kubernetes.mount_pvc(task, pvc_name=settings.cache_pvc_name, mount_path=settings.cache_mount_path)


def mount_models(task: PipelineTask, settings: DeploymentSettings) -> PipelineTask:
    """Mount the ReadOnlyMany base-model PVC (``model_pvc_name`` at ``model_mount_path``) when one is set: every
    step that loads a Hugging Face model from a local path (``llm.model.base_model``, or the ``llm`` profiler's
    ``dsie.profiles.model_path``): the GPU steps, ``build_profiles``, ``evaluate``, ``recommend``.

    kfp-kubernetes 2.17 cannot mark a PVC mount read-only (``mount_pvc(task, pvc_name, mount_path, sub_path)``;
    its ``PvcMount`` message has no read-only field), so the claim itself makes it read-only: a ReadOnlyMany claim
    bound to a volume that is read-only (on GKE a persistent disk whose PV sets ``csi.readOnly: true``); see
    docs/kubeflow.md. ``load_models`` only copies the state's model files and mounts nothing."""
    if settings.model_pvc_name:
        kubernetes.mount_pvc(task, pvc_name=settings.model_pvc_name, mount_path=settings.model_mount_path)
    return task


def apply_gpu(task: PipelineTask, settings: DeploymentSettings) -> PipelineTask:
    """A training step: accelerator type and limit, GPU node selector and toleration, an emptyDir cache and the
    base-model volume, training-class requests and limits, retries with backoff (a preempted GPU node kills the
    pod), the pod's ``activeDeadlineSeconds``, caching off. Empty settings values switch the matching part off
    (cpu-dev).

    ``dsie_group``, ``sft_novelty``, ``sft_relevance`` and ``pco_loop`` use it (``GPU_STAGES``).
    """
    if settings.accelerator_type:
        task.set_accelerator_type(settings.accelerator_type).set_accelerator_limit(settings.accelerator_limit)
    if settings.gpu_node_selector_key:
        kubernetes.add_node_selector(task, label_key=settings.gpu_node_selector_key,
                                     label_value=settings.gpu_node_selector_value)
    if settings.gpu_toleration_key:
        value = settings.gpu_toleration_value or None
        kubernetes.add_toleration(task, key=settings.gpu_toleration_key, operator="Equal" if value else "Exists",
                                  value=value, effect=settings.gpu_toleration_effect)
    kubernetes.empty_dir_mount(task, volume_name=GPU_CACHE_VOLUME, mount_path=settings.cache_mount_path,
                               size_limit=settings.gpu_cache_size or None)
    mount_models(task, settings)
    if settings.gpu_timeout_seconds:
        kubernetes.set_timeout(task, settings.gpu_timeout_seconds)
    if settings.gpu_retries:
        task.set_retry(num_retries=settings.gpu_retries, backoff_duration=settings.gpu_retry_backoff,
                       backoff_factor=2.0, backoff_max_duration=settings.gpu_retry_window)
    apply_resources(task, settings, StageClass.TRAIN)
    return task.set_caching_options(False)


def apply_io(task: PipelineTask, settings: DeploymentSettings) -> PipelineTask:
    """A step that reads or writes outside its artifacts (data source, state, store): retries with backoff,
    caching off (its result depends on more than its inputs), light requests, and the cache volume when the
    state lives on it (then data and state are expected there, as in the cpu-dev overlay)."""
    task.set_retry(num_retries=settings.io_retries, backoff_duration=settings.io_retry_backoff, backoff_factor=2.0)
    if settings.state_on_cache_volume:
        mount_cache(task, settings)
    apply_resources(task, settings, StageClass.LIGHT)
    return task.set_caching_options(False)
