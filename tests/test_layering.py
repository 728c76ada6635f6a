"""The import rules of DESIGN.md ("Imports flow one way"), checked on the source of every module, imports inside
functions included:

| package   | never imports                                        |
| hardware/ | robot, sim, policies                                 |
| policies/ | hardware, sim, robot                                 |
| robot/    | sim (only robot/cli.py, the composition root, may)   |
| sim/      | policies                                             |
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hardware", "policies", "robot", "sim")
FORBIDDEN = {
    "hardware": {"robot", "sim", "policies"},
    "policies": {"hardware", "sim", "robot"},
    "robot": {"sim"},
    "sim": {"policies"},
}
EXEMPT = {("robot/cli.py", "sim")}  # the composition root


def _modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def _package_of(path: Path, root: Path) -> list[str]:
    """The package that holds ``path`` (for relative imports): sim/feetech/x.py -> ["sim", "feetech"]."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return parts[:-1]  # sim/feetech/__init__.py -> ["sim", "feetech"] as well


def imported_packages(path: Path, root: Path = ROOT) -> set[tuple[str, int]]:
    """(top-level package, line) of every import in ``path``: module level, in functions, in ``if`` blocks alike;
    relative imports resolved against the module's own package; ``importlib.import_module("x")`` and
    ``__import__("x")`` with a literal name count too."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[tuple[str, int]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update((alias.name.split(".")[0], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(path, root)
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                dotted = [*base, *(node.module.split(".") if node.module else [])]
                found.add((dotted[0] if dotted else "", node.lineno))
            elif node.module:
                found.add((node.module.split(".")[0], node.lineno))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in (
            "import_module",
            "__import__",
        ):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.add((node.args[0].value.split(".")[0], node.lineno))
    return found


def violations(package: str) -> list[str]:
    out = []
    for path in _modules(package):
        rel = path.relative_to(ROOT).as_posix()
        for top, line in sorted(imported_packages(path)):
            if top in FORBIDDEN[package] and (rel, top) not in EXEMPT:
                out.append(f"{rel}:{line} imports {top}")
    return out


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_flow_one_way(package):
    assert _modules(package), f"no modules found under {package}/"
    assert violations(package) == []


def test_the_checker_sees_imports_in_functions_and_relative_ones(tmp_path):
    pkg = tmp_path / "sim" / "sub"
    pkg.mkdir(parents=True)
    mod = pkg / "m.py"
    mod.write_text(
        "import numpy\n"
        "def f():\n"
        "    from policies.base import ActionChunk\n"
        "    if True:\n"
        "        import policies.runtime as rt\n"
        "from .. import tasks\n"
        "from . import y\n"
        "importlib.import_module('policies.vla')\n"
    )
    found = imported_packages(mod, tmp_path)
    assert {("numpy", 1), ("policies", 3), ("policies", 5), ("sim", 6), ("sim", 7), ("policies", 8)} <= found
    init = tmp_path / "policies" / "__init__.py"
    init.parent.mkdir()
    init.write_text("from .base import X\nfrom ..sim import envs\n")
    assert imported_packages(init, tmp_path) == {("policies", 1), ("sim", 2)}  # beyond the package: flagged
