"""What scoring over several processes costs: ``python benchmarks/parallel.py [--triplets 300] [--rounds 2]``.

Runs ``reranker prepare teacher`` on the English workload's triplets (``setup.py``) three ways, alternating
the order every round: one process (no ``--devices``), ``--devices 1`` (Lightning's predict loop, shards)
and ``--devices 2`` (two processes under DDP, gloo, on the CPU). Each runs twice: on one triplet, whose wall
time is the fixed cost of a run (start-up, model load, process group, shard files), and on ``--triplets``,
whose time less that fixed cost gives the scoring rate. Prints a table with the largest peak RSS of any
process of each way's runs, and whether ``--devices 1`` and ``--devices 2`` wrote the same bytes.
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


# Runs the command as its child and prints the largest peak RSS of its processes (RUSAGE_CHILDREN counts
# every descendant waited for), so each timed run also gives its memory.
PEAK_RSS = (
    "import sys, resource, subprocess; done = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
    "sys.stderr.write(done.stderr); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20);"
    "sys.exit(done.returncode)"
)


def run(way: str, triplets, out) -> tuple[float, float]:
    """Wall seconds and the largest peak RSS (GB) of any process of one ``prepare teacher`` run, from
    nothing scored (no output, shards or cache)."""
    for stale in (out, out.with_name(out.name + ".shards"), out.with_name(out.name + ".scores.sqlite")):
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    command = [sys.executable, "-c", PEAK_RSS, *command_of(way, triplets, out)]
    start = time.perf_counter()
    done = subprocess.run(command, env=worker_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{way} failed:\n{done.stderr[-3000:]}")
    return seconds, float(done.stdout.strip().splitlines()[-1])


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
    peaks = dict.fromkeys(WAYS, 0.0)
    ways = list(WAYS)
    for round_number in range(args.rounds):
        for way in ways if round_number % 2 == 0 else ways[::-1]:
            for size, triplets in inputs.items():
                out = runs / f"{way.replace(' ', '_').strip('-')}-{size}.jsonl"
                seconds, peak = run(way, triplets, out)
                peaks[way] = max(peaks[way], peak)
                times[(way, size)].append(seconds)
                print(f"round {round_number + 1}: {way}, {size}: {seconds:.1f} s", flush=True)
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


if __name__ == "__main__":
    main()
