"""Training memory of our trainer, setting by setting: ``python benchmarks/memory.py [--steps 6]``.

Runs ``train_worker.py ours`` on the Korean workload (multilingual-e5-small, KorQuAD triplets from
``benchmarks/setup.py``; group 4 × 8 queries, 256 tokens, fp32 on CPU) once per setting, one process each,
one after the other, and records each run's peak RSS with the breakdown the worker measures: the resident set
when training starts (weights, data, the runtime), the parameters that train, their gradients, the optimizer's
state, and the rest of the peak (the activations of the largest step and the allocator's slack).

Settings: the recipe as configured (``model=multilingual_e5_small``: word embeddings frozen), every weight
trained, and four ways to hold fewer activations at once: activation checkpointing, the 8 queries of a step
as 4 accumulated batches of 2 (the same queries a step), attention dropout 0 (the fused attention kernel keeps
no attention matrix), and the attention probabilities recomputed in the backward pass
(``model.recompute_attention``: dropout kept).
``--out`` (default ``benchmarks/results/memory.json``); ``benchmarks/tables.py`` makes the README's table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from common import HERE, PYTHONS, ROOT, WORK, worker_env, write_result

RECIPE = ["model=multilingual_e5_small"]
SETTINGS = {
    "recipe (word embeddings frozen)": RECIPE,
    "every weight trained": [*RECIPE, "model.freeze_embeddings=false"],
    "frozen, activation checkpointing": [*RECIPE, "model.gradient_checkpointing=true"],
    "frozen, 4 accumulated batches of 2 queries": [
        *RECIPE,
        "data.batch_size=2",
        "trainer.accumulate_grad_batches=4",
    ],
    "frozen, attention dropout 0": [*RECIPE, "model.attention_dropout=0.0"],
    "frozen, attention recomputed": [*RECIPE, "model.recompute_attention=true"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="optimisation steps per run, 2 of them warm-up")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "memory.json")
    args = parser.parse_args()
    model, triplets = WORK / "models" / "korean", WORK / "data" / "korean" / "train.jsonl"
    if not triplets.is_file():
        sys.exit(f"error: {triplets} is missing; run python benchmarks/setup.py --workloads korean --no-onnx")
    runs = {}
    for name in args.settings:
        out = WORK / "runs" / "memory" / name.split()[0].strip(",()")
        shutil.rmtree(out, ignore_errors=True)
        command = [
            PYTHONS["ours"],
            str(HERE / "train_worker.py"),
            "ours",
            str(model),
            str(triplets),
            str(out),
        ]
        command += [str(args.steps), *SETTINGS[name]]
        done = subprocess.run(command, env=worker_env(), cwd=ROOT, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if not lines:
            sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
        runs[name] = {"overrides": SETTINGS[name], **json.loads(lines[-1].removeprefix("RESULT "))}
        print(
            f"{name}: {runs[name]['peak_rss_gb']:.2f} GB, {runs[name]['pairs_per_s']:.2f} pairs/s", flush=True
        )
    record = {
        "benchmark": "memory",
        "workload": "korean",
        "steps": args.steps,
        "runs": runs,
    }
    write_result(args.out, record)
    from tables import memory_table

    print(memory_table(str(args.out)))


if __name__ == "__main__":
    main()
