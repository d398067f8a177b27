"""Layers point down: `contracts` at the bottom, then `foundation`, then `streams`
(its pure rules), `projections` (read models) and `gateway`, each of those three
importing only the ones before it, with the `warroom` CLI and dev stack on top; none of
them imports what only the tests and benches use (`testing`, `tests`, `bench`). Every import
statement of every module is read (also the ones inside functions), so a lazy import
cannot hide a layer pointing up."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

OUTSIDE_THE_PRODUCT = {"testing", "tests", "harness", "bench"}
MAY_NOT_IMPORT = {
    "contracts": {"foundation", "streams", "projections", "gateway", "warroom", *OUTSIDE_THE_PRODUCT},
    "foundation": {"streams", "projections", "gateway", "warroom", *OUTSIDE_THE_PRODUCT},
    "streams": {"projections", "gateway", "warroom", *OUTSIDE_THE_PRODUCT},
    "projections": {"gateway", "warroom", *OUTSIDE_THE_PRODUCT},
    "gateway": {"warroom", *OUTSIDE_THE_PRODUCT},
    "warroom": OUTSIDE_THE_PRODUCT,
}


def imported(path: Path) -> list[tuple[int, str]]:
    """The top-level package of everything `path` imports, with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


@pytest.mark.parametrize("package", sorted(MAY_NOT_IMPORT))
def test_no_package_imports_a_layer_above_it(package: str) -> None:
    modules = sorted((ROOT / package).rglob("*.py"))
    assert modules, f"no modules in {package}"
    upward = [f"{path.relative_to(ROOT)}:{line} imports {name}"
              for path in modules for line, name in imported(path) if name in MAY_NOT_IMPORT[package]]
    assert not upward, "\n".join(upward)


def test_the_walk_sees_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from warroom.cli import main\n    import gateway.app\n")
    assert imported(module) == [(2, "warroom"), (3, "gateway")]


# Packages with import rules of their own: the top-level ones, and the parts of
# `projections` and `streams` that others import only in part.
OWN_RULES = [*MAY_NOT_IMPORT, "testing", "projections/runner", "projections/replay", "projections/history",
             "streams/correlation"]


@pytest.mark.parametrize("package", OWN_RULES)
def test_each_package_says_what_it_owns_and_may_import(package: str) -> None:
    docstring = ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text())) or ""
    assert "import" in docstring, f"{package}/__init__.py does not say what it may import"


def test_every_package_has_a_docstring() -> None:
    bare = [str(init.relative_to(ROOT)) for package in [*MAY_NOT_IMPORT, "testing"]
            for init in sorted((ROOT / package).rglob("__init__.py"))
            if not ast.get_docstring(ast.parse(init.read_text()))]
    assert not bare, f"packages that do not say what they own: {bare}"
