"""Every figure the READMEs quote comes from a committed result file; this regenerates or checks them.

    python scripts/figures.py            # rewrite every generated block from the result files
    python scripts/figures.py --check    # exit 1, with a diff, where a block or a quoted figure disagrees

Two mechanisms, over README.md, docs/*.md, experiments/*/README.md and benchmarks/README.md:

- **Generated blocks.** A block between ``<!-- figures PATH:FUNCTION [ARGUMENT] -->`` and
  ``<!-- /figures -->`` is the markdown that ``FUNCTION()`` (or ``FUNCTION(ARGUMENT)``, a path from the
  project root) of the committed script ``PATH`` returns, read from committed result files.
  A hand edit inside a block makes ``--check`` fail.
- **Quoted figures.** Outside blocks and code fences, every number written with two or more decimals
  (``0.9437``, ``+0.068``, ``1.80×``) must be found in a source of that file: a generated block of the
  same file, or a committed result file listed in ``SOURCES`` (a number there, rounded to the quoted
  decimals; a difference quoted as ``+0.068`` matches ``0.068``). A figure found nowhere fails the check.

A section between ``<!-- recorded by hand: REASON -->`` and ``<!-- /recorded by hand -->`` is left out of the
second check: older measurements that no result file holds, which the document must say in its own text.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import re
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- figures (\S+?):(\w+)(?: (\S+))? -->\n)(?P<body>.*?)(<!-- /figures -->)", re.DOTALL)
HAND = re.compile(r"<!-- recorded by hand: [^>]+ -->.*?<!-- /recorded by hand -->", re.DOTALL)
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
# Inline code, version numbers and constants such as ln 8 = 2.08 are not figures.
NOT_FIGURES = re.compile(r"`[^`\n]*`|\b(?:Python|version|v)\s*\d+(?:\.\d+)+|\bln \d+ = \d+\.\d+")
FIGURE = re.compile(r"(?<![\w.])[+\-−]?(\d+\.\d{2,})(?![\w.]*\d)")
# Committed result files whose numbers a document may quote outside its generated blocks.
SOURCES = {
    "experiments/{name}/README.md": [
        "experiments/{name}/**/*.json",
        "experiments/{name}/**/*.md",
        "experiments/{name}/**/*.csv",
    ],
    "README.md": ["experiments/demo/results/*.json"],
    "docs/*.md": ["experiments/*/results/**/*.json", "benchmarks/results/**/*.json"],
    "benchmarks/README.md": ["benchmarks/results/*.json"],
}


def documents() -> list[Path]:
    """The documents that quote figures."""
    patterns = ["README.md", "docs/*.md", "experiments/*/README.md", "benchmarks/README.md"]
    return sorted(path for pattern in patterns for path in ROOT.glob(pattern))


@cache
def generator(script: str, function: str):
    """``function`` of the committed script ``script`` (a path relative to the project root)."""
    path = ROOT / script
    if not path.is_file():
        raise SystemExit(f"error: figures block names {script}, which does not exist")
    spec = importlib.util.spec_from_file_location(f"figures_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, function):
        raise SystemExit(f"error: figures block names {script}:{function}, which {script} does not define")
    return getattr(module, function)


def regenerate(text: str) -> str:
    """The document with every generated block replaced by what its function returns now."""
    return BLOCK.sub(lambda m: f"{m.group(1)}{generate(m)}\n{m.group(6)}", text)


def generate(block: re.Match) -> str:
    """The markdown a block's function returns; a block's optional argument is a path from the project root."""
    function = generator(block.group(2), block.group(3))
    argument = block.group(4)
    return (function(str(ROOT / argument)) if argument else function()).rstrip()


def source_files(document: Path) -> list[Path]:
    relative = document.relative_to(ROOT).as_posix()
    globs = []
    for pattern, sources in SOURCES.items():
        name = relative.split("/")[1] if relative.startswith("experiments/") else ""
        if Path(relative).match(pattern.format(name="*")) and (
            not pattern.startswith("experiments/") or relative == pattern.format(name=name)
        ):
            globs += [source.format(name=name) for source in sources]
    # Committed files only: an experiment's git-ignored work/ folder is no source.
    found = {p for g in globs for p in ROOT.glob(g) if p.is_file() and p != document}
    return sorted(p for p in found if "work" not in p.relative_to(ROOT).parts)


def numbers_in(text: str) -> Iterator[float]:
    """Every number written in a text (JSON values, table cells, prose)."""
    for match in re.finditer(r"\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", text):
        try:
            yield float(match.group(0))
        except ValueError:
            continue


@cache
def known_values(document: Path) -> frozenset[str]:
    """Every number of the document's sources and blocks, as text at 2 to 6 decimals."""
    texts = [m.group("body") for m in BLOCK.finditer(document.read_text(encoding="utf-8"))]
    texts += [path.read_text(encoding="utf-8", errors="replace") for path in source_files(document)]
    values = {abs(v) for text in texts for v in numbers_in(text)}
    # A share may be quoted as a percentage and a percentage as a share.
    values |= {v * 100 for v in values if v <= 1} | {v / 100 for v in values}
    return frozenset(f"{v:.{d}f}" for v in values for d in range(2, 7))


def prose(text: str) -> str:
    """A document without its generated blocks, hand-recorded sections, code fences, inline code and
    version numbers."""
    return NOT_FIGURES.sub("", FENCE.sub("", HAND.sub("", BLOCK.sub("", text))))


def unsourced(document: Path) -> list[str]:
    """The figures quoted outside blocks that no source of the document holds."""
    known = known_values(document)
    missing = []
    for line in prose(document.read_text(encoding="utf-8")).splitlines():
        for match in FIGURE.finditer(line):
            if match.group(1) not in known:
                missing.append(f"{document.relative_to(ROOT)}: {match.group(0)!r} in: {line.strip()[:100]}")
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 where a figure disagrees"
    )
    arguments = parser.parse_args(argv)
    problems = []
    for document in documents():
        text = document.read_text(encoding="utf-8")
        new = regenerate(text)
        name = str(document.relative_to(ROOT))
        if new != text:
            if arguments.check:
                diff = difflib.unified_diff(
                    text.splitlines(), new.splitlines(), name, "regenerated", lineterm=""
                )
                problems.append("\n".join(diff))
            else:
                document.write_text(new, encoding="utf-8")
                print(f"regenerated {name}")
        problems += unsourced(document)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print(f"error: {len(problems)} figure(s) disagree with the committed results", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
