"""Restate a recorded ``results.json`` under the current ``evaluate`` rules without scoring any model again.

Every metric depends on a run only through each query's rank of its gold passage, and ``results.json`` keeps
those ranks. This script reads the evaluation set again (rebuilt by ``run.sh`` steps 1-2, deterministic),
checks that its queries are the recorded ones, gives each run scores that reproduce its recorded ranks, and
evaluates them again: ``python experiments/korquad/restate.py RESULTS_JSON QUERIES CORPUS OUT_DIR``.

Under the earliest rules the first-stage row counted a forced-in gold as a miss (rank 0) and every reranker
where it ranked it. Now every row ranks the same lists end to end: a forced gold is a miss for every row in
the headline, and is counted where each row ranks it (the first stage: where ``prepare candidates`` put it)
only in the table titled as the reranking ceiling; the recorded ranks are checked against that table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from reranker.evaluation.evalsets import load_eval_set
from reranker.evaluation.evaluate import FIRST_STAGE, evaluate
from reranker.evaluation.report import format_report


def scores_for_ranks(relevant: list[list[bool]], ranks: list[int]) -> list[float]:
    """Flat scores that put each query's single gold at ``rank`` (1-based), the other candidates in list order."""
    flat = []
    for flags, rank in zip(relevant, ranks, strict=True):
        if sum(flags) != 1 or not 1 <= rank <= len(flags):
            raise ValueError(f"cannot place a gold at rank {rank} among {len(flags)} candidates")
        others = iter(range(len(flags) - 1))
        order = {}  # candidate position -> place in the ranking (0 = first)
        for position, relevant_here in enumerate(flags):
            if not relevant_here:
                place = next(others)
                order[position] = place + (place >= rank - 1)
            else:
                order[position] = rank - 1
        flat += [float(len(flags) - order[position]) for position in range(len(flags))]
    return flat


def main(results_path: str, queries: str, corpus: str, out: str) -> None:
    recorded = json.loads(Path(results_path).read_text())
    eval_set = load_eval_set(queries, corpus)
    if eval_set.qids != recorded["per_query"]["qids"]:
        raise SystemExit("error: the evaluation set's queries differ from the recorded ones")
    runs = {}
    # The first stage first, as ``evaluate`` prints it; the JSON keeps the other rows in sorted order.
    for run in sorted(recorded["table"], key=lambda name: name != FIRST_STAGE):
        ranks = recorded["per_query"][run]["rank"]
        if run == FIRST_STAGE:
            golds = [flags.index(True) + 1 for flags in eval_set.relevant]
            if any(r not in (0, g) for r, g in zip(ranks, golds, strict=True)):
                raise SystemExit("error: recorded first-stage ranks disagree with the candidate lists")
            ranks = golds
        runs[run] = scores_for_ranks(eval_set.relevant, ranks)
    compare = [(t["a"], t["b"]) for t in recorded["tests"][::2]]
    hit_ks = tuple(int(m.split("@")[1]) for m in recorded["metrics"] if m.startswith("hit@"))
    mrr_k = int(recorded["metrics"][-1].split("@")[1])
    results = evaluate(eval_set, runs, compare, mrr_k=mrr_k, hit_ks=hit_ks)
    ranked = results.get("ceiling", results)["per_query"]  # the forced golds counted, as recorded
    for run, values in recorded["per_query"].items():
        if run not in (FIRST_STAGE, "qids") and ranked[run]["rank"] != values["rank"]:
            raise SystemExit(f"error: {run}: ranks not reproduced")
    Path(out).mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    (Path(out) / "results.json").write_text(text)
    (Path(out) / "results.md").write_text(format_report(results, markdown=True))
    print(format_report(results))


if __name__ == "__main__":
    main(*sys.argv[1:])
