"""Scoring speed, side by side: ``python benchmarks/score.py [--workload english] [--pairs 3000] [--rounds 1]``.

Runs ``Reranker.score`` (ours), sentence-transformers' ``CrossEncoder.predict`` and FlagEmbedding's
``FlagReranker.compute_score`` on the same pairs and the same model folder (``benchmarks/setup.py`` builds
both), each in its own process, alternating the order every round; checks that the scores agree within
1e-4 and prints a table: pairs/s (median over rounds), peak RSS, and ours / peer.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from common import HERE, PYTHONS, WORK, worker_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=("english", "korean"), default="english")
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    model = WORK / "models" / args.workload
    runs = WORK / "runs" / f"score-{args.workload}"
    runs.mkdir(parents=True, exist_ok=True)
    pairs = runs / "pairs.jsonl"
    lines = (WORK / "data" / args.workload / "pairs.jsonl").read_text(encoding="utf-8").splitlines()
    pairs.write_text("\n".join(lines[: args.pairs]) + "\n", encoding="utf-8")
    env = worker_env()
    results: dict[str, list[dict]] = {system: [] for system in PYTHONS}
    systems = list(PYTHONS)
    for round_number in range(args.rounds):
        order = systems if round_number % 2 == 0 else systems[::-1]
        for system in order:
            out = runs / f"{system}.json"
            command = [
                PYTHONS[system],
                str(HERE / "score_worker.py"),
                system,
                str(model),
                str(pairs),
                str(out),
            ]
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"{system} failed:\n{done.stderr[-3000:]}")
            results[system].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"round {round_number + 1}: {results[system][-1]}", flush=True)
    scores = {system: json.loads((runs / f"{system}.json").read_text()) for system in PYTHONS}
    worst = {
        system: max(abs(a - b) for a, b in zip(scores["ours"], scores[system], strict=True))
        for system in PYTHONS
    }
    ours = statistics.median(run["pairs_per_s"] for run in results["ours"])
    print(f"\n{args.pairs} pairs, {args.workload} workload, model {model}, {args.rounds} round(s)")
    print("| system | pairs/s | peak RSS GB | ours / system | max abs score difference to ours |")
    print("|---|---|---|---|---|")
    for system, runs_of_system in results.items():
        speed = statistics.median(run["pairs_per_s"] for run in runs_of_system)
        rss = max(run["peak_rss_gb"] for run in runs_of_system)
        print(f"| {system} | {speed:.1f} | {rss:.2f} | {ours / speed:.2f} | {worst[system]:.1e} |")


if __name__ == "__main__":
    main()
