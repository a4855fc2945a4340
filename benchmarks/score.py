"""Scoring speed, side by side: ``python benchmarks/score.py [--workload english] [--pairs 3000] [--rounds 1]``.

Runs ours through the front end every command scores with (:class:`reranker.scoring.pairs.PairScoring`:
torch, and ONNX Runtime float32 and int8), sentence-transformers' ``CrossEncoder.predict`` (torch, and its
ONNX backend with its own int8 file) and FlagEmbedding's ``FlagReranker.compute_score`` on the same pairs
and the same weights (``benchmarks/setup.py`` builds the folders and the ONNX files), each in its own
process, alternating the order every round; prints a table: pairs/s (median over rounds), peak RSS, the
largest and mean score difference to float32 torch, and the ratios the scoring goals name. ``--out``
(default ``benchmarks/results/score_<workload>.json``) records them with the machine and the commit;
``benchmarks/tables.py`` makes the README's table from it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from common import HERE, ROOT, SCORERS, WORK, worker_env, write_result

# Each system's scores are compared with float32 torch on the same weights: equal within rounding for
# float32 systems, the cost of quantisation for int8 ones.
REFERENCE = "ours"
GOALS = [  # (faster, slower, goal)
    ("ours-onnx-int8", "FlagEmbedding", 2.0),
    ("ours-onnx-int8", "sentence-transformers-onnx-int8", 1.2),
    ("ours-onnx", "ours", 1.2),
    ("ours", "FlagEmbedding", 1.2),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=("english", "korean"), default="english")
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--systems", nargs="+", choices=list(SCORERS), default=list(SCORERS))
    parser.add_argument(
        "--out", type=Path, help="results JSON (default benchmarks/results/score_WORKLOAD.json)"
    )
    args = parser.parse_args()
    model = WORK / "models" / args.workload
    runs = WORK / "runs" / f"score-{args.workload}"
    runs.mkdir(parents=True, exist_ok=True)
    pairs = runs / "pairs.jsonl"
    lines = (WORK / "data" / args.workload / "pairs.jsonl").read_text(encoding="utf-8").splitlines()
    pairs.write_text("\n".join(lines[: args.pairs]) + "\n", encoding="utf-8")
    env = worker_env()
    systems = args.systems
    results: dict[str, list[dict]] = {system: [] for system in systems}
    for round_number in range(args.rounds):
        order = systems if round_number % 2 == 0 else systems[::-1]
        for system in order:
            out = runs / f"{system}.json"
            command = [
                SCORERS[system],
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
    scores = {system: json.loads((runs / f"{system}.json").read_text()) for system in systems}
    differences = {}
    for system in systems:
        if REFERENCE in scores and system != REFERENCE:
            gaps = [abs(a - b) for a, b in zip(scores[REFERENCE], scores[system], strict=True)]
            differences[system] = {"max": max(gaps), "mean": statistics.mean(gaps)}
    record = {
        "benchmark": "score",
        "workload": args.workload,
        "pairs": args.pairs,
        "rounds": args.rounds,
        "reference": REFERENCE,
        "runs": results,
        "differences": differences,
        "goals": [list(goal) for goal in GOALS],
    }
    out = args.out or ROOT / "benchmarks" / "results" / f"score_{args.workload}.json"
    write_result(out, record)
    from tables import score_table

    print(score_table(str(out)))


if __name__ == "__main__":
    main()
