"""Training speed, side by side: ``python benchmarks/train.py [--workload english] [--steps 6] [--rounds 1]``.

Runs our trainer (``python -m reranker.train``), sentence-transformers' ``CrossEncoderTrainer`` with
``ListNetLoss`` on one-hot labels, and FlagEmbedding's encoder-only reranker fine-tuning on the same model
folder and triplets (``benchmarks/setup.py`` builds both), one process each, alternating the order every
round. Each process is measured by the same probes (``train_worker.py``): after 2 warm-up steps, pairs/s,
real (non-padding) tokens/s, padding share of processed tokens, peak RSS. Prints a table with ours / peer.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time

from common import HERE, PYTHONS, WORK, worker_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=("english", "korean"), default="english")
    parser.add_argument("--steps", type=int, default=6, help="optimisation steps per run, 2 of them warm-up")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--systems", nargs="+", choices=list(PYTHONS), default=list(PYTHONS))
    parser.add_argument("--ours", nargs="*", default=[], help="extra Hydra overrides for our trainer")
    args = parser.parse_args()
    model = WORK / "models" / args.workload
    triplets = WORK / "data" / args.workload / "train.jsonl"
    env = worker_env()
    results: dict[str, list[dict]] = {system: [] for system in args.systems}
    for round_number in range(args.rounds):
        order = args.systems if round_number % 2 == 0 else args.systems[::-1]
        for system in order:
            out = WORK / "runs" / f"train-{args.workload}" / system
            shutil.rmtree(out, ignore_errors=True)
            command = [
                PYTHONS[system],
                str(HERE / "train_worker.py"),
                system,
                str(model),
                str(triplets),
                str(out),
            ]
            command += [str(args.steps), *(args.ours if system == "ours" else [])]
            start = time.time()
            done = subprocess.run(command, env=env, cwd=HERE.parent, capture_output=True, text=True)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if not lines:
                sys.exit(f"{system} failed:\n{done.stderr[-3000:]}")
            result = json.loads(lines[-1].removeprefix("RESULT "))
            results[system].append(result)
            print(
                f"round {round_number + 1} ({time.time() - start:.0f} s with loading): {result}", flush=True
            )
    ours = statistics.median(run["pairs_per_s"] for run in results["ours"]) if "ours" in results else None
    print(
        f"\n{args.workload} workload, model {model}, {args.steps} steps ({args.steps - 3} timed), {args.rounds} round(s)"
    )
    print("| system | pairs/s | real tokens/s | padding share | peak RSS GB | ours / system |")
    print("|---|---|---|---|---|---|")
    for system, runs in results.items():
        speed = statistics.median(run["pairs_per_s"] for run in runs)
        tokens = statistics.median(run["real_tokens_per_s"] for run in runs)
        padding = statistics.median(run["padding_share"] for run in runs)
        rss = max(run["peak_rss_gb"] for run in runs)
        ratio = f"{ours / speed:.2f}" if ours else "-"
        print(f"| {system} | {speed:.2f} | {tokens:.0f} | {padding:.1%} | {rss:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
