"""Deployment settings of the Kubeflow pipelines: image, GPU scheduling, cache volume, resources, schedule.

These are facts about a cluster, not about the model, so they live apart from the stage configs in
``coea.config``. :meth:`DeploymentSettings.from_yaml` reads a flat settings file such as ``k8s/base/pipeline.yaml``
or ``k8s/overlays/<name>/pipeline.yaml`` (``coea compile/upload/schedule --settings``; read on the machine that
compiles, never shipped to the cluster): ``state_uri``, ``image``,
``gpu_node_selector_key``, ``gpu_node_selector_value``, ``gpu_toleration_key``, ``accelerator_type``, ``cron``;
every other field of the dataclass may be given there too. An empty ``accelerator_type``, node selector key or
toleration key switches that part of GPU scheduling off (the ``cpu-dev`` overlay). Nothing here names a cloud.

This module imports neither kfp nor the rest of the pipeline code, so reading settings is cheap.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from coea.config import typed_value
from coea.config_values import read_yaml, unknown_names
from coea.errors import CoeaInputError

# Keys of k8s/*/pipeline.yaml whose names differ from the dataclass fields.
YAML_ALIASES = {"image": "base_image"}
TOLERATION_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# the steps that train or score models on a GPU (components.resources.apply_gpu); they run ``gpu_image``
GPU_STAGES = ("dsie_group", "sft_novelty", "sft_relevance", "pco_loop")
# An OCI image reference as Docker reads it: [registry[:port]/]path[:tag][@sha256:<64 hex>]
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?"
_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REF = re.compile(rf"^(?:{_DOMAIN}/)?{_PATH}(?:/{_PATH})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
                       r"(?:@sha256:[a-f0-9]{64})?$")
IMAGE_FIX = "REGISTRY/coea:TAG or REGISTRY/coea@sha256:<64 hex digits> (the digest `make images` prints)"
PIPELINE_ROOT_SCHEMES = ("gs://", "s3://", "minio://")
# Kubernetes names: a DNS-1123 subdomain (PVC, service account names; a label key's prefix), and the name part of a
# label key or a label value (<= 63 characters, alphanumeric at both ends)
DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^(?=.{1,63}$)[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
# the shortest activeDeadlineSeconds of a GPU step: its pod's deadline counts from the pod's start, so it covers
# pulling the (multi-GB) GPU image and loading the models before any training
MIN_GPU_TIMEOUT_SECONDS = 600


class StageClass(enum.StrEnum):
    """Resource class of a pipeline step; each has its own CPU/memory requests."""

    LIGHT = "light"  # data preparation, state I/O, export
    COMPUTE = "compute"  # evaluation, drift, profiles, recommendations
    TRAIN = "train"  # model training and scoring on a GPU: dsie_group, sft_*, pco_loop (GPU_STAGES)


@dataclass(frozen=True)
class DeploymentSettings:
    """Where and how the pipeline's steps run on the cluster."""

    base_image: str = "coea:latest"  # image of every step (Dockerfiles/); holds coea and kfp 2.17
    gpu_image: str = ""  # image of the GPU steps (GPU_STAGES, Dockerfiles/gpu.Dockerfile); "" = base_image
    pipeline_root: str = ""  # compiled defaultPipelineRoot (gs://, s3://, minio://); "" = the KFP server's default
    state_uri: str = "/cache/coea-state"  # default pipeline argument: local dir (PVC) or gs://bucket/prefix
    # node label of GPU nodes; "" (default) = no node selector: the GPU request (accelerator_type) alone places a GPU
    # step on a node that has one, on GKE (whose GPU nodes carry no nvidia.com/gpu.present label) as with the GPU
    # operator; set it to pick a pool or a type (cloud.google.com/gke-accelerator: nvidia-l4)
    gpu_node_selector_key: str = ""
    gpu_node_selector_value: str = ""
    gpu_toleration_key: str = "nvidia.com/gpu"  # taint key of GPU nodes ("" = no toleration)
    gpu_toleration_value: str = ""  # "" = operator Exists (any value), else operator Equal
    gpu_toleration_effect: str = "NoSchedule"
    accelerator_type: str = "nvidia.com/gpu"  # task.set_accelerator_type(...) ("" = no accelerator request)
    accelerator_limit: int = 1  # GPUs per GPU step
    cache_pvc_name: str = "coea-model-cache"  # ReadWriteOnce PVC: mounted by the state steps when state is on it
    cache_mount_path: str = "/cache"  # GPU steps get an emptyDir here (HF/torch caches), never the RWO PVC
    gpu_cache_size: str = "50Gi"  # size limit of the GPU steps' emptyDir cache
    model_pvc_name: str = ""  # ReadOnlyMany PVC with base models, on every model-loading step ("" = none)
    model_mount_path: str = "/models"  # where model_pvc_name is mounted (base_model: /models/<name>)
    cpu_request_light: str = "500m"
    memory_request_light: str = "1Gi"
    cpu_request_compute: str = "2"
    memory_request_compute: str = "4Gi"
    cpu_request_train: str = "4"
    memory_request_train: str = "16Gi"
    # "cpu,memory" limits of each class (a pod past its memory limit is OOM-killed). light holds the whole log too
    # (prepare_data peaked at 1.37 GiB at 100k users, README 'Benchmarks', scaling curve): 4Gi covers ~300k, as
    # compute's 8Gi does
    limits_light: str = "1,4Gi"
    limits_compute: str = "4,8Gi"
    limits_train: str = "8,32Gi"
    io_retries: int = 3  # retries of steps that read or write external storage
    io_retry_backoff: str = "30s"  # first wait before a retry (doubles each time)
    gpu_retries: int = 2  # retries of GPU steps (a preempted/spot node kills the pod)
    gpu_retry_backoff: str = "120s"  # first wait before a GPU retry (doubles each time)
    gpu_timeout_seconds: int = 6 * 3600  # activeDeadlineSeconds of each GPU step's pod (0 = none)
    compute_retries: int = 2  # retries of the CPU compute steps (evaluate, recommend, profiles, drift): a node
    compute_retry_backoff: str = "60s"  # drained or preempted under them, or a pod evicted (doubles each time)
    service_account: str = "coea-pipeline-runner"  # Kubernetes service account of recurring runs
    cron: str = "0 0 3 * * *"  # recurring-run schedule: 6 fields, seconds first
    experiment: str = "coea"  # KFP experiment that holds the runs
    namespace: str = ""  # KFP namespace (multi-user Kubeflow profile); "" = the client's default
    # True = the sft-relevance step reads sft-novelty's model, so runs may set llm.relevance_init: novelty (the R-LLM's
    # SFT starts from the trained N-LLM); the two SFT steps then run one after the other. False (default, for the
    # default relevance_init scratch) = they run side by side, and a run asking for novelty stops with an error
    relevance_from_novelty: bool = False

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
        if not isinstance(self.relevance_from_novelty, bool):
            raise ValueError(f"relevance_from_novelty must be true or false, got {self.relevance_from_novelty!r}")
        if self.accelerator_limit < 1:
            raise ValueError(f"accelerator_limit must be >= 1, got {self.accelerator_limit!r}")
        for name in ("io_retries", "gpu_retries", "compute_retries", "gpu_timeout_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        self._check_kubernetes_names()
        for stage in StageClass:
            if len(getattr(self, f"limits_{stage.value}").split(",")) != 2:
                raise ValueError(f"limits_{stage.value} must be 'cpu,memory' such as '8,32Gi'")
        for name in ("base_image", "gpu_image"):
            problem = image_problem(getattr(self, name)) if getattr(self, name) else None
            if problem:
                raise ValueError(f"{name}: {problem}")
        if self.model_pvc_name and (not self.model_mount_path.startswith("/") or self.model_mount_path.rstrip("/")
                                    == self.cache_mount_path.rstrip("/")):
            raise ValueError(f"model_mount_path {self.model_mount_path!r} must be an absolute path other than "
                             f"cache_mount_path {self.cache_mount_path!r} (the GPU steps' emptyDir cache is there)")
        for stage in StageClass:
            cpu, memory = (getattr(self, f"{kind}_request_{stage.value}") for kind in ("cpu", "memory"))
            limit_cpu, limit_memory = self.limits(stage)
            for name, value, pattern in ((f"cpu_request_{stage.value}", cpu, CPU_QUANTITY),
                                         (f"memory_request_{stage.value}", memory, MEMORY_QUANTITY),
                                         (f"limits_{stage.value} (cpu)", limit_cpu, CPU_QUANTITY),
                                         (f"limits_{stage.value} (memory)", limit_memory, MEMORY_QUANTITY)):
                _check_quantity(name, value, pattern)
        _check_quantity("gpu_cache_size", self.gpu_cache_size, MEMORY_QUANTITY)
        if not self.cache_mount_path.startswith("/"):
            raise ValueError(f"cache_mount_path {self.cache_mount_path!r} must be an absolute path such as /cache")
        if "://" not in self.state_uri and not self.state_uri.startswith("/"):
            raise ValueError(f"state_uri {self.state_uri!r} must be gs://BUCKET/PREFIX or an absolute path (a pod "
                             "has no working directory of yours)")
        if self.pipeline_root and pipeline_root_problem(self.pipeline_root):
            raise ValueError(f"pipeline_root {pipeline_root_problem(self.pipeline_root)}: write gs://BUCKET/PREFIX "
                             "(or s3://, minio://), or leave it empty for the KFP server's default")

    def _check_kubernetes_names(self) -> None:
        """Label keys (node selector, taint), label values and object names as Kubernetes validates them, a GPU
        deadline a step can meet and a named experiment, so a bad value fails here (compile, upload, schedule)
        rather than as an unschedulable pod, a step killed every time or a rejected run."""
        if 0 < self.gpu_timeout_seconds < MIN_GPU_TIMEOUT_SECONDS:
            raise ValueError(f"gpu_timeout_seconds {self.gpu_timeout_seconds} is below {MIN_GPU_TIMEOUT_SECONDS}: a "
                             "GPU step's pod pulls its image and loads models within that deadline and would never "
                             "finish; use 0 (no deadline) or e.g. 21600 (6 hours)")
        if not self.experiment.strip():
            raise ValueError("experiment must not be empty; leave the key out for 'coea' or name a KFP experiment")
        for name in ("gpu_node_selector_key", "gpu_toleration_key"):
            problem = label_key_problem(getattr(self, name)) if getattr(self, name) else None
            if problem:
                raise ValueError(f"{name} {getattr(self, name)!r} is not a Kubernetes label key: {problem}")
        for name in ("gpu_node_selector_value", "gpu_toleration_value"):
            value = getattr(self, name)
            if value and not LABEL_NAME.match(value):
                raise ValueError(f"{name} {value!r} is not a Kubernetes label value: at most 63 characters of "
                                 "A-Z, a-z, 0-9, '-', '_', '.', starting and ending with a letter or digit")
        if not self.cache_pvc_name and self.state_on_cache_volume:
            raise ValueError(f"cache_pvc_name is empty while state_uri {self.state_uri!r} is on the cache volume")
        for name in ("cache_pvc_name", "model_pvc_name", "service_account"):
            value = getattr(self, name)
            if value and not DNS_SUBDOMAIN.match(value):
                fixed = value.lower().replace("_", "-")
                raise ValueError(f"{name} {value!r} is not a Kubernetes object name: lower-case letters, digits, "
                                 "'-' and '.', starting and ending with a letter or digit, at most 253 characters"
                                 + (f" (e.g. {fixed!r})" if DNS_SUBDOMAIN.match(fixed) else ""))

    def image_of(self, stage: str) -> str:
        """The image of a component: ``gpu_image`` (or ``base_image`` when empty) for :data:`GPU_STAGES`."""
        return (self.gpu_image or self.base_image) if stage in GPU_STAGES else self.base_image

    @property
    def gpu_retry_window(self) -> str:
        """The GPU steps' ``backoff_max_duration``: every attempt at its full timeout plus an hour for the backoffs
        and scheduling. Argo stops retrying (and cuts a pod's deadline) once this much time has passed since the
        first attempt, and kfp's default (3600s) would forbid retrying a step preempted after an hour."""
        return f"{(self.gpu_retries + 1) * (self.gpu_timeout_seconds or 24 * 3600) + 3600}s"

    def limits(self, stage: StageClass) -> tuple[str, str]:
        """(cpu, memory) limits of a stage class."""
        cpu, memory = getattr(self, f"limits_{stage.value}").split(",")
        return cpu.strip(), memory.strip()

    @property
    def state_on_cache_volume(self) -> bool:
        """True when the default state_uri is a path on the cache PVC (the mount path or under it), which state
        steps must then mount."""
        mount = self.cache_mount_path.rstrip("/")
        return "://" not in self.state_uri and (self.state_uri.rstrip("/") == mount
                                                or self.state_uri.startswith(mount + "/"))

    def requests(self, stage: StageClass) -> tuple[str, str]:
        """(cpu, memory) requests of a stage class."""
        return getattr(self, f"cpu_request_{stage.value}"), getattr(self, f"memory_request_{stage.value}")

    @classmethod
    def from_mapping(cls, values: dict[str, Any], *, where: str = "settings") -> DeploymentSettings:
        """Build from flat keys (``image`` is accepted for ``base_image``); unknown keys are errors."""
        known = {f.name for f in dataclasses.fields(cls)}
        both = [(alias, name) for alias, name in YAML_ALIASES.items() if alias in values and name in values]
        if both:  # one would silently win over the other
            raise ValueError(f"{where}: {both[0][0]} and {both[0][1]} are the same setting; keep one")
        renamed = {YAML_ALIASES.get(k, k): ("" if v is None else v) for k, v in values.items()}
        unknown = sorted(set(renamed) - known)
        if unknown:
            raise ValueError(f"{where}: {unknown_names('key', unknown, known | {'image'})}")
        hints = typing.get_type_hints(cls)
        return cls(**{key: typed_value(f"{where}: {key}", hints[key], value) for key, value in renamed.items()})

    @classmethod
    def from_yaml(cls, path: Path) -> DeploymentSettings:
        """Read a flat ``pipeline.yaml`` (see the module docstring); errors become ``CoeaInputError``."""
        path = Path(path)
        if not path.is_file():
            raise CoeaInputError("settings file not found", source=path, fix="pass e.g. k8s/base/pipeline.yaml")
        try:
            raw = read_yaml(path) or {}  # a key given twice is an error naming it, not the last one kept
            if not isinstance(raw, dict):
                raise ValueError("the top level must be a mapping of flat keys")
            return cls.from_mapping(raw, where=str(path))
        except CoeaInputError:
            raise
        except (ValueError, TypeError, yaml.YAMLError) as err:
            raise CoeaInputError(str(err).removeprefix(f"{path}: "), source=path,
                                 fix="see k8s/base/pipeline.yaml for the keys") from err


CPU_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?m?$")  # Kubernetes CPU: "2", "0.5", "500m"
MEMORY_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?([EPTGMk]|[EPTGMK]i)?$")  # "16Gi", "512M", "1e9" is not taken


def _check_quantity(name: str, value: str, pattern: re.Pattern[str]) -> None:
    if not pattern.match(str(value).strip()):
        kind = "CPU" if pattern is CPU_QUANTITY else "memory"
        example = "'2' or '500m'" if pattern is CPU_QUANTITY else "'16Gi' or '512Mi'"
        raise ValueError(f"{name} {value!r} is not a Kubernetes {kind} quantity; write e.g. {example}")


def image_problem(ref: str) -> str | None:
    """Why ``ref`` is not an image reference (``[registry[:port]/]path[:tag][@sha256:<64 hex>]``), or None."""
    if IMAGE_REF.match(ref):
        return None
    if "@" in ref and not re.search(r"@sha256:[a-f0-9]{64}$", ref):
        return f"image {ref!r} has a malformed digest: expected @sha256: and 64 lower-case hex digits"
    return f"image {ref!r} is not a valid reference [registry[:port]/]name[:tag][@sha256:<digest>]"


def check_image(ref: str, option: str) -> str:
    """Return ``ref`` when it is an image reference, else raise ``CoeaInputError`` naming ``option``."""
    problem = image_problem(ref)
    if problem:
        raise CoeaInputError(problem, option=option, fix=IMAGE_FIX)
    return ref


def label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a Kubernetes label key (``[DNS-subdomain prefix/]name``), or None."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and not DNS_SUBDOMAIN.match(prefix):
        return f"its prefix {prefix!r} must be a DNS subdomain (lower-case letters, digits, '-', '.'), e.g. nvidia.com"
    if not LABEL_NAME.match(name):
        return (f"its name {name!r} must be at most 63 characters of A-Z, a-z, 0-9, '-', '_', '.', starting and "
                "ending with a letter or digit (e.g. nvidia.com/gpu.present)")
    return None


def pipeline_root_problem(uri: str) -> str | None:
    """Why KFP cannot store artifacts at ``uri`` (it needs gs://, s3:// or minio:// and a bucket), or None."""
    if not uri.startswith(PIPELINE_ROOT_SCHEMES):
        return f"{uri!r} must start with one of {PIPELINE_ROOT_SCHEMES}"
    if not uri.split("://", 1)[1].strip("/"):
        return f"{uri!r} names no bucket"
    return None


def check_pipeline_root(uri: str, option: str = "--pipeline-root") -> str:
    """Return ``uri`` when KFP can store artifacts there (gs://, s3://, minio://), else raise ``CoeaInputError``."""
    if pipeline_root_problem(uri):
        raise CoeaInputError(f"pipeline root {uri!r} is not an object-store URI", option=option,
                             fix="gs://BUCKET/PREFIX (or s3://, minio://): the KFP launcher writes artifacts there")
    return uri
