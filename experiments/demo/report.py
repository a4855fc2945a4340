"""The demo table of README.md, from the recorded runs in ``experiments/demo/results/seed*.json``.

``table(results_dir)`` is called by ``scripts/figures.py``; it reads nothing but the committed result files.
"""

import json
from pathlib import Path

HERE = Path(__file__).parent


def load(results_dir: Path = HERE / "results") -> dict[int, dict]:
    """Seed → recorded run, the default seed (42) first, then by seed."""
    runs = {
        int(p.stem.removeprefix("seed")): json.loads(p.read_text()) for p in results_dir.glob("seed*.json")
    }
    return dict(sorted(runs.items(), key=lambda item: (item[0] != 42, item[0])))


def table(results_dir: Path = HERE / "results") -> str:
    """Markdown: per seed, MRR@10 before and after training, hit@1 after, validation MRR@10 after each epoch
    and of the best checkpoint (the run's last validation)."""
    lines = [
        "| seed | before | after | hit@1 after | MRR@10 after epochs 1-4, then of the best checkpoint | minutes | commit |",
        "|---|---|---|---|---|---|---|",
    ]
    for seed, run in load(results_dir).items():
        # One value a validation step; the last is the best checkpoint's, validated again at the end.
        by_step = {v["step"]: v["mrr@10"] for v in run["validations"] if v["step"] > 0}
        curve = " / ".join(f"{value:.3f}" for value in by_step.values())
        minutes = f"{run['seconds'] / 60:.1f}" if run.get("seconds") else "not timed"
        name = f"{seed} (default)" if seed == 42 else str(seed)
        lines.append(
            f"| {name} | {run['before']['mrr@10']:.4f} | {run['after']['mrr@10']:.4f} | "
            f"{run['after']['hit@1']:.4f} | {curve} | {minutes} | `{run['commit'][:7]}` |"
        )
    return "\n".join(lines)
