"""The documentation names only what exists.

README.md, docs/*.md and benchmarks/README.md are read as Markdown: inline code spans, fenced code blocks and
links. Every repository path written in code (relative to the checkout, to the ``reranker`` package, or a bare
script or config file name), every ``reranker.x.y`` module (and the name after it), every config choice
(``experiment=NAME``, ``override /group: NAME``, the options column of a ``group/`` table), every
``reranker <command>`` / ``reranker prepare <subcommand>`` with its ``--options``, every ``make`` target and
every relative link with its ``#anchor`` must exist. Placeholders (``<time>``, ``NAME``, ``...``) are skipped.
Options come from each command's own ``--help``, run in this process.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from reranker import cli

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "reranker"
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "benchmarks" / "README.md"]
# Top-level entries of the checkout a documented path may start with; others (data/, outputs/) are the user's.
ROOTS = {"reranker", "conf", "tests", "benchmarks", "experiments", "slurm", "scripts", "docs", "Makefile"}
# Documented paths that a checkout does not hold: they exist once installed or built.
NOT_IN_CHECKOUT = {
    "reranker/conf": "conf/ as the wheel installs it",
    "benchmarks/work/me5-small": "written by benchmarks/setup.py",
}
# A bare file name with one of these endings names a file of the repository.
SCRIPT_SUFFIXES = (".py", ".sh", ".sbatch", ".yaml")
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console"}
# <time>, {a,b}, $VAR, ..., and an upper-case name (NAME.py, DIR/onnx, OUT.shards) that is not README.
PLACEHOLDER = re.compile(r"[<>*{}$…]|\.\.\.|(^|/)(?!README\.)[A-Z][A-Z0-9_]*(\.|/|$)")
TOKEN = re.compile(r"[^\s`'\"()\[\],;=|]+")
SPAN = re.compile(r"`([^`]+)`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
MODULE = re.compile(r"(?<![\w./-])reranker(?:\.[A-Za-z_]\w*)+")
FROM_IMPORT = re.compile(r"^\s*from (reranker(?:\.\w+)*) import ([\w, ]+)")
CONFIG_CHOICE = re.compile(r"(?<![\w./+-])\+?((?:[a-z_]+/)*[a-z_]+)=([\w./-]+)")
OVERRIDE = re.compile(r"override /([\w/]+): *([\w.-]+)")
GROUP_ROW = re.compile(r"^\|\s*`([\w/]+)/`\s*\|([^|]*)\|")
OPTION = re.compile(r"(?<![\w-])--[A-Za-z][\w-]*")
FILE_TAILS = {"json", "jsonl", "md", "yaml", "py", "txt", "ckpt"}


@dataclass
class Page:
    """A Markdown page split into what the checks read, each piece with its line number."""

    path: Path
    spans: list[tuple[int, str]] = field(default_factory=list)  # inline code, a span across lines joined
    code: list[tuple[int, str, str]] = field(default_factory=list)  # (line, fence language, text)
    prose: list[tuple[int, str]] = field(default_factory=list)  # lines outside fences

    def where(self, line: int) -> str:
        return f"{self.path.relative_to(REPO)}:{line}"


@cache
def page_at(path: Path) -> Page:
    return read_page(path, path.read_text(encoding="utf-8"))


def read_page(path: Path, text: str) -> Page:
    page = Page(path)
    language = None  # None: outside a fence
    paragraph: list[tuple[int, str]] = []  # prose lines since the last blank line or fence
    for number, line in enumerate([*text.splitlines(), ""], start=1):
        fence = line.lstrip().startswith("```")
        if language is None and line.strip() and not fence:
            page.prose.append((number, line))
            paragraph.append((number, line))
            continue
        if paragraph:
            joined = "\n".join(text for _, text in paragraph)
            for match in SPAN.finditer(joined):
                start = paragraph[0][0] + joined.count("\n", 0, match.start())
                page.spans.append((start, match.group(1).replace("\n", " ")))
            paragraph = []
        if fence:
            language = line.strip()[3:].strip() if language is None else None
        elif language is not None:
            page.code.append((number, language, line))
    return page


def shell_lines(page: Page) -> list[tuple[int, str]]:
    """Logical lines of the shell blocks (continuations joined, comments dropped)."""
    result, pending, start = [], "", 0
    for number, language, line in page.code:
        if language not in SHELL_LANGUAGES:
            continue
        line = re.sub(r"(^|\s)#.*$", "", line)
        start = start if pending else number
        pending += " " + line.rstrip().removesuffix("\\")
        if not line.rstrip().endswith("\\"):
            result.append((start, pending.strip()))
            pending = ""
    return result


def code_texts(page: Page) -> list[tuple[int, str]]:
    return [*page.spans, *((number, line) for number, _, line in page.code)]


@cache
def repository_file_names() -> frozenset[str]:
    skip = {"__pycache__", "work", "outputs"}
    names = set()
    for root in ROOTS:
        for path in (REPO / root).rglob("*") if (REPO / root).is_dir() else []:
            if not skip.intersection(path.relative_to(REPO).parts):
                names.add(path.name)
    return frozenset(names)


def path_problem(token: str) -> str | None:
    token = token.rstrip(".:")
    if "://" in token or token.startswith("/") or PLACEHOLDER.search(token):
        return None
    first = token.split("/")[0]
    if "/" not in token:
        if token.endswith(SCRIPT_SUFFIXES) and token not in repository_file_names():
            return f"no file named {token} in the repository"
        return None
    if token.rstrip("/") in NOT_IN_CHECKOUT:
        return None
    if first in ROOTS:
        return None if (REPO / token).exists() else f"no {token} in the repository"
    if first not in (".", "..") and (PACKAGE / first).is_dir():
        return None if (PACKAGE / token).exists() else f"no {token} in reranker/"
    return None


def path_problems(page: Page) -> list[str]:
    return [
        f"{page.where(line)}: {problem}"
        for line, text in code_texts(page)
        for token in TOKEN.findall(text)
        if (problem := path_problem(token))
    ]


def heading_anchors(page: Page) -> set[str]:
    """GitHub's anchors of the page's headings (lower case, punctuation dropped, spaces as hyphens)."""
    anchors, seen = set(), {}
    for _, line in page.prose:
        if match := re.match(r"#+\s+(.*)", line):
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return anchors


def link_problems(page: Page) -> list[str]:
    problems = []
    for line, text in page.prose:
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.path.parent / path).resolve() if path else page.path
            if not resolved.exists():
                problems.append(f"{page.where(line)}: link to a missing {path}")
            elif anchor and resolved.suffix == ".md" and anchor not in heading_anchors(page_at(resolved)):
                problems.append(f"{page.where(line)}: no heading #{anchor} in {path or page.path.name}")
    return problems


@cache
def module_names(path: Path) -> frozenset[str]:
    """The names a module defines or imports at any level, and those of its ``__all__``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(target.id for target in targets if isinstance(target, ast.Name))
            if any(isinstance(target, ast.Name) and target.id == "__all__" for target in targets):
                names.update(ast.literal_eval(node.value))
    return frozenset(names)


