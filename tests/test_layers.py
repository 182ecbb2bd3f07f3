"""The import contract (ARCHITECTURE.md): spec <- compiler <- runtime <- llmspec (CLI/API).

Checked on the source with `ast`, so it holds for imports inside functions too (where the
heavy ones live), and no private name crosses from one package into another."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# folder -> the package it installs as (pyproject's package-dir)
PACKAGES = {"spec": "llmspec.spec", "compiler": "llmspec.compiler", "runtime": "llmspec.runtime",
            "recipes": "llmspec.recipes", "llmspec": "llmspec"}
LAYER = {"llmspec.spec": 0, "llmspec.recipes": 0, "llmspec.compiler": 1, "llmspec.runtime": 2, "llmspec": 3}
# Never on the validate path (spec/), whatever the function.
HEAVY = ("polars", "numpy", "numba", "torch", "transformers", "axolotl", "peft", "datasets", "rensa", "pyarrow")


def _modules(root: Path):
    for folder, package in PACKAGES.items():
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            yield path, ".".join([package, *parts]), path.name == "__init__.py"


def _layer_of(module: str) -> tuple[str, int] | None:
    best = None
    for pkg, layer in LAYER.items():
        if module == pkg or module.startswith(pkg + "."):
            if best is None or len(pkg) > len(best[0]):
                best = (pkg, layer)
    return best


def _imports(path: Path, module: str, is_package: bool):
    """(imported module, imported names, line) for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    base = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target, [a.name for a in node.names], node.lineno


def _violations(root: Path = ROOT):
    out = []
    for path, module, is_package in _modules(root):
        own = _layer_of(module)
        for target, names, line in _imports(path, module, is_package):
            where = f"{path.relative_to(root)}:{line}"
            other = _layer_of(target)
            if own[0] == "llmspec.spec" and target.split(".")[0] in HEAVY:
                out.append(f"{where}: spec imports {target} (heavy: validate must stay light)")
            if other is None:
                continue
            if other[1] > own[1]:
                out.append(f"{where}: {module} ({own[0]}) imports {target} ({other[0]}), a higher layer")
            if other[0] != own[0] or not target.startswith(module.rsplit(".", 1)[0]):
                # A private name may be used inside its own package folder only.
                own_pkg = module.split(".")[:3]
                tgt_pkg = target.split(".")[:3]
                if own_pkg != tgt_pkg:
                    for name in names:
                        if name.startswith("_") and not name.startswith("__"):
                            out.append(f"{where}: {module} imports private {target}.{name}")
    return out


def test_imports_point_one_way_and_no_private_name_crosses_a_package():
    assert _violations() == []


@pytest.mark.parametrize("folder, source, expected", [
    ("spec", "from llmspec.runtime.engine.state import State", "a higher layer"),
    ("compiler", "from llmspec.runtime.clean import kernels", "a higher layer"),
    ("spec", "import polars", "heavy"),
    ("runtime", "from llmspec.compiler.cleaning import _targets", "private"),
])
def test_the_contract_catches_a_violation(tmp_path, folder, source, expected):
    # The checker must see each kind of bad import (inside a function too), or the test above proves nothing.
    for name in PACKAGES:
        (tmp_path / name).mkdir()
    (tmp_path / folder / "bad.py").write_text(f"def f():\n    {source}\n")
    found = _violations(tmp_path)
    assert any(expected in v for v in found), found


def test_runtime_is_grouped_by_stage():
    # A flat runtime/ was the old shape: modules belong in their stage's folder.
    flat = sorted(p.name for p in (ROOT / "runtime").glob("*.py") if p.name != "__init__.py")
    assert flat == []
