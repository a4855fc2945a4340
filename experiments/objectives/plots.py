"""The objectives study's figures: validation curves per arm, and evaluation MRR@10 per arm with its spread."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from study import METRIC, TEACHER, Run  # noqa: E402

# experiments/korquad/plot.py reads a run's validation curve (and knows Lightning's step offset); it is a
# script, not a package, so it is loaded by path.
_spec = importlib.util.spec_from_file_location(
    "korquad_plot", Path(__file__).parents[1] / "korquad" / "plot.py"
)
_korquad_plot = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_korquad_plot)
read_curve = _korquad_plot.read_curve


def _save(figure, path: Path) -> None:
    figure.tight_layout()
    # A fixed creation date keeps the PNG identical when the figures are.
    figure.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(figure)


def plot_curves(runs: list[Run], arms: list[str], path: Path) -> None:
    """One panel per training set: each seed's val/mrr@10 over steps (thin) and the mean over seeds at the
    steps every seed validated (thick), one colour per arm."""
    sets = sorted({run.train_set for run in runs})
    figure, axes = plt.subplots(1, max(len(sets), 1), figsize=(7 * max(len(sets), 1), 4.5), squeeze=False)
    colours = plt.get_cmap("tab20")
    for axis, train_set in zip(axes[0], sets, strict=True):
        for index, arm in enumerate(arms):
            curves = [
                read_curve(str(run.folder / "csv" / "metrics.csv"))
                for run in runs
                if run.train_set == train_set
                and run.arm == arm
                and (run.folder / "csv" / "metrics.csv").is_file()
            ]
            curves = [curve for curve in curves if curve[0]]
            if not curves:
                continue
            colour = colours(index % 20)
            for steps, values in curves:
                axis.plot(steps, values, color=colour, alpha=0.3, linewidth=0.8)
            common = sorted(set.intersection(*(set(steps) for steps, _ in curves)))
            means = [
                sum(dict(zip(steps, values, strict=True))[step] for steps, values in curves) / len(curves)
                for step in common
            ]
            style = "--" if arm == TEACHER else "-"  # the teacher trains longer than every arm
            axis.plot(
                common, means, style, color=colour, marker="o", markersize=3, label=f"{arm} ({len(curves)})"
            )
        axis.set_title(f"trained and validated on {train_set}")
        axis.set_xlabel("optimizer steps")
        axis.set_ylabel(f"val/{METRIC}")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    _save(figure, path)


def plot_eval(summary: dict, arms: list[str], path: Path) -> None:
    """A grid of test set x first stage: each arm's mean MRR@10 with ± one sd over seeds, in-domain filled
    and cross-domain hollow, and the first stage alone as a dashed line."""
    cells = [(test, retriever) for test, by in summary.items() for retriever in by]
    tests = list(summary)
    retrievers = list(dict.fromkeys(retriever for _, retriever in cells))
    figure, axes = plt.subplots(
        len(tests), len(retrievers), figsize=(4.5 * len(retrievers), 3.8 * len(tests)), squeeze=False
    )
    for row, test in enumerate(tests):
        for column, retriever in enumerate(retrievers):
            axis = axes[row][column]
            entry = summary[test].get(retriever)
            if entry is None:
                axis.set_visible(False)
                continue
            for offset, (train_set, found) in enumerate(
                sorted(entry["trained on"].items(), key=lambda x: x[0] != test)
            ):
                positions = [i + 0.2 * offset for i, arm in enumerate(arms) if arm in found]
                means = [found[arm][METRIC]["mean"] for arm in arms if arm in found]
                errors = [found[arm][METRIC]["sd"] or 0.0 for arm in arms if arm in found]
                in_domain = train_set == test
                axis.errorbar(positions, means, yerr=errors, fmt="o", capsize=3,
                              markerfacecolor=None if in_domain else "none",
                              label=f"trained on {train_set}" + (" (in-domain)" if in_domain else ""))  # fmt: skip
            axis.axhline(entry["first stage"], linestyle="--", color="grey", label=f"{retriever} alone")
            axis.set_xticks(range(len(arms)), arms, rotation=60, ha="right", fontsize=7)
            axis.set_title(f"{test}, {retriever} top 10")
            axis.set_ylabel(METRIC)
            axis.grid(alpha=0.3)
            axis.legend(fontsize=7)
    _save(figure, path)