def module_problem(dotted: str) -> str | None:
    """``reranker.a.b[.name]``: each part a package or module, the first part that is neither a name in it."""
    parts, folder, module = dotted.split(".")[1:], PACKAGE, PACKAGE / "__init__.py"
    for index, part in enumerate(parts):
        if module.name == "__init__.py" and (folder / part / "__init__.py").exists():
            folder, module = folder / part, folder / part / "__init__.py"
        elif module.name == "__init__.py" and (folder / f"{part}.py").exists():
            module = folder / f"{part}.py"
        elif index == len(parts) - 1 and part in FILE_TAILS:
            return None  # a file name such as reranker.json
        elif part in module_names(module):
            return None
        else:
            return f"{dotted}: no module or name {part!r} in {module.relative_to(REPO)}"
    return None


def module_problems(page: Page) -> list[str]:
    problems = []
    for line, language, text in [(number, "", text) for number, text in page.prose] + page.code:
        # In Python a name such as `reranker.rerank(...)` is a variable: only its imports name modules.
        dotted = MODULE.findall(text) if language != "python" else []
        if match := FROM_IMPORT.match(text):
            dotted += [f"{match.group(1)}.{name.strip()}" for name in match.group(2).split(",")]
        problems += [f"{page.where(line)}: {problem}" for name in dotted if (problem := module_problem(name))]
    return problems


@cache
def config_groups() -> frozenset[str]:
    conf = REPO / "conf"
    return frozenset(
        str(path.parent.relative_to(conf)) for path in conf.rglob("*.yaml") if path.parent != conf
    )


def config_choices(page: Page) -> list[tuple[int, str, str]]:
    """(line, group, name) for each config choice the page names; a user's own --config-dir is not ours."""
    choices = []
    for line, text in code_texts(page):
        if "--config-dir" not in text and "searchpath" not in text:
            choices += [(line, *match) for match in CONFIG_CHOICE.findall(text)]
            choices += [(line, *match) for match in OVERRIDE.findall(text)]
    for line, text in page.prose:
        if row := GROUP_ROW.match(text):
            choices += [(line, row.group(1), name) for name in SPAN.findall(row.group(2))]
    return choices


def config_problems(page: Page) -> list[str]:
    return [
        f"{page.where(line)}: no conf/{group}/{name}.yaml"
        for line, group, name in config_choices(page)
        if group in config_groups()
        and name != "null"
        and not PLACEHOLDER.search(name)
        and not (REPO / "conf" / group / f"{name}.yaml").exists()
    ]


