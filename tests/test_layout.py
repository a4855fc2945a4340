"""The package layout's promise: each stage imports only from the stages below it (docs/development.md, "Layout")."""

import ast
from pathlib import Path

import reranker

ROOT = Path(reranker.__file__).parent
# Folder → the folders (besides itself) its modules may import from.
ALLOWED = {
    "core": set(),
    "model": {"core"},
    "evaluation": {"core", "model"},
    "preparation": {"core", "model"},
    "training": {"core", "model", "evaluation"},
    "serving": {"core", "model"},
}


def imported_folders(path: Path) -> set[str]:
    """The ``reranker.<folder>`` packages a module imports, at top level or inside functions."""
    folders = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "reranker" and len(parts) > 1 and parts[1] in ALLOWED:
                folders.add(parts[1])
    return folders


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
