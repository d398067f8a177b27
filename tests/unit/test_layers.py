"""Layers point down: `contracts` at the bottom, then `foundation`, then `streams`,
`projections` and `gateway`, with the `warroom` CLI and dev stack on top; none of them
imports what only the tests and benches use (`testing`, `tests`, `bench`). Every import
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
    "streams": {"warroom", *OUTSIDE_THE_PRODUCT},
    "projections": {"warroom", *OUTSIDE_THE_PRODUCT},
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
