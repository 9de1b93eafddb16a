"""Offline subset renderer for this repository's kustomizations (validation only).

The real tool is kustomize (``kubectl kustomize DIR`` / ``kubectl apply -k DIR``). This module exists so
that tests can render ``k8s/base`` and ``k8s/overlays/*`` on machines without a kustomize or kubectl
binary (no PyPI package ships one). It implements only what our kustomization files use, and raises
``RenderError`` naming the file and the field for anything else, rather than guessing:

- ``resources``: local YAML files (multi-document) and local directories holding a kustomization
  (rendered recursively, with all their own transformers, like kustomize does).
- ``namespace``: sets ``metadata.namespace`` on namespaced objects, renames a ``Namespace`` object, and
  sets the namespace of ``ServiceAccount`` subjects of (Cluster)RoleBindings that name a ServiceAccount of
  the same kustomization (kustomize v5 behaviour).
- ``labels`` with ``pairs`` (``includeSelectors``/``includeTemplates`` false only): ``metadata.labels``.
- ``configMapGenerator`` with ``files``/``literals`` and ``behavior`` create or merge; it needs
  ``generatorOptions.disableNameSuffixHash: true`` (the content-hash suffix is not implemented).
- ``patches`` from ``path`` or inline ``patch``: strategic merge for maps (``null`` deletes a key; a list
  is replaced as a whole, and a list of maps is refused because kustomize would merge it by key) or
  JSON6902 (``add``/``remove``/``replace``/``test``) with a ``target`` selected by kind/name/namespace.
- output in kustomize's default ("legacy") kind order, then by namespace and name.

``tests/k8s/test_manifests.py`` checks that this renderer and ``kubectl kustomize`` agree whenever kubectl
is on PATH.

Usage: ``python k8s/render.py k8s/overlays/gpu-pool > rendered.yaml``
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_KEYS = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "labels",
    "generatorOptions",
    "configMapGenerator",
    "patches",
}
# Kinds that have no namespace (enough for what a kustomization of ours could hold).
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "PersistentVolume",
    "StorageClass",
    "CustomResourceDefinition",
    "PriorityClass",
    "IngressClass",
    "RuntimeClass",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
}
# kustomize's default output order (api/resid/gvk.go: orderFirst ... orderLast).
ORDER_FIRST = [
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
]
ORDER_LAST = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]


class RenderError(ValueError):
    """A kustomization this subset renderer cannot render (or that kustomize would reject)."""


def render(directory: str | Path) -> list[Doc]:
    """Render the kustomization in ``directory`` into a list of Kubernetes objects (dicts)."""
    return sorted(_build(Path(directory).resolve()), key=_sort_key)


def render_yaml(directory: str | Path) -> str:
    """Render like :func:`render` and return a multi-document YAML string."""
    return yaml.dump_all(render(directory), Dumper=_LiteralDumper, sort_keys=True, default_flow_style=False)


# ---------------------------------------------------------------------------------------------- build


def _build(directory: Path) -> list[Doc]:
    kfile = _kustomization_file(directory)
    kust = _load_yaml(kfile)
    if not isinstance(kust, dict):
        raise RenderError(f"{kfile}: expected a mapping")
    unknown = set(kust) - SUPPORTED_KEYS
    if unknown:
        raise RenderError(f"{kfile}: field(s) {sorted(unknown)} not supported by this subset renderer")

    docs: list[Doc] = []
    for entry in kust.get("resources", []):
        docs.extend(_load_resource(directory, str(entry), kfile))
    _generate_config_maps(kust, directory, kfile, docs)
    for patch in kust.get("patches", []):
        _apply_patch(patch, directory, kfile, docs)
    if "namespace" in kust:
        _set_namespace(docs, str(kust["namespace"]))
    for label_set in kust.get("labels", []):
        _add_labels(docs, label_set, kfile)
    _check_unique(docs, kfile)
    return docs


def _kustomization_file(directory: Path) -> Path:
    for name in KUSTOMIZATION_NAMES:
        if (directory / name).is_file():
            return directory / name
    raise RenderError(f"{directory}: no kustomization.yaml")


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise RenderError(f"{path}: cannot read YAML: {exc}") from exc


def _load_resource(directory: Path, entry: str, kfile: Path) -> list[Doc]:
    if "://" in entry or entry.startswith("git@"):
        raise RenderError(f"{kfile}: remote resource {entry!r} not supported")
    path = (directory / entry).resolve()
    if path.is_dir():
        return _build(path)
    if not path.is_file():
        raise RenderError(f"{kfile}: resource {entry!r} not found at {path}")
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except yaml.YAMLError as exc:
        raise RenderError(f"{path}: cannot parse YAML: {exc}") from exc
    for doc in docs:
        if not isinstance(doc, dict) or not {"apiVersion", "kind", "metadata"} <= set(doc):
            raise RenderError(f"{path}: every document needs apiVersion, kind and metadata")
    return docs


# ------------------------------------------------------------------------------------------ generators


def _generate_config_maps(kust: Doc, directory: Path, kfile: Path, docs: list[Doc]) -> None:
    generators = kust.get("configMapGenerator", [])
    if generators and not kust.get("generatorOptions", {}).get("disableNameSuffixHash", False):
        raise RenderError(
            f"{kfile}: configMapGenerator needs generatorOptions.disableNameSuffixHash: true here "
            "(the name hash suffix is not implemented by this subset renderer)"
        )
    for gen in generators:
        name = gen["name"]
        unknown = set(gen) - {"name", "namespace", "behavior", "files", "literals"}
        if unknown:
            raise RenderError(f"{kfile}: configMapGenerator {name}: {sorted(unknown)} not supported")
        data = _generator_data(gen, directory, kfile)
        behavior = gen.get("behavior", "create")
        if behavior == "create":
            meta: Doc = {"name": name}
            if "namespace" in gen:
                meta["namespace"] = gen["namespace"]
            docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data})
        elif behavior == "merge":
            matches = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name]
            if len(matches) != 1:
                raise RenderError(f"{kfile}: behavior merge needs exactly one ConfigMap {name}, got {len(matches)}")
            matches[0].setdefault("data", {}).update(data)
        else:
            raise RenderError(f"{kfile}: configMapGenerator behavior {behavior!r} not supported")


def _generator_data(gen: Doc, directory: Path, kfile: Path) -> dict[str, str]:
    data: dict[str, str] = {}
    for item in gen.get("files", []):
        key, _, rel = str(item).rpartition("=")
        path = directory / rel
        if not path.is_file():
            raise RenderError(f"{kfile}: configMapGenerator file {rel!r} not found")
        data[key or path.name] = path.read_text()
    for literal in gen.get("literals", []):
        key, sep, value = str(literal).partition("=")
        if not sep:
            raise RenderError(f"{kfile}: literal {literal!r} is not KEY=VALUE")
        data[key] = value
    return data


# --------------------------------------------------------------------------------------------- patches


def _apply_patch(entry: Doc, directory: Path, kfile: Path, docs: list[Doc]) -> None:
    if ("path" in entry) == ("patch" in entry):
        raise RenderError(f"{kfile}: a patch needs exactly one of `path` or `patch`")
    unknown = set(entry) - {"path", "patch", "target"}
    if unknown:
        raise RenderError(f"{kfile}: patch field(s) {sorted(unknown)} not supported")
    text = (directory / entry["path"]).read_text() if "path" in entry else entry["patch"]
    body = yaml.safe_load(text)
    target = entry.get("target")
    if isinstance(body, list):
        if target is None:
            raise RenderError(f"{kfile}: a JSON6902 patch needs a target")
        for doc in _select(docs, target, kfile):
            _json6902(doc, body, kfile)
    elif isinstance(body, dict):
        if target is None:
            target = {"kind": body.get("kind"), "name": body.get("metadata", {}).get("name")}
        for doc in _select(docs, target, kfile):
            _strategic_merge(doc, body, kfile)
    else:
        raise RenderError(f"{kfile}: patch is neither a map nor a list of operations")


def _select(docs: list[Doc], target: Doc, kfile: Path) -> list[Doc]:
    unknown = set(target) - {"group", "version", "kind", "name", "namespace"}
    if unknown:
        raise RenderError(f"{kfile}: patch target field(s) {sorted(unknown)} not supported")

    def matches(doc: Doc) -> bool:
        group, _, version = doc["apiVersion"].rpartition("/")
        have = {
            "group": group,
            "version": version,
            "kind": doc["kind"],
            "name": doc["metadata"].get("name", ""),
            "namespace": doc["metadata"].get("namespace", ""),
        }
        return all(re.fullmatch(str(want), have[key]) for key, want in target.items())

    selected = [d for d in docs if matches(d)]
    if not selected:
        raise RenderError(f"{kfile}: patch target {target} matches no resource")
    return selected


def _strategic_merge(doc: Doc, patch: Doc, kfile: Path) -> None:
    for key, value in patch.items():
        if str(key).startswith("$"):
            raise RenderError(f"{kfile}: strategic merge directive {key} not supported")
        if value is None:
            doc.pop(key, None)
        elif isinstance(value, dict) and isinstance(doc.get(key), dict):
            _strategic_merge(doc[key], value, kfile)
        elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
            raise RenderError(f"{kfile}: strategic merge of a list of maps ({key}) not supported; use JSON6902")
        else:
            doc[key] = copy.deepcopy(value)


def _json6902(doc: Doc, ops: list[Doc], kfile: Path) -> None:
    for op in ops:
        kind, path = op.get("op"), op.get("path", "")
        if not path.startswith("/"):
            raise RenderError(f"{kfile}: JSON6902 path {path!r} must start with /")
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]
        node: Any = doc
        try:
            for part in parents:
                node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise RenderError(f"{kfile}: JSON6902 path {path} does not exist") from exc
        if kind in ("add", "replace"):
            value = copy.deepcopy(op["value"])
            if isinstance(node, list):
                if last == "-":
                    node.append(value)
                elif kind == "add":
                    node.insert(int(last), value)
                else:
                    node[int(last)] = value
            else:
                if kind == "replace" and last not in node:
                    raise RenderError(f"{kfile}: JSON6902 replace of missing path {path}")
                node[last] = value
        elif kind == "remove":
            del node[int(last) if isinstance(node, list) else last]
        elif kind == "test":
            have = node[int(last)] if isinstance(node, list) else node.get(last)
            if have != op.get("value"):
                raise RenderError(f"{kfile}: JSON6902 test failed at {path}: {have!r} != {op.get('value')!r}")
        else:
            raise RenderError(f"{kfile}: JSON6902 op {kind!r} not supported")


# ------------------------------------------------------------------------------------------ transformers


def _set_namespace(docs: list[Doc], namespace: str) -> None:
    service_accounts = {
        (d["metadata"]["name"], d["metadata"].get("namespace") or "default")
        for d in docs
        if d["kind"] == "ServiceAccount"
    }
    for doc in docs:
        if doc["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            for subject in doc.get("subjects", []):
                key = (subject.get("name"), subject.get("namespace") or "default")
                if subject.get("kind") == "ServiceAccount" and key in service_accounts:
                    subject["namespace"] = namespace
    for doc in docs:
        if doc["kind"] == "Namespace":
            doc["metadata"]["name"] = namespace
        elif doc["kind"] not in CLUSTER_SCOPED:
            doc["metadata"]["namespace"] = namespace


def _add_labels(docs: list[Doc], label_set: Doc, kfile: Path) -> None:
    if label_set.get("includeSelectors") or label_set.get("includeTemplates"):
        raise RenderError(f"{kfile}: labels with includeSelectors/includeTemplates not supported")
    unknown = set(label_set) - {"pairs", "includeSelectors", "includeTemplates"}
    if unknown:
        raise RenderError(f"{kfile}: labels field(s) {sorted(unknown)} not supported")
    for doc in docs:
        labels = doc["metadata"].get("labels") or {}
        labels.update({str(k): str(v) for k, v in label_set.get("pairs", {}).items()})
        doc["metadata"]["labels"] = labels


def _check_unique(docs: list[Doc], kfile: Path) -> None:
    seen: set[tuple[str, str, str, str]] = set()
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"])
        if key in seen:
            raise RenderError(f"{kfile}: duplicate resource {key}")
        seen.add(key)


def _sort_key(doc: Doc) -> tuple[int, str, str, str]:
    kind = doc["kind"]
    if kind in ORDER_FIRST:
        rank = ORDER_FIRST.index(kind)
    elif kind in ORDER_LAST:
        rank = len(ORDER_FIRST) + 1 + ORDER_LAST.index(kind)
    else:
        rank = len(ORDER_FIRST)
    gvk = f"{doc['apiVersion']}/{kind}" if rank == len(ORDER_FIRST) else ""
    return rank, gvk, doc["metadata"].get("namespace", ""), doc["metadata"]["name"]


class _LiteralDumper(yaml.SafeDumper):
    """Dumps multi-line strings (the ConfigMap's file) as YAML block literals."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _represent_str)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", help="a folder holding kustomization.yaml, e.g. k8s/overlays/gpu-pool")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(render_yaml(args.directory))
    except RenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
