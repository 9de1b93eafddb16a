"""Reading compiled pipeline YAML in tests: the spec with its kfp-kubernetes platform spec, tasks, executors, and
which tasks may run at the same time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from components.settings import DeploymentSettings
from pipelines.compile import YAML_LOADER, compile_pipelines


def read_spec(path: Path) -> dict[str, Any]:
    """A compiled pipeline file as one dict: the pipeline spec with the platform spec (kfp-kubernetes, a second
    YAML document) merged in."""
    return {k: v for doc in yaml.load_all(Path(path).read_text(), Loader=YAML_LOADER) for k, v in doc.items()}


def compile_specs(tmp: Path, settings: DeploymentSettings | None = None) -> dict[str, dict[str, Any]]:
    """Pipeline name -> :func:`read_spec` of a fresh compile into ``tmp``."""
    return {name: read_spec(path) for name, path in compile_pipelines(tmp, settings).items()}


def dags(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every DAG by component name (``root`` for the root DAG): the root and each condition branch."""
    return {"root": spec["root"]["dag"], **{n: c["dag"] for n, c in spec["components"].items() if "dag" in c}}


def executor_tasks(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every task of every DAG (root and condition branches), by task name; executor tasks only."""
    return {name: task for dag in dags(spec).values() for name, task in dag["tasks"].items()
            if not task["componentRef"]["name"].startswith("comp-condition")}


def executors(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return spec["deploymentSpec"]["executors"]


def k8s_executors(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The kfp-kubernetes settings by executor name ({} when a pipeline has none)."""
    return spec.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})


def executor_of(spec: dict[str, Any], task: dict[str, Any]) -> str:
    return spec["components"][task["componentRef"]["name"]]["executorLabel"]


def ancestors(spec: dict[str, Any]) -> dict[str, set[str]]:
    """Task name -> every task that finishes before it starts: its ``dependentTasks``, and for a task inside a
    condition branch also what the branch's condition task waits for, transitively (task names are unique
    across the DAGs of a compiled pipeline)."""
    parent: dict[str, str] = {}  # task name -> the condition task whose branch DAG holds it
    direct: dict[str, set[str]] = {}
    condition_of = {task["componentRef"]["name"]: name for dag in dags(spec).values()
                    for name, task in dag["tasks"].items()}
    for comp, dag in dags(spec).items():
        for name, task in dag["tasks"].items():
            direct[name] = set(task.get("dependentTasks", []))
            if comp != "root":
                parent[name] = condition_of[comp]
    done: dict[str, set[str]] = {}

    def close(name: str) -> set[str]:
        if name not in done:
            before = direct[name] | ({parent[name]} if name in parent else set())
            done[name] = before.union(*(close(d) for d in before))
        return done[name]

    return {name: close(name) for name in direct}


def may_run_together(spec: dict[str, Any], a: str, b: str) -> bool:
    """True unless one of the two tasks waits for the other, or they sit in the two exclusive branches of one
    ``dsl.If``/``dsl.Else`` (sibling condition tasks)."""
    before = ancestors(spec)
    if a in before[b] or b in before[a]:
        return False
    conditions = {n for n in before if n.startswith("condition-") and not n.startswith("condition-branches")}
    branch_a, branch_b = (before[a] | {a}) & conditions, (before[b] | {b}) & conditions
    return not (branch_a and branch_b and branch_a.isdisjoint(branch_b))
