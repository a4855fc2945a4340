"""Leaderboard of a Hydra multirun folder: ``reranker leaderboard MULTIRUN_DIR [--out DIR]``.

Every run folder of the sweep (``<MULTIRUN_DIR>/<job number>/``) holds ``.hydra/overrides.yaml`` (its
command-line values) and, when it finished, ``metrics.json``. The values that differ between runs are
the swept ones. Writes ``leaderboard.md`` and ``leaderboard.csv`` (best first by the metric; runs that
did not finish, e.g. stopped for non-finite losses, last) and ``leaderboard.png``: the metric against
each swept value.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from reranker.core.errors import InputError
from reranker.core.tables import metric_order, render


def read_runs(multirun_dir: Path) -> list[dict]:
    """One dict per run folder: ``run``, ``overrides`` (key → value as typed), ``metrics`` (empty if none)."""
    if not multirun_dir.is_dir():
        raise InputError(f"{multirun_dir}: no such folder")
    runs = []
    for overrides_file in sorted(multirun_dir.glob("*/.hydra/overrides.yaml")):
        folder = overrides_file.parent.parent
        overrides = {}
        for entry in yaml.safe_load(overrides_file.read_text()) or []:
            key, _, value = entry.partition("=")
            overrides[key.lstrip("+~")] = value
        metrics_file = folder / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        exported = (folder / "export" / "config.json").is_file()
        config_file = folder / ".hydra" / "config.yaml"
        runs.append(
            {
                "run": folder.name,
                "overrides": overrides,
                "metrics": metrics,
                "exported": exported,
                "optimized_metric": optimized_metric(config_file),
            }
        )
    if not runs:
        raise InputError(
            f"{multirun_dir}: no run folders with .hydra/overrides.yaml (is it a -m output folder?)"
        )
    return runs


def optimized_metric(config_file: Path) -> str | None:
    """The run's ``optimized_metric`` with its interpolations resolved (Hydra saves the config unresolved:
    ``val/mrr@${metrics.mrr_k}``), or None when the file, the key or a value it refers to is missing."""
    if not config_file.is_file():
        return None
    config = OmegaConf.load(config_file)
    metric = OmegaConf.select(config, "optimized_metric", default=None, throw_on_resolution_failure=False)
    return metric if isinstance(metric, str) and metric else None


def swept_keys(runs: list[dict]) -> list[str]:
    """Override keys whose value differs between runs, in first-seen order."""
    keys = list(dict.fromkeys(key for run in runs for key in run["overrides"]))
    return [key for key in keys if len({run["overrides"].get(key) for run in runs}) > 1]


def default_metric(runs: list[dict]) -> str:
    """The metric the sweep optimised (``optimized_metric`` of the runs' resolved configs), else the first
    ``val/mrr@k`` any run logged."""
    for run in runs:
        if run["optimized_metric"]:
            return run["optimized_metric"]
    logged = metric_order([key for run in runs for key in run["metrics"] if key.startswith("val/")])
    if not logged:
        raise InputError("no run has validation metrics (metrics.json) and none names its optimized_metric")
    return logged[0]


def rank(runs: list[dict], metric: str) -> list[dict]:
    """Finished runs best first, then the unfinished ones in folder order."""
    finished = [run for run in runs if metric in run["metrics"]]
    unfinished = [run for run in runs if metric not in run["metrics"]]
    return sorted(finished, key=lambda run: -run["metrics"][metric]) + unfinished


def table_rows(runs: list[dict], keys: list[str], metric: str) -> tuple[list[str], list[list[str]]]:
    logged = dict.fromkeys(key for run in runs for key in run["metrics"] if key.startswith("val/"))
    metric_names = [metric, *(name for name in metric_order(list(logged)) if name != metric)]
    header = ["rank", "run", *keys, *metric_names, "export"]
    rows = []
    for position, run in enumerate(rank(runs, metric), start=1):
        finished = metric in run["metrics"]
        values = [f"{run['metrics'][name]:.4f}" if name in run["metrics"] else "" for name in metric_names]
        label = str(position) if finished else "not finished"
        swept = [run["overrides"].get(key, "") for key in keys]
        rows.append([label, run["run"], *swept, *values, "yes" if run["exported"] else "no"])
    return header, rows


def write_markdown(path: Path, header: list[str], rows: list[list[str]], title: str) -> None:
    path.write_text(f"# {title}\n\n" + render([header, *rows], markdown=True) + "\n")


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _as_number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def plot(path: Path, runs: list[dict], keys: list[str], metric: str) -> None:
    """One panel per swept key: the metric of every finished run against that key's value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finished = [run for run in runs if metric in run["metrics"]]
    panels = keys or ["run"]
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
    for axis, key in zip(axes[0], panels, strict=True):
        values = [run["overrides"].get(key, "") if key != "run" else run["run"] for run in finished]
        scores = [run["metrics"][metric] for run in finished]
        numbers = [_as_number(value) for value in values]
        if numbers and all(number is not None and number > 0 for number in numbers):
            axis.scatter(numbers, scores)
            if max(numbers) / min(numbers) >= 10:
                axis.set_xscale("log")
            labels = dict(zip(numbers, values, strict=True))  # ticks as written on the command line
            axis.set_xticks(sorted(labels), [labels[number] for number in sorted(labels)])
            axis.minorticks_off()
        else:
            categories = list(dict.fromkeys(values))
            axis.scatter([categories.index(value) for value in values], scores)
            axis.set_xticks(range(len(categories)), categories, rotation=20)
        axis.set_xlabel(key)
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def build(multirun_dir: str | Path, out: str | Path | None = None, metric: str | None = None) -> Path:
    """Write leaderboard.md, leaderboard.csv and leaderboard.png to ``out`` (default: ``multirun_dir``),
    ranked by ``metric`` (default: the sweep's ``optimized_metric``); returns the Markdown path."""
    multirun_dir = Path(multirun_dir)
    out_dir = Path(out) if out is not None else multirun_dir
    runs = read_runs(multirun_dir)
    metric = metric or default_metric(runs)
    keys = swept_keys(runs)
    header, rows = table_rows(runs, keys, metric)
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = out_dir / "leaderboard.md"
    write_markdown(markdown, header, rows, f"Leaderboard of {multirun_dir}, by {metric}")
    write_csv(out_dir / "leaderboard.csv", header, rows)
    plot(out_dir / "leaderboard.png", runs, keys, metric)
    return markdown


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="reranker leaderboard", description=__doc__.splitlines()[0])
    parser.add_argument("multirun_dir", type=Path, help="a Hydra -m output folder")
    parser.add_argument("--out", type=Path, help="where to write the files (default: MULTIRUN_DIR)")
    parser.add_argument("--metric", help="the metric to sort by (default: the sweep's optimized_metric)")
    args = parser.parse_args(argv)
    try:
        markdown = build(args.multirun_dir, out=args.out, metric=args.metric)
    except InputError as err:
        sys.exit(f"error: {err}")
    print(markdown.read_text(), end="")


if __name__ == "__main__":
    main()
