"""Plot val/mrr@10 over training steps from runs' csv/metrics.csv: plot.py OUT.png NAME=CSV [NAME=CSV ...]."""

from __future__ import annotations

import csv
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


def read_curve(path: str, key: str = "val/mrr@10") -> tuple[list[int], list[float]]:
    """Optimizer steps done and values of one metric; rows without it (training-loss rows) are skipped.

    Lightning logs a validation inside fit at the index of the last batch (step 7 after 8 steps), so the
    step is shifted by one. ``train()`` validates the best checkpoint once more after fit: that row is
    logged at the final step + 1 and repeats a value already plotted, so it is dropped.
    """
    points = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get(key):
                points.append((int(row["step"]) + 1, float(row[key])))
    if (
        len(points) >= 2
        and points[-1][0] == points[-2][0] + 1
        and points[-1][1] in [v for _, v in points[:-1]]
    ):
        points.pop()
    return [step for step, _ in points], [value for _, value in points]


def main(argv: list[str]) -> None:
    out, specs = argv[0], argv[1:]
    figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
    for spec in specs:
        name, _, path = spec.partition("=")
        steps, values = read_curve(path)
        axes.plot(steps, values, marker="o", label=name)
    axes.set_xlabel("optimizer steps (8 queries x 4 passages each)")
    axes.set_ylabel("val/mrr@10")
    axes.set_ylim(0, 1)
    axes.set_title("KorQuAD val (48 queries x 10 BM25 candidates)")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    # A fixed creation date keeps the PNG identical when the figures are.
    figure.savefig(out, metadata={"Software": None})
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
