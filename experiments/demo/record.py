"""Record one demo run's figures: ``python experiments/demo/record.py RUN_DIR RESULT.json [--seconds S]``.

Reads the run's ``metrics.json`` (before/after table), ``csv/metrics.csv`` (validation after each epoch) and
``.hydra/overrides.yaml``, and writes them with the commit the run trained on to ``RESULT.json``: the file the
demo table in README.md is generated from (``scripts/figures.py``).
"""

import argparse
import csv
import json
import subprocess
from pathlib import Path

METRICS = ("mrr@10", "hit@1", "hit@3", "hit@5")


def commit() -> str:
    """The checked-out commit, marked ``-dirty`` when tracked files under ``reranker/`` or ``conf/`` differ."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "reranker", "conf"],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    return head.strip() + ("-dirty" if dirty.strip() else "")


def validations(run: Path) -> list[dict]:
    """``val/mrr@10`` and the step of every validation the run logged, in order."""
    rows = []
    with (run / "csv" / "metrics.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row.get("val/mrr@10"):
                rows.append({"step": int(row["step"]), "mrr@10": float(row["val/mrr@10"])})
    return rows


def record(run: Path, seconds: int | None, trained_on: str | None = None) -> dict:
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    overrides = (run / ".hydra" / "overrides.yaml").read_text(encoding="utf-8")
    return {
        "commit": trained_on or commit(),
        "overrides": [line[2:] for line in overrides.splitlines() if line.startswith("- ")],
        "seconds": seconds,
        "before": {name: metrics[f"zero_shot/{name}"] for name in METRICS},
        "after": {name: metrics[f"val/{name}"] for name in METRICS},
        "validations": validations(run),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("result", type=Path)
    parser.add_argument("--seconds", type=int, default=None)
    parser.add_argument("--commit", help="the commit the run trained on (default: the one checked out now)")
    arguments = parser.parse_args()
    result = record(arguments.run, arguments.seconds, arguments.commit)
    arguments.result.parent.mkdir(parents=True, exist_ok=True)
    arguments.result.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
