"""The package layout's promise: each stage imports only from the stages below it (docs/development.md,
"Layout"), and no module imports itself through others."""

import ast
from pathlib import Path

import reranker

ROOT = Path(reranker.__file__).parent
# Folder → the folders (besides itself) its modules may import from.
ALLOWED = {
    "core": set(),
    "model": {"core"},
    "scoring": {"core", "model"},
    "evaluation": {"core", "model", "scoring"},
    "preparation": {"core", "model", "scoring"},
    "training": {"core", "model", "scoring", "evaluation"},
    "serving": {"core", "model", "scoring"},
}


def imported_names(path: Path) -> set[str]:
    """The dotted names a module imports, at top level, inside functions or for type checking alone
    (``from a.b import c`` gives ``a.b`` and ``a.b.c``: ``c`` may be a module)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return names


def imported_folders(path: Path) -> set[str]:
    """The ``reranker.<folder>`` packages a module imports, at top level or inside functions."""
    folders = set()
    for name in imported_names(path):
        parts = name.split(".")
        if parts[0] == "reranker" and len(parts) > 1 and parts[1] in ALLOWED:
            folders.add(parts[1])
    return folders


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_folder_imports_only_downward():
    wrong = []
    for folder, allowed in ALLOWED.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            upward = imported_folders(path) - allowed - {folder}
            if upward:
                wrong.append(f"{path.relative_to(ROOT)} imports {sorted(upward)}")
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_an_import_inside_a_function(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from reranker.serving.inference import Reranker\n", encoding="utf-8")
    assert imported_folders(module) == {"serving"}


def test_no_module_imports_itself_through_others():
    modules = {module_name(path): path for path in ROOT.rglob("*.py")}
    imports = {name: imported_names(path) & set(modules) - {name} for name, path in modules.items()}
    circles = []
    for start in sorted(modules):
        # Every module reachable from ``start``; a circle when ``start`` is among them.
        seen, todo = set(), list(imports[start])
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo += imports[name]
        if start in seen:
            circles.append(start)
    assert not circles, f"modules on an import circle: {circles}"


def test_one_thing_is_called_scoring():
    # The layer that scores many pairs is the package; no module elsewhere takes its name.
    named = [p for p in ROOT.rglob("scoring*") if "__pycache__" not in p.parts]
    assert sorted(str(p.relative_to(ROOT)) for p in named) == ["scoring"]
