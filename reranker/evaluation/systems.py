"""The systems ``reranker evaluate`` compares: each ``--model`` name with its runs (one, or several seeds).

``--model NAME=PATH`` names one run of the system NAME. Repeating NAME, or a glob in PATH
(``--model 'ft=outputs/*/export'``), gives the system several runs, as the seeds of one recipe are: a
single seed's gain over a baseline can be luck, so the runs together are the system. Each run then has a
row of its own, ``NAME (LABEL)`` with LABEL the part of its path that differs from the other runs'
(``ft (run1)``), and NAME is the system's row: the per-query mean over its runs.

The runs of one system must score pairs alike: their recorded scoring contracts (model kind, max_length,
query_max_length; :mod:`reranker.model.contract`) are compared before anything is scored.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from reranker.core.errors import InputError
from reranker.model.checkpoint import checkpoint_contract
from reranker.model.contract import ScoringContract, read_contract
from reranker.model.onnx_backend import split_onnx_path

# The contract fields that must agree between the runs of one system.
CONTRACT_FIELDS = ("kind", "max_length", "query_max_length")


@dataclass(frozen=True)
class System:
    """A named system and its runs: row name → model path, in the order given."""

    name: str
    runs: dict[str, str]


def parse_model(spec: str) -> tuple[str, str]:
    """``NAME=PATH`` or ``PATH`` (named by the path) → ``(name, path)``."""
    name, separator, path = spec.partition("=")
    return (name, path) if separator and name and path else (spec, spec)


def expand(path: str, spec: str) -> list[str]:
    """The paths a ``--model`` path names: itself, or a glob's matches in sorted order."""
    if not glob.has_magic(path):
        return [path]
    matches = sorted(glob.glob(path))
    if not matches:
        raise InputError(f"--model {spec}: the pattern matches no path")
    return matches


def run_labels(paths: list[str]) -> list[str]:
    """Short labels that tell paths apart: the path parts between their common start and common end."""
    parts = [Path(path).parts for path in paths]
    start = 0
    while all(len(p) > start + 1 for p in parts) and len({p[start] for p in parts}) == 1:
        start += 1
    end = 0
    while all(len(p) > start + end + 1 for p in parts) and len({p[-1 - end] for p in parts}) == 1:
        end += 1
    labels = ["/".join(p[start : len(p) - end]) for p in parts]
    if len(set(labels)) != len(labels):  # parts alike up to separators: number the runs instead
        return [f"{index}/{len(paths)}" for index in range(1, len(paths) + 1)]
    return labels


def recorded_contract(path: str) -> ScoringContract:
    """The scoring contract recorded with a model path (export folder, hub name, ``.ckpt`` or an export's
    ONNX file), read without loading weights."""
    onnx = split_onnx_path(path)
    if onnx is not None:
        path = onnx[0]
    if path.endswith(".ckpt"):
        return checkpoint_contract(path)
    return read_contract(path)


def check_contracts(system: System) -> None:
    """The runs of ``system`` record the same kind and lengths; otherwise one line naming the difference."""
    contracts = {row: recorded_contract(path) for row, path in system.runs.items()}
    first_row, first = next(iter(contracts.items()))
    for row, contract in contracts.items():
        for field in CONTRACT_FIELDS:
            mine, theirs = getattr(contract, field), getattr(first, field)
            if mine != theirs:
                shown = [v.to_config() if field == "kind" else v for v in (theirs, mine)]
                raise InputError(
                    f"--model {system.name}: its runs score differently, so they are not one system: "
                    f"{field} {shown[0]!r} ({system.runs[first_row]}) vs {shown[1]!r} ({system.runs[row]})"
                )


def read_systems(specs: list[str], reserved: tuple[str, ...] = ()) -> list[System]:
    """The systems of ``--model`` specs (``[NAME=]PATH``, a NAME repeated or a glob for several runs).

    Row names must be unique and none of ``reserved`` (the first stage's row); a path given twice for one
    system, a glob matching nothing and runs whose contracts differ are errors.
    """
    grouped: dict[str, list[str]] = {}
    for spec in specs:
        name, path = parse_model(spec)
        for match in expand(path, spec):
            if match in grouped.setdefault(name, []):
                raise InputError(f"--model {name}: the path {match} is given twice")
            grouped[name].append(match)
    systems = []
    for name, paths in grouped.items():
        if len(paths) == 1:
            systems.append(System(name, {name: paths[0]}))
            continue
        runs = {f"{name} ({label})": path for label, path in zip(run_labels(paths), paths, strict=True)}
        system = System(name, runs)
        check_contracts(system)
        systems.append(system)
    seen: set[str] = set(reserved)
    for system in systems:
        for row in dict.fromkeys([system.name, *system.runs]):
            if row in seen:
                raise InputError(
                    f"--model: the row {row!r} would be given twice; rows must be distinct and none of "
                    f"{list(reserved)}"
                )
            seen.add(row)
    return systems
