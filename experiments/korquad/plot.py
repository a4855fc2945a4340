"""Plot val/mrr@10 over training steps from runs' csv/metrics.csv: plot.py OUT.png NAME=CSV [NAME=CSV ...]."""

from __future__ import annotations

import csv
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


def read_curve(path: str, key: str = "val/mrr@10") -> tuple[list[int], list[float]]:
    """Steps and values of one metric; rows without it (training-loss rows) are skipped."""
    steps, values = [], []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get(key):
                steps.append(int(row["step"]))
                values.append(float(row[key]))
    return steps, values


def main(argv: list[str]) -> None:
    out, specs = argv[0], argv[1:]
    figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
    for spec in specs:
        name, _, path = spec.partition("=")
        steps, values = read_curve(path)
        axes.plot(steps, values, marker="o", label=name)
    axes.set_xlabel("training step (8 queries x 4 passages)")
    axes.set_ylabel("val/mrr@10 (48 held-out queries, 10 BM25 candidates)")
    axes.set_title("KorQuAD: validation MRR@10 during fine-tuning")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    # A fixed creation date keeps the PNG identical when the figures are.
    figure.savefig(out, metadata={"Software": None})
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
