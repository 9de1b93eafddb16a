"""Kubernetes settings of pipeline tasks: GPU scheduling, the cache volume, CPU/memory requests, retries.

kfp-kubernetes settings compile into the pipeline YAML (``platforms.kubernetes``); ``kfp.local`` ignores them.
"""

from kfp import kubernetes
from kfp.dsl import PipelineTask

from components.settings import DeploymentSettings, StageClass


def apply_resources(task: PipelineTask, settings: DeploymentSettings, stage: StageClass) -> PipelineTask:
    """CPU and memory requests of the stage's class."""
    cpu, memory = settings.requests(stage)
    return task.set_cpu_request(cpu).set_memory_request(memory)


def mount_cache(task: PipelineTask, settings: DeploymentSettings) -> PipelineTask:
    """Mount the model/data cache PVC (``coea-model-cache`` at ``/cache`` by default)."""
    return kubernetes.mount_pvc(task, pvc_name=settings.cache_pvc_name, mount_path=settings.cache_mount_path)


def apply_gpu(task: PipelineTask, settings: DeploymentSettings) -> PipelineTask:
    """A training step: accelerator type and limit, GPU node selector and toleration, the cache volume,
    training-class requests, caching off. Empty settings values switch the matching part off (cpu-dev).

    ``dsie_group``, ``sft_novelty``, ``sft_relevance`` and ``pco_loop`` use it.
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
    mount_cache(task, settings)
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
