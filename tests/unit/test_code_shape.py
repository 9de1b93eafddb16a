"""The shape rules of ../shared/GUIDE.md, checked on the source with ``ast``: modules under 400 lines, functions
under 50, no private name (``_x``) imported from another module of ours, and the library's imports only go
downwards: cli -> flow/ablate -> stages/state/report -> evaluation -> pco -> dsie/llm/store/drift -> data/config/utils.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import REPO

OURS = ("coea", "components", "pipelines")
FILES = sorted(p for root in ("src/coea", "components", "pipelines") for p in (REPO / root).rglob("*.py"))
MAX_MODULE, MAX_FUNCTION = 400, 50

# Layer of a library module (longest matching prefix wins); an import may only name the same or a lower layer.
LAYERS: dict[str, int] = {
    "coea": 0, "coea.errors": 0, "coea.utils": 0, "coea.config": 0, "coea.device": 0, "coea.layout": 0, "coea.data": 0,
    "coea.dsie.config": 0, "coea.llm.config": 0, "coea.llm.sft_config": 0, "coea.llm.dpo_config": 0,
    "coea.pco.config": 0, "coea.dsie.short_term": 0,  # short-term sets: a pure function of the log (the split's)
    "coea.dsie": 1, "coea.llm": 1, "coea.store": 1, "coea.drift": 1,
    "coea.pco": 2,
    "coea.evaluation": 3,
    "coea.stages": 4, "coea.state": 4, "coea.state_backends": 4, "coea.report_html": 4,
    "coea.flow": 5, "coea.ablate": 5,
    "coea.cli": 6,
}


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO / "src" if "src" in path.parts else REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int | None:
    hits = [k for k in LAYERS if module == k or module.startswith(k + ".")]
    return LAYERS[max(hits, key=len)] if hits else None


def imported(tree: ast.AST) -> list[tuple[str, list[str], int]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names], node.lineno))
    return out


@pytest.mark.parametrize("path", FILES, ids=rel)
def test_module_and_function_sizes(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_MODULE, f"{rel(path)}: {len(text.splitlines())} lines > {MAX_MODULE}"
    long = [(n.name, n.lineno, n.end_lineno - n.lineno + 1) for n in ast.walk(ast.parse(text))
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.end_lineno - n.lineno + 1 > MAX_FUNCTION]
    assert not long, f"{rel(path)}: functions over {MAX_FUNCTION} lines (name, line, length): {long}"


@pytest.mark.parametrize("path", FILES, ids=rel)
def test_no_private_name_imported_across_modules(path: Path) -> None:
    bad = [(m, n, line) for m, names, line in imported(ast.parse(path.read_text(encoding="utf-8")))
           if m.split(".")[0] in OURS for n in names if n.startswith("_")]
    assert not bad, f"{rel(path)} imports private names (module, name, line): {bad}"


LIBRARY = [p for p in FILES if "src" in p.parts]


@pytest.mark.parametrize("path", LIBRARY, ids=rel)
def test_library_imports_only_go_downwards(path: Path) -> None:
    own = layer(module_name(path))
    assert own is not None, f"{rel(path)} ({module_name(path)}) has no layer in LAYERS: add it"
    up = [(m, line) for m, _, line in imported(ast.parse(path.read_text(encoding="utf-8")))
          if m.startswith("coea") and (layer(m) or 0) > own]
    assert not up, f"{rel(path)} (layer {own}) imports upwards (module, line): {up}"


def test_the_rules_catch_a_planted_violation(tmp_path: Path) -> None:
    tree = ast.parse("from coea.stages import run_recommend\nfrom coea.llm.sft import _LogLines\n")
    got = imported(tree)
    assert layer("coea.pco.loop") == 2 and layer(got[0][0]) == 4  # pco importing stages would be flagged
    assert got[1][1] == ["_LogLines"]
