"""The objectives study in parts that survive sessions (README: the question, the arms, the sizing).

    python experiments/objectives/study.py run --max-minutes 100   # train + evaluate pending units
    python experiments/objectives/study.py status                  # done / pending / stale / waiting
    python experiments/objectives/study.py data                    # build the derived data only

Each unit (one arm at one seed) ends in one committed file, ``results/<domain>/<arm>/seed<N>.json``
(:mod:`study_unit`); ``run`` skips every unit whose file holds the current data fingerprint and overrides,
and reruns, saying why, one whose file is stale. Everything else (data, runs, score caches, the teacher's
export) lives in the ignored ``work/`` and is rebuilt when missing: the data deterministically from
``../shared/data`` (:mod:`study_data`), the teacher by training it again with its fixed seed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import study_results as results_io
from study_arms import (
    ARMS,
    HERE,
    SEEDS,
    TEACHER,
    TEMPERATURE_GRID,
    Unit,
    choose_temperature,
    default_steps,
    grid_units,
    order,
    plan,
    teacher_unit,
)
from study_data import StudyData, build, ensure_model, file_digest, fingerprint
from study_unit import evaluate_unit, machine, train_unit

from reranker.core.errors import InputError
from reranker.preparation.teacher import prepare_teacher

ROOT = HERE.parents[1]
# Sizing defaults (README): a step of e5-small, group 8 x 4 queries x 192 tokens, on the 2-core machine,
# loading, validations and export included; scoring speed of e5-small on Korean pairs.
SECONDS_PER_STEP = 4.7
PAIRS_PER_SECOND = 32.0
LIST_PAIRS = 2000  # 200 evaluation questions x top 10


@dataclass
class Study:
    """Where the study reads and writes, and what it runs (see :func:`parse_args` for each option)."""

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
    trained: list[str] = field(default_factory=list)  # the units trained by this object, in order

    def __post_init__(self) -> None:
        self.steps = self.steps or default_steps()
        # multilingual-e5-small: the dense side of the first stage, and the reranker's base unless given.
        self.me5 = self.work / "me5-small"
        self.base_model = self.base_model or self.me5

    # data

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

    # running

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

    def ensure_teacher_data(self, data: StudyData, digest: dict) -> Path:
        """The teacher-scored triplets; the teacher is trained again (its seed is fixed) when its export is
        missing, as in a new session."""
        scored = self.teacher_data(data)
        if scored.is_file():
            return scored
        teacher = teacher_unit(self.domain, self.steps)
        export = self.run_dir(teacher) / "export"
        if not (export / "config.json").is_file():
            print(
                f"objectives: the teacher's export is missing ({export}); training {teacher.name} again",
                flush=True,
            )
            self.run_unit(teacher, data, digest)
        partial = scored.with_name(f".{scored.name}.partial")
        scored.parent.mkdir(parents=True, exist_ok=True)
        prepare_teacher(
            data.train, str(export), partial, batch_size=32, cache=self.work / "scores" / "teacher.sqlite"
        )
        partial.replace(scored)
        return scored

    def run_unit(self, unit: Unit, data: StudyData, digest: dict) -> dict:
        """Train and evaluate ``unit`` and write its result file; returns the result."""
        train_file = self.ensure_teacher_data(data, digest) if unit.teacher_scored else data.train
        run_dir = self.run_dir(unit)
        shutil.rmtree(run_dir, ignore_errors=True)  # what an interrupted run left
        print(f"objectives: training {unit.name} ({' '.join(unit.overrides)})", flush=True)
        overrides = ["experiment=objectives", f"model.model_name_or_path={self.base_model}",
                     f"data.train_files={train_file}", f"data.val_files={data.val}", "callbacks.progress_bar=null",
                     *unit.overrides, *self.overrides]  # fmt: skip
        trained = train_unit(unit, overrides, run_dir)
        self.measured["train_seconds"] += trained["training"]["seconds"]
        self.measured["steps"] += unit.steps
        evaluation = {}
        if "failed" not in trained["training"]:
            evaluation = evaluate_unit(run_dir / "export", data, self.work / "scores" / self.domain)
            self.measured["eval_seconds"].append(sum(entry["seconds"] for entry in evaluation.values()))
        result = {
            "domain": unit.domain,
            "arm": unit.arm,
            "seed": unit.seed,
            "overrides": list(unit.overrides),
            "extra_overrides": list(self.overrides),
            **results_io.commit(ROOT),
            "data": {"fingerprint": digest["digest"], "files": digest["files"]},
            "machine": machine(),
            "training": trained["training"],
            "validation": {k: v for k, v in trained["metrics"].items() if k.startswith("val/")},
            "evaluation": evaluation,
            "config": trained["config"],
        }
        if unit.teacher_scored:
            result["teacher_data"] = {"train_digest": file_digest(train_file)}
        results_io.write(unit.result_path(self.results), result)
        self.trained.append(unit.name)
        if unit.arm == TEACHER:
            # A new teacher: the triplets scored by an earlier one are out of date.
            shutil.rmtree(self.work / "teacher_data" / self.domain, ignore_errors=True)
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        elif not self.keep_runs:
            shutil.rmtree(run_dir, ignore_errors=True)
        return result

    def run(self, max_minutes: float | None = None) -> list[str]:
        """Run pending units in order until none is left or the next would pass ``max_minutes``; returns
        the names of the units trained (a teacher trained again for its export included)."""
        start = time.monotonic()
        data = self.data()
        if self.base_model == self.me5:
            ensure_model(self.me5, self.shared, sys.executable)
        digest = fingerprint(data)
        self.trained = []
        while True:
            states = self.units(digest["digest"], record=True)
            todo = next(((u, s, why) for u, s, why in states if s in ("pending", "stale")), None)
            if todo is None:
                waiting = [u.name for u, s, _ in states if s == "waiting"]
                print(
                    f"objectives: nothing left to run{'; waiting: ' + ', '.join(waiting) if waiting else ''}"
                )
                return self.trained
            unit, state, why = todo
            if unit.name in self.trained:
                raise RuntimeError(f"{unit.name} is still {state} after its training ({why})")
            if state == "stale":
                print(f"objectives: {unit.name}: {why}; running it again", flush=True)
            copied = self.copy_twin(unit, states)
            if copied:
                continue
            estimate = self.estimate_seconds(unit, data)
            elapsed = time.monotonic() - start
            if max_minutes is not None and elapsed + estimate > max_minutes * 60:
                pending = sum(s in ("pending", "stale", "waiting") for _, s, _ in states)
                print(f"objectives: budget: {unit.name} needs about {estimate / 60:.0f} min and {elapsed / 60:.0f} of "
                      f"{max_minutes:g} are spent; stopping with {pending} units pending")  # fmt: skip
                return self.trained
            self.run_unit(unit, data, digest)

    def copy_twin(self, unit: Unit, states: list[tuple[Unit, str, str]]) -> bool:
        """A unit with the same overrides as a done one (the chosen grid run is the first seed of its arm)
        takes a copy of its result instead of training again."""
        twin = next(
            (u for u, s, _ in states if s == "done" and u.overrides == unit.overrides and u != unit), None
        )
        if twin is None:
            return False
        result = results_io.read(twin.result_path(self.results))
        results_io.write(
            unit.result_path(self.results), {**result, "arm": unit.arm, "copied_from": twin.name}
        )
        print(f"objectives: {unit.name}: the same training as {twin.name}; its result is copied", flush=True)
        return True

    def status(self) -> list[str]:
        """One line per unit with its state, then the totals and the time the pending ones need."""
        data = self.data()
        digest = fingerprint(data)["digest"]
        states = self.units(digest)
        lines = [f"{state:8} {unit.name}" + (f"  ({why})" if why else "") for unit, state, why in states]
        counts = {
            state: sum(s == state for _, s, _ in states) for state in ("done", "pending", "stale", "waiting")
        }
        seconds = sum(self.estimate_seconds(u, data) for u, s, _ in states if s != "done")
        lines.append(", ".join(f"{count} {state}" for state, count in counts.items()) +
                     f"; data {digest[:12]}; left: about {seconds / 60:.0f} min at the README's rates")  # fmt: skip
        return lines


def _lines(path: Path) -> int:
    with path.open(encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("run", "status", "data"))
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="run: start no unit that would end past this many minutes from the start")  # fmt: skip
    parser.add_argument("--domain", default="korquad")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), help="arms to run, in the study's order")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument(
        "--steps", type=int, default=0, help="steps of every arm (conf/experiment/objectives.yaml's)"
    )
    parser.add_argument("--grid", nargs="+", type=float, default=list(TEMPERATURE_GRID),
                        help="first-stage teacher temperatures tried on validation")  # fmt: skip
    parser.add_argument(
        "--work", type=Path, default=HERE / "work", help="ignored folder for data, runs, caches"
    )
    parser.add_argument("--results", type=Path, default=HERE / "results", help="folder of the result files")
    parser.add_argument(
        "--data", type=Path, default=None, help="a data folder of the study's layout (no build)"
    )
    parser.add_argument(
        "--base-model", type=Path, default=None, help="default: WORK/me5-small (built if missing)"
    )
    parser.add_argument(
        "--shared", type=Path, default=ROOT.parent / "shared", help="folder holding data/, tools/"
    )
    parser.add_argument(
        "--override", action="append", default=[], help="extra Hydra override for every training"
    )
    parser.add_argument("--keep-runs", action="store_true", help="keep each run's checkpoints and export")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[str]:
    args = parse_args(argv)
    try:
        study = Study(args.domain, order(args.arms), tuple(args.seeds), args.steps, tuple(args.grid), args.work,
                      args.results, args.data, args.base_model, args.shared, args.override, args.keep_runs)  # fmt: skip
        if args.command == "run":
            return study.run(args.max_minutes)
        if args.command == "status":
            print("\n".join(study.status()))
        else:
            print(json.dumps(fingerprint(study.data()), indent=1))
    except InputError as err:
        raise SystemExit(f"error: {err}") from None
    return []


if __name__ == "__main__":
    main()
