"""Where the objectives study stands: its settings, its data, every unit's state, and the time left.

:class:`StudyPlan` reads and never trains: the plan of units (:mod:`study_arms`), each unit's state from its
result file (:mod:`study_results`), the first-stage teacher temperature chosen from the grid's results,
and the time the pending units need. :class:`study.Study` runs them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import study_results as results_io
from study_arms import (
    ARMS,
    HERE,
    SEEDS,
    TEMPERATURE_GRID,
    Unit,
    choose_temperature,
    default_steps,
    grid_units,
    plan,
    teacher_unit,
)
from study_data import StudyData, build, file_digest, fingerprint

ROOT = HERE.parents[1]
# Sizing defaults (README): a step of e5-small, group 8 x 4 queries x 192 tokens, on the 2-core machine,
# loading, validations and export included; scoring speed of e5-small on Korean pairs.
SECONDS_PER_STEP = 4.7
PAIRS_PER_SECOND = 32.0
LIST_PAIRS = 2000  # 200 evaluation questions x top 10


@dataclass
class StudyPlan:
    """Where the study reads and writes and what it runs (``study.py``'s options), and where it stands."""

    domain: str = "korquad"
    arms: list[str] = field(default_factory=lambda: list(ARMS))
    seeds: tuple[int, ...] = SEEDS
    steps: int = 0
    grid: tuple[float, ...] = TEMPERATURE_GRID
    work: Path = HERE / "work"
    results: Path = HERE / "results"
    data_folder: Path | None = None
    base_model: Path | None = None
    shared: Path = ROOT.parent / "shared"
    overrides: list[str] = field(default_factory=list)
    keep_runs: bool = False
    measured: dict = field(default_factory=lambda: {"train_seconds": 0.0, "steps": 0, "eval_seconds": []})

    def __post_init__(self) -> None:
        self.steps = self.steps or default_steps()
        # multilingual-e5-small: the dense side of the first stage, and the reranker's base unless given.
        self.me5 = self.work / "me5-small"
        self.base_model = self.base_model or self.me5

    def data(self) -> StudyData:
        """The data folder: the given one, or the built one (built now when missing)."""
        if self.data_folder is not None:
            return StudyData(self.data_folder)
        folder = self.work / "data" / self.domain
        return build(self.domain, folder, self.shared, self.me5, self.work / "embeddings")

    # plan and state

    def temperature(self, digest: str, record: bool = False) -> float | None:
        """The first-stage teacher temperature chosen on validation (None until its grid is done); with
        ``record``, the choice is written to ``results/<domain>/selection.json``."""
        values = {}
        for grid_unit, temperature in zip(
            grid_units(self.domain, self.steps, self.grid), self.grid, strict=True
        ):
            result = results_io.read(grid_unit.result_path(self.results))
            done = results_io.state(grid_unit, result, digest)[0] == "done"
            values[temperature] = results_io.val_mrr(result) if done else None
        chosen = choose_temperature(self.grid, values)
        if chosen is not None and record:
            selection = {"metric": results_io.VAL_MRR, "arm": "first_stage_only_t<T>", "seed": 1, "grid": list(self.grid),
                         "values": {f"{t:g}": values[t] for t in self.grid}, "chosen": chosen}  # fmt: skip
            results_io.write(self.results / self.domain / "selection.json", selection)
        return chosen

    def units(self, digest: str, record: bool = False) -> list[tuple[Unit, str, str]]:
        """Every unit with its state and why: ``(unit, state, why)``."""
        temperature = self.temperature(digest, record)
        units = plan(self.domain, self.arms, self.seeds, self.steps, self.grid, temperature)
        return [
            (u, *results_io.state(u, results_io.read(u.result_path(self.results)), digest)) for u in units
        ]

    def run_dir(self, unit: Unit) -> Path:
        return self.work / "runs" / unit.domain / unit.arm / f"seed{unit.seed}"

    def estimate_seconds(self, unit: Unit, data: StudyData) -> float:
        """Training and evaluation time of ``unit``: rates measured in this part, else the README's; plus
        the teacher's scoring (and retraining) when ``unit`` needs them first."""
        measured = self.measured
        rate = measured["train_seconds"] / measured["steps"] if measured["steps"] else SECONDS_PER_STEP
        evaluation = measured["eval_seconds"]
        seconds = unit.steps * rate + (
            sum(evaluation) / len(evaluation)
            if evaluation
            else len(data.lists) * LIST_PAIRS / PAIRS_PER_SECOND
        )
        if unit.teacher_scored and not self.teacher_data(data).is_file():
            if not (self.run_dir(teacher_unit(self.domain, self.steps)) / "export").is_dir():
                seconds += teacher_unit(self.domain, self.steps).steps * rate
            seconds += _lines(data.train) * 8 / PAIRS_PER_SECOND
        return seconds

    def teacher_data(self, data: StudyData) -> Path:
        """The training triplets with the teacher's scores (one file per data fingerprint's train file)."""
        return self.work / "teacher_data" / self.domain / f"train-{file_digest(data.train)[:12]}.jsonl"

    def status(self) -> list[str]:
        """One line per unit with its state, then the totals and the time the pending ones need. Before the
        data is built (a new session), units are judged by the fingerprint most result files hold."""
        folder = self.data_folder or self.work / "data" / self.domain
        built = folder.is_dir()
        digest = fingerprint(StudyData(folder))["digest"] if built else self.recorded_digest()
        states = self.units(digest)
        lines = [f"{state:8} {unit.name}" + (f"  ({why})" if why else "") for unit, state, why in states]
        counts = {
            state: sum(s == state for _, s, _ in states) for state in ("done", "pending", "stale", "waiting")
        }
        total = ", ".join(f"{count} {state}" for state, count in counts.items())
        if built:
            seconds = sum(self.estimate_seconds(u, StudyData(folder)) for u, s, _ in states if s != "done")
            lines.append(
                f"{total}; data {digest[:12]}; left: about {seconds / 60:.0f} min at the README's rates"
            )
        elif digest:
            lines.append(f"{total}; data not built here ({folder}): judged by the fingerprint {digest[:12]} "
                         "most result files hold")  # fmt: skip
        else:
            lines.append(f"{total}; data not built here ({folder}) and no result file yet")
        return lines

    def recorded_digest(self) -> str:
        """The data fingerprint most of the domain's result files were made from ("" when there are none)."""
        recorded = [
            json.loads(path.read_text(encoding="utf-8"))["data"]["fingerprint"]
            for path in (self.results / self.domain).glob("*/seed*.json")
        ]
        return max(set(recorded), key=recorded.count) if recorded else ""


def _lines(path: Path) -> int:
    with path.open(encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip())
