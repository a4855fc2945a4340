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
from study_arms import ARMS, HERE, SEEDS, TEACHER, TEMPERATURE_GRID, Unit, order, teacher_unit
from study_data import StudyData, ensure_model, file_digest, fingerprint
from study_plan import ROOT, StudyPlan
from study_unit import evaluate_unit, machine, train_unit

from reranker.core.errors import InputError
from reranker.preparation.teacher import prepare_teacher


@dataclass
class Study(StudyPlan):
    """Runs the study's units (:class:`study_plan.StudyPlan` says which, where, and how far it is)."""

    trained: list[str] = field(default_factory=list)  # the units trained by this object, in order

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
