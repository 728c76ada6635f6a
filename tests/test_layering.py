"""The import rules of docs/design.md ("Imports flow one way"), checked on the source of every module, imports inside
functions included, at folder level and at file level:

| package    | may import                                                   |
| hardware/  | nothing of ours                                              |
| policies/  | nothing of ours                                              |
| robot/     | hardware, policies                                           |
| sim/       | hardware, robot, and the numpy-only policy seam policies.base |
| onboard/   | everything (the one composition root); nothing imports it    |

and no two files import each other, directly or through others (no file circle). The LeRobot plugins in plugins/
build on one layer each (the policy plugin on policies, the camera plugin on hardware) and nothing of ours imports them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hardware", "policies", "robot", "sim", "onboard")
ALLOWED: dict[str, set[str]] = {
    "hardware": set(),
    "policies": set(),
    "robot": {"hardware", "policies"},
    "sim": {"hardware", "robot", "policies.base"},
    "onboard": {"hardware", "policies", "robot", "sim"},
}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules(root: Path = ROOT) -> dict[str, Path]:
    return {
        module_name(p, root): p
        for package in PACKAGES
        for p in sorted((root / package).rglob("*.py"))
        if "__pycache__" not in p.parts and "bundled" not in p.parts
    }


def imported_names(path: Path, root: Path = ROOT) -> set[tuple[str, int]]:
    """(dotted name, line) of every import in ``path``: module level, in functions, in ``if`` blocks alike; relative
    imports resolved against the module's own package; ``from X import Y`` gives ``X.Y`` (a submodule or a name in X;
    ``resolve`` tells which); ``importlib.import_module("x")`` and ``__import__("x")`` with a literal name count too."""
    tree = ast.parse(path.read_text(), filename=str(path))
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[tuple[str, int]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.update((f"{module}.{alias.name}" if module else alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in (
            "import_module",
            "__import__",
        ):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.add((node.args[0].value, node.lineno))
    return found


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module of ours that importing ``name`` names: the longest dotted prefix that is a module (``sim.tasks.X``
    -> ``sim.tasks``); None for third-party names."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def import_graph(root: Path = ROOT) -> dict[str, dict[str, int]]:
    """module -> {module of ours it imports: first line}."""
    modules = all_modules(root)
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges: dict[str, int] = {}
        for imported, line in sorted(imported_names(path, root), key=lambda x: x[1]):
            target = resolve(imported, modules)
            if target is not None and target != name:
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


def allowed(source: str, target: str) -> bool:
    src, dst = source.split(".")[0], target.split(".")[0]
    if src == dst:
        return True
    return any(target == rule or target.startswith(rule + ".") for rule in ALLOWED[src])


def violations(graph: dict[str, dict[str, int]], modules: dict[str, Path], root: Path = ROOT) -> list[str]:
    return [
        f"{modules[src].relative_to(root).as_posix()}:{line} imports {dst}"
        for src, edges in sorted(graph.items())
        for dst, line in edges.items()
        if not allowed(src, dst)
    ]


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def folder_graph(graph: dict[str, dict[str, int]]) -> dict[str, set[str]]:
    folders: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for src, edges in graph.items():
        for dst in edges:
            if src.split(".")[0] != dst.split(".")[0]:
                folders[src.split(".")[0]].add(dst.split(".")[0])
    return folders


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_every_package_has_modules():
    modules = all_modules()
    for package in PACKAGES:
        assert any(m.split(".")[0] == package for m in modules), f"no modules found under {package}/"


def test_file_imports_follow_the_rules(graph):
    assert violations(graph, all_modules()) == []


def test_no_folder_circle(graph):
    folders = folder_graph(graph)
    assert cycles({k: dict.fromkeys(v, 0) for k, v in folders.items()}) == []
    assert not any("onboard" in deps for deps in folders.values()), "nothing imports onboard/"


def test_no_file_circle(graph):
    assert cycles(graph) == []


def test_the_checker_sees_imports_in_functions_and_relative_ones(tmp_path):
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "sim" / "sub").mkdir()
    (tmp_path / "sim" / "sub" / "__init__.py").write_text("")
    (tmp_path / "sim" / "tasks.py").write_text("")
    (tmp_path / "policies" / "base.py").write_text("")
    (tmp_path / "policies" / "runtime.py").write_text("")
    (tmp_path / "sim" / "sub" / "m.py").write_text(
        "import numpy\n"
        "def f():\n"
        "    from policies.base import ActionChunk\n"
        "    if True:\n"
        "        import policies.runtime as rt\n"
        "from .. import tasks\n"
        "from . import y\n"
        "importlib.import_module('onboard')\n"
    )
    g = import_graph(tmp_path)
    assert g["sim.sub.m"] == {"policies.base": 3, "policies.runtime": 5, "sim.tasks": 6, "sim.sub": 7, "onboard": 8}
    assert violations(g, all_modules(tmp_path), tmp_path) == [
        "sim/sub/m.py:5 imports policies.runtime",
        "sim/sub/m.py:8 imports onboard",
    ]


# plugins/<distribution>/<package>: LeRobot plugins (dev install only), built on one layer of ours each
PLUGINS: dict[str, set[str]] = {"lerobot_policy_onboard": {"policies"}, "lerobot_camera_onboard": {"hardware"}}


def test_plugins_build_on_their_layer_and_nothing_of_ours_imports_them():
    for package, may in PLUGINS.items():
        folder = ROOT / "plugins" / package
        files = sorted((folder / package).rglob("*.py"))
        assert files, f"no modules under {folder / package}"
        for path in files:
            for name, line in imported_names(path, folder):
                top = name.split(".")[0]
                assert top not in PACKAGES or top in may, f"{path.relative_to(ROOT)}:{line} imports {name}"
    for path in all_modules().values():
        for name, line in imported_names(path):
            assert name.split(".")[0] not in PLUGINS, f"{path.relative_to(ROOT)}:{line} imports {name}"


def test_the_checker_finds_a_file_circle():
    assert cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []


BLOCK_TORCH = textwrap.dedent(
    """
    import importlib.abc, sys

    class _NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch.") or name in ("lerobot", "ray"):
                raise ImportError(f"{name} is blocked in this test (the runtime install has no torch)")
            return None

    sys.meta_path.insert(0, _NoTorch())
    """
)


def test_the_runtime_path_imports_without_torch_and_without_the_recorder():
    """`onboard run` (its CLI module, the run loop and the ONNX backend) imports with torch blocked, and loads
    neither the dataset writer nor PyAV/pyarrow: the run path does not carry the recorder."""
    code = BLOCK_TORCH + textwrap.dedent(
        """
        import onboard.cli, onboard.cli.run, robot.run, policies.onnx_policy
        parser = onboard.cli.build_parser()
        parser.parse_args(["run", "--robot.port=sim", "--policy.path=x"])
        heavy = sorted(m for m in ("policies.dataset.writer", "av", "pyarrow", "torch") if m in sys.modules)
        print("loaded:", heavy)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "loaded: []" in out.stdout, out.stdout
