"""Deployment settings of the Kubeflow pipelines: image, GPU scheduling, cache volume, resources, schedule.

These are facts about a cluster, not about the model, so they live apart from the stage configs in
``coea.config``. :meth:`DeploymentSettings.from_yaml` reads the flat ``pipeline.yaml`` of the ConfigMap
``coea-pipeline-config`` (``k8s/base/pipeline.yaml`` and its overlays): ``state_uri``, ``image``,
``gpu_node_selector_key``, ``gpu_node_selector_value``, ``gpu_toleration_key``, ``accelerator_type``, ``cron``;
every other field of the dataclass may be given there too. An empty ``accelerator_type``, node selector key or
toleration key switches that part of GPU scheduling off (the ``cpu-dev`` overlay). Nothing here names a cloud.

This module imports neither kfp nor the rest of the pipeline code, so reading settings is cheap.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from coea.errors import CoeaInputError

# Keys of k8s/*/pipeline.yaml whose names differ from the dataclass fields.
YAML_ALIASES = {"image": "base_image"}
TOLERATION_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


class StageClass(enum.StrEnum):
    """Resource class of a pipeline step; each has its own CPU/memory requests."""

    LIGHT = "light"  # data preparation, state I/O, export
    COMPUTE = "compute"  # evaluation, drift, profiles, recommendations
    TRAIN = "train"  # model training: dsie_group now; sft_* and pco_loop later


@dataclass(frozen=True)
class DeploymentSettings:
    """Where and how the pipeline's steps run on the cluster."""

    base_image: str = "coea:latest"  # image of every step (Dockerfiles/); holds coea and kfp 2.17
    state_uri: str = "/cache/coea-state"  # default pipeline argument: local dir (PVC) or gs://bucket/prefix
    gpu_node_selector_key: str = "nvidia.com/gpu.present"  # node label of GPU nodes ("" = no node selector)
    gpu_node_selector_value: str = "true"
    gpu_toleration_key: str = "nvidia.com/gpu"  # taint key of GPU nodes ("" = no toleration)
    gpu_toleration_value: str = ""  # "" = operator Exists (any value), else operator Equal
    gpu_toleration_effect: str = "NoSchedule"
    accelerator_type: str = "nvidia.com/gpu"  # task.set_accelerator_type(...) ("" = no accelerator request)
    accelerator_limit: int = 1  # GPUs per GPU step
    cache_pvc_name: str = "coea-model-cache"  # PVC mounted on GPU steps (and state steps when state is on it)
    cache_mount_path: str = "/cache"
    cpu_request_light: str = "500m"
    memory_request_light: str = "1Gi"
    cpu_request_compute: str = "2"
    memory_request_compute: str = "4Gi"
    cpu_request_train: str = "4"
    memory_request_train: str = "16Gi"
    io_retries: int = 3  # retries of steps that read or write external storage
    io_retry_backoff: str = "30s"  # first wait before a retry (doubles each time)
    service_account: str = "coea-pipeline-runner"  # Kubernetes service account of recurring runs
    cron: str = "0 0 3 * * *"  # recurring-run schedule: 6 fields, seconds first
    experiment: str = "coea"  # KFP experiment that holds the runs
    namespace: str = ""  # KFP namespace (multi-user Kubeflow profile); "" = the client's default

    def __post_init__(self) -> None:
        if not self.base_image.strip():
            raise ValueError("image (base_image) must not be empty")
        if not self.state_uri.strip():
            raise ValueError("state_uri must not be empty; use a directory or gs://bucket/prefix")
        if self.gpu_toleration_effect not in TOLERATION_EFFECTS:
            raise ValueError(f"gpu_toleration_effect must be one of {TOLERATION_EFFECTS}, "
                             f"got {self.gpu_toleration_effect!r}")
        if bool(self.gpu_node_selector_key) and not self.gpu_node_selector_value:
            raise ValueError("gpu_node_selector_value is empty while gpu_node_selector_key is set")
        if self.accelerator_limit < 1:
            raise ValueError(f"accelerator_limit must be >= 1, got {self.accelerator_limit!r}")
        if self.io_retries < 0:
            raise ValueError(f"io_retries must be >= 0, got {self.io_retries!r}")

    @property
    def state_on_cache_volume(self) -> bool:
        """True when the default state_uri is a path on the cache PVC, which state steps must then mount."""
        return not self.state_uri.startswith("gs://") and self.state_uri.startswith(self.cache_mount_path)

    def requests(self, stage: StageClass) -> tuple[str, str]:
        """(cpu, memory) requests of a stage class."""
        return getattr(self, f"cpu_request_{stage.value}"), getattr(self, f"memory_request_{stage.value}")

    @classmethod
    def from_mapping(cls, values: dict[str, Any], *, where: str = "settings") -> DeploymentSettings:
        """Build from flat keys (``image`` is accepted for ``base_image``); unknown keys are errors."""
        known = {f.name for f in dataclasses.fields(cls)}
        renamed = {YAML_ALIASES.get(k, k): ("" if v is None else v) for k, v in values.items()}
        unknown = sorted(set(renamed) - known)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(known | {'image'})}")
        return cls(**renamed)

    @classmethod
    def from_yaml(cls, path: Path) -> DeploymentSettings:
        """Read a flat ``pipeline.yaml`` (see the module docstring); errors become ``CoeaInputError``."""
        path = Path(path)
        if not path.is_file():
            raise CoeaInputError("settings file not found", source=path, fix="pass e.g. k8s/base/pipeline.yaml")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if not isinstance(raw, dict):
                raise ValueError("the top level must be a mapping of flat keys")
            return cls.from_mapping(raw, where=str(path))
        except (ValueError, TypeError, yaml.YAMLError) as err:
            raise CoeaInputError(str(err), source=path, fix="see k8s/base/pipeline.yaml for the keys") from err