@cache
def command_options(command: str, subcommand: str | None) -> frozenset[str]:
    """The options a command's ``--help`` lists, run in this process; ``train`` takes Hydra's."""
    if command == "train":
        from hydra._internal.utils import get_args_parser

        # Hydra's --help needs the composed app; its parser lists the same flags.
        return frozenset(s for action in get_args_parser()._actions for s in action.option_strings)
    output = io.StringIO()
    main = importlib.import_module(cli.COMMANDS[command][0]).main
    with contextlib.redirect_stdout(output), pytest.raises(SystemExit):
        main([*([subcommand] if subcommand else []), "--help"])
    return frozenset(OPTION.findall(output.getvalue()))


@cache
def prepare_subcommands() -> frozenset[str]:
    from reranker.preparation.prepare import COMMANDS

    return frozenset(COMMANDS)


def invocations(page: Page) -> list[tuple[int, str]]:
    """Each ``reranker ...`` command line of a shell block or a code span (a span may say ``prepare ...``)."""
    found = []
    for line, text in shell_lines(page):
        found += [(line, match) for match in re.findall(r"(?:^|[\s;&(])(reranker\s+[^;&|]*)", text)]
    for line, text in page.spans:
        if re.match(r"(reranker|prepare)\s+[a-z]", text):
            found.append((line, text if text.startswith("reranker") else f"reranker {text}"))
    return found


def invocation_problem(text: str) -> list[str]:
    words = text.split()
    command = words[1] if len(words) > 1 else ""
    if not re.fullmatch(r"[a-z]+", command):
        return []  # reranker --help, reranker <command>
    if command not in cli.COMMANDS:
        return [f"no command {command!r}"]
    subcommand = None
    if command == "prepare" and len(words) > 2 and re.fullmatch(r"[a-z]+", words[2]):
        subcommand = words[2]
        if subcommand not in prepare_subcommands():
            return [f"no prepare subcommand {subcommand!r}"]
    known = command_options(command, subcommand)
    name = " ".join(filter(None, [command, subcommand]))
    return [f"{name} has no option {option}" for option in OPTION.findall(text) if option not in known]


def command_problems(page: Page) -> list[str]:
    return [
        f"{page.where(line)}: {problem}"
        for line, text in invocations(page)
        for problem in invocation_problem(text)
    ]


@cache
def make_targets() -> frozenset[str]:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    variables = dict(re.findall(r"^(\w+)\s*[:?]?=\s*(\S+)", text, re.MULTILINE))
    names = " ".join(re.findall(r"^([^\s#:=][^:=]*):(?!=)", text, re.MULTILINE)).split()
    return frozenset(
        re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), m.group(0)), n) for n in names
    )


def make_problems(page: Page) -> list[str]:
    return [
        f"{page.where(line)}: no make target {target}"
        for line, text in code_texts(page)
        for target in re.findall(r"(?:^|\s)make\s+([\w./-]+)", text)
        if target not in make_targets()
    ]


CHECKS = [path_problems, link_problems, module_problems, config_problems, command_problems, make_problems]


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_documentation_names_what_exists(check) -> None:
    problems = [problem for path in PAGES for problem in check(page_at(path))]
    assert not problems, "\n".join(problems)


BAD_PAGE = """See `reranker/serving/fusion.py` and [training](training.md#no-such-heading) (`DIR/onnx/README.md`, `experiments/x/README.md`).

```python
from reranker.model.fusion import Fusion, Mixer
```

```bash
reranker train experiment=no_such_experiment
reranker evaluate data.jsonl --no-such-option
reranker prepare minify --out x
reranker serve model/
make no-such-target
```
"""


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        (
            path_problems,
            "docs/bad.md:1: no reranker/serving/fusion.py in the repository\n"
            "docs/bad.md:1: no experiments/x/README.md in the repository",
        ),
        (link_problems, "docs/bad.md:1: no heading #no-such-heading in training.md"),
        (
            module_problems,
            "docs/bad.md:4: reranker.model.fusion.Mixer: no module or name 'Mixer' in reranker/model/fusion.py",
        ),
        (config_problems, "docs/bad.md:8: no conf/experiment/no_such_experiment.yaml"),
        (
            command_problems,
            "docs/bad.md:9: evaluate has no option --no-such-option\n"
            "docs/bad.md:10: no prepare subcommand 'minify'\n"
            "docs/bad.md:11: no command 'serve'",
        ),
        (make_problems, "docs/bad.md:12: no make target no-such-target"),
    ],
    ids=lambda value: getattr(value, "__name__", ""),
)
def test_each_check_reports_what_does_not_exist(check, expected: str) -> None:
    """A page naming a moved file, a missing anchor, name, config, option, command and make target."""
    assert "\n".join(check(read_page(REPO / "docs" / "bad.md", BAD_PAGE))) == expected
