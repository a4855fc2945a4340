"""The objectives study's plan: its arms, seeds and step budget, as units of work (one training each).

Every arm trains ``experiment=objectives`` with the same step budget and differs from ``group_ce`` in its
loss alone. The arms that distil from the first stage (``mix``, ``first_stage_only``) take the teacher
temperature chosen on the VALIDATION lists: the grid arms ``first_stage_only_t<T>`` (seed 1 each) are
trained first, and the temperature whose run has the best ``val/mrr@10`` is used (:func:`choose_temperature`).
``distill_kl`` distils from a cross-encoder teacher, ``group_ce`` trained ``TEACHER_FACTOR`` times longer
(unit ``teacher``, seed ``TEACHER_SEED``), whose scores ``prepare teacher`` adds to the training triplets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from reranker.core.errors import InputError

HERE = Path(__file__).resolve().parent
SEEDS = (1, 2, 3)
# First-stage teacher temperatures tried on validation: hybrid scores are z-scores (a positive about 4, a
# hard negative 1.5-3, a random one about 0), so 0.3 is near one-hot on the top, 3 nearly flat.
TEMPERATURE_GRID = (0.3, 1.0, 3.0)
TEACHER_FACTOR = 4
TEACHER_SEED = 42
TEACHER = "teacher"
GRID_ARM = "first_stage_only_t{temperature:g}"
# Each arm's overrides on experiment=objectives; {temperature} is the chosen first-stage teacher temperature.
ARMS = {
    "group_ce": ("loss=group_ce",),
    "first_stage_only": (
        "loss=distill_kl",
        "loss.alpha=0",
        "loss.teacher=first_stage",
        "loss.teacher_temperature={temperature:g}",
    ),
    "mix": (
        "loss=mix",
        "loss.components.teacher.teacher=first_stage",
        "loss.components.teacher.teacher_temperature={temperature:g}",
    ),
    "bce": ("loss=bce",),
    "lambdaloss": ("loss=lambdaloss",),
    "distill_kl": ("loss=distill_kl",),
}
NEEDS_TEMPERATURE = ("first_stage_only", "mix")
NEEDS_TEACHER = ("distill_kl",)
BASELINE = "group_ce"


def default_steps() -> int:
    """The step budget of every arm: ``conf/experiment/objectives.yaml``'s ``trainer.max_steps``."""
    config = yaml.safe_load((HERE.parents[1] / "conf" / "experiment" / "objectives.yaml").read_text())
    return int(config["trainer"]["max_steps"])


@dataclass(frozen=True)
class Unit:
    """One training of one arm at one seed: its overrides on ``experiment=objectives`` and its result file."""

    domain: str
    arm: str
    seed: int
    overrides: tuple[str, ...]
    steps: int
    teacher_scored: bool = False  # trains on the triplets with the teacher's pos_scores/neg_scores
    waiting: str | None = None  # why it cannot run yet (its temperature is not chosen)

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.arm}/seed{self.seed}"

    def result_path(self, results: Path) -> Path:
        return results / self.domain / self.arm / f"seed{self.seed}.json"


def unit(domain: str, arm: str, seed: int, overrides: tuple[str, ...], steps: int, **options) -> Unit:
    """A unit whose overrides end with its step budget and seed."""
    return Unit(
        domain, arm, seed, (*overrides, f"trainer.max_steps={steps}", f"seed={seed}"), steps, **options
    )


def grid_units(domain: str, steps: int, grid: tuple[float, ...]) -> list[Unit]:
    template = ARMS["first_stage_only"]
    return [
        unit(
            domain, GRID_ARM.format(temperature=t), 1, tuple(o.format(temperature=t) for o in template), steps
        )
        for t in grid
    ]


def teacher_unit(domain: str, steps: int) -> Unit:
    return unit(domain, TEACHER, TEACHER_SEED, ("loss=group_ce",), TEACHER_FACTOR * steps)


def plan(
    domain: str,
    arms: list[str],
    seeds: tuple[int, ...],
    steps: int,
    grid: tuple[float, ...],
    temperature: float | None,
) -> list[Unit]:
    """Every unit of the study in the order they run: the baseline, the temperature grid and the arms that
    use it, the other losses, then the teacher and its student. ``temperature`` None: the arms that need it
    wait (their overrides hold a placeholder)."""
    units: list[Unit] = []
    for arm in arms:
        if arm in NEEDS_TEMPERATURE and not any(u.arm.startswith("first_stage_only_t") for u in units):
            units += grid_units(domain, steps, grid)
        if arm in NEEDS_TEACHER and not any(u.arm == TEACHER for u in units):
            units.append(teacher_unit(domain, steps))
        for seed in seeds:
            if arm in NEEDS_TEMPERATURE and temperature is None:
                overrides = tuple(o.replace("{temperature:g}", "?") for o in ARMS[arm])
                units.append(
                    unit(domain, arm, seed, overrides, steps, waiting="the teacher temperature grid")
                )
                continue
            overrides = tuple(o.format(temperature=temperature) for o in ARMS[arm])
            units.append(unit(domain, arm, seed, overrides, steps, teacher_scored=arm in NEEDS_TEACHER))
    return units


def order(arms: list[str]) -> list[str]:
    """The arms in the study's running order (``ARMS``' order)."""
    unknown = [arm for arm in arms if arm not in ARMS]
    if unknown:
        raise InputError(f"--arms: unknown arm {unknown[0]!r} (choose from {', '.join(ARMS)})")
    return [arm for arm in ARMS if arm in arms]


def choose_temperature(grid: tuple[float, ...], val_mrr: dict[float, float | None]) -> float | None:
    """The grid temperature whose run has the best ``val/mrr@10`` (the first on a tie); None until every
    grid run has a value."""
    if any(val_mrr.get(t) is None for t in grid):
        return None
    return max(grid, key=lambda t: (val_mrr[t], -grid.index(t)))
