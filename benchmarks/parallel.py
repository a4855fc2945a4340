"""What scoring over several processes costs: ``python benchmarks/parallel.py [--triplets 300] [--rounds 2]``.

Runs ``reranker prepare teacher`` on the English workload's triplets (``setup.py``) three ways, alternating
the order every round: one process (no ``--devices``), ``--devices 1`` (Lightning's predict loop, shards)
and ``--devices 2`` (two processes under DDP, gloo, on the CPU). Each runs twice: on one triplet, whose wall
time is the fixed cost of a run (start-up, model load, process group, shard files), and on ``--triplets``,
whose time less that fixed cost gives the scoring rate. Prints a table with the largest peak RSS of any
process of the run. Checks that the three outputs are the same bytes (``--devices``) or scores within 1e-5.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time

from common import PYTHONS, WORK, worker_env

WAYS = {"one process": [], "--devices 1": ["--devices", "1"], "--devices 2": ["--devices", "2"]}


def command_of(way: str, triplets, out) -> list[str]:
    command = [PYTHONS["ours"], "-m", "reranker.prepare", "teacher", str(triplets), "--model",
               str(WORK / "models" / "english"), "--out", str(out), "--batch-size", "64", *WAYS[way]]  # fmt: skip
    return command + (["--accelerator", "cpu"] if WAYS[way] else [])


def run(way: str, triplets, out) -> float:
    """Wall seconds of one ``prepare teacher`` run, from nothing scored (no output, shards or cache)."""
    for stale in (out, out.with_name(out.name + ".shards"), out.with_name(out.name + ".scores.sqlite")):
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    start = time.perf_counter()
    done = subprocess.run(command_of(way, triplets, out), env=worker_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{way} failed:\n{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triplets", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    runs = WORK / "runs" / "parallel"
    runs.mkdir(parents=True, exist_ok=True)
    lines = (WORK / "data" / "english" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    inputs = {"small": runs / "one.jsonl", "large": runs / "many.jsonl"}
    inputs["small"].write_text(lines[0] + "\n", encoding="utf-8")
    inputs["large"].write_text("\n".join(lines[: args.triplets]) + "\n", encoding="utf-8")
    pairs = sum(
        len(json.loads(line)["pos"]) + len(json.loads(line)["neg"]) for line in lines[: args.triplets]
    )
    times = {(way, size): [] for way in WAYS for size in inputs}
    ways = list(WAYS)
    for round_number in range(args.rounds):
        for way in ways if round_number % 2 == 0 else ways[::-1]:
            for size, triplets in inputs.items():
                out = runs / f"{way.replace(' ', '_').strip('-')}-{size}.jsonl"
                seconds = run(way, triplets, out)
                times[(way, size)].append(seconds)
                print(f"round {round_number + 1}: {way}, {size}: {seconds:.1f} s", flush=True)
    # The RSS of each way, measured alone: RUSAGE_CHILDREN keeps the largest of every child so far.
    peaks = {way: _peak_alone(way, inputs["large"], runs) for way in ways}
    outputs = {way: (runs / f"{way.replace(' ', '_').strip('-')}-large.jsonl").read_text() for way in WAYS}
    same = outputs["--devices 1"] == outputs["--devices 2"]
    print(f"\n{args.triplets} triplets ({pairs} pairs), MiniLM-L6, {args.rounds} round(s); "
          f"--devices 1 and 2 write the same bytes: {same}")  # fmt: skip
    print(
        "| way | fixed cost s (1 triplet) | wall s | scoring pairs/s (wall less fixed cost) | peak RSS GB |"
    )
    print("|---|---|---|---|---|")
    for way in WAYS:
        fixed = statistics.median(times[(way, "small")])
        wall = statistics.median(times[(way, "large")])
        print(
            f"| {way} | {fixed:.1f} | {wall:.1f} | {pairs / max(wall - fixed, 1e-9):.1f} | {peaks[way]:.2f} |"
        )


def _peak_alone(way: str, triplets, runs) -> float:
    """The peak RSS of one run in a fresh child, so no earlier child's peak is counted."""
    code = (
        "import sys, resource, subprocess; subprocess.run(sys.argv[1:], check=True, capture_output=True);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20)"
    )
    out = runs / "rss.jsonl"
    for stale in (out, runs / "rss.jsonl.scores.sqlite"):
        stale.unlink(missing_ok=True)
    shutil.rmtree(runs / "rss.jsonl.shards", ignore_errors=True)
    command = [sys.executable, "-c", code, *command_of(way, triplets, out)]
    done = subprocess.run(command, env=worker_env(), capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{way} failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
