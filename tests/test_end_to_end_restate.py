"""experiments/end_to_end.py: a recorded forced-list result restated equals evaluate's own end-to-end one."""

import importlib.util
import random
from pathlib import Path

from reranker.evaluation.evalsets import EvalSet
from reranker.evaluation.tables import FIRST_STAGE, evaluate

ROOT = Path(__file__).resolve().parents[1]


def restater():
    spec = importlib.util.spec_from_file_location("end_to_end", ROOT / "experiments" / "end_to_end.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def forced_set(queries: int = 40, depth: int = 10, seed: int = 0) -> EvalSet:
    """Top-``depth`` lists, a quarter of them with the missed gold forced in last."""
    rng = random.Random(seed)
    qids, relevant, forced = [], [], []
    for number in range(queries):
        missed = number % 4 == 0
        gold = depth - 1 if missed else rng.randrange(depth)
        qids.append(f"q{number}")
        relevant.append([position == gold for position in range(depth)])
        forced.append(missed)
    candidates = [[f"{qid}/{p}" for p in range(depth)] for qid in qids]
    return EvalSet(qids, ["" for _ in qids], candidates, relevant, forced)


def test_restated_results_equal_the_end_to_end_evaluation():
    eval_set = forced_set()
    rng = random.Random(1)
    runs = {FIRST_STAGE: eval_set.first_stage_scores()}
    for seed in (1, 2):
        runs[f"ft s{seed}"] = [rng.random() for _ in eval_set.pairs()]
    systems = {"ft": ["ft s1", "ft s2"]}
    direct = evaluate(eval_set, runs, [(FIRST_STAGE, "ft")], systems=systems)
    # What an earlier evaluate recorded: every row ranked the forced golds where they sat.
    recorded = {
        "queries": len(eval_set),
        "candidates": sum(len(c) for c in eval_set.candidates),
        "metrics": direct["metrics"],
        "table": {run: {} for run in runs},
        "tests": [{"a": FIRST_STAGE, "b": run} for run in runs if run != FIRST_STAGE],
        "per_query": {"qids": eval_set.qids, **direct["ceiling"]["per_query"]},
    }
    retrieved = {qid: not forced for qid, forced in zip(eval_set.qids, eval_set.forced, strict=True)}
    restated = restater().restate(recorded, retrieved)
    assert restated["table"] == direct["table"]
    assert restated["first_stage_recall"]["recall"] == 0.75
    (test,) = [t for t in restated["tests"] if t["metric"] == "mrr@10"]
    (expected,) = [t for t in direct["tests"] if t["metric"] == "mrr@10"]
    assert test == expected
    for run in runs:
        missed = [r for r, f in zip(restated["per_query"][run]["rank"], eval_set.forced, strict=True) if f]
        assert missed == [0] * 10  # a gold the first stage missed is a miss for every row
