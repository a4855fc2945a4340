"""Restate a recorded ``results.json`` end to end, without scoring any model again.

    python experiments/end_to_end.py flags CANDIDATES.jsonl RECORDED_RESULTS.json RETRIEVED.json
    python experiments/end_to_end.py restate RECORDED_RESULTS.json RETRIEVED.json OUT_DIR [--group REGEX]
        [--compare A B ...]

Results recorded before ``reranker evaluate`` measured end to end ranked lists into which ``prepare candidates``
had forced every gold the first stage missed (at rank k): every reranker lifted those golds, a gain no
deployed pipeline sees. Every metric depends on a run only through each query's rank of its gold, which
``results.json`` keeps, so the end-to-end figures follow from the recorded ranks and one flag per query:
did the first stage retrieve the gold?

- ``flags`` reads a rebuilt candidates file (the experiment's data scripts are deterministic; ids only are
  kept) and writes ``{qid: retrieved}``, after checking that the rebuilt lists are the recorded ones: each
  retrieved gold sits at the recorded first-stage rank, and each missed one was recorded at the forced rank.
- ``restate`` counts a query whose gold was missed as a miss for every row and evaluates the recorded runs
  again with :func:`reranker.evaluation.tables.evaluate`: rows per seed, a mean row per system, paired tests of
  per-query seed means with Holm-adjusted p-values, seeds agreeing and the verdict. ``--group`` names the
  system of a row: a regular expression whose ``system`` group (plus a ``fused`` group, kept) names it.
  The comparisons are the recorded ones, between the systems their rows belong to (``--compare A B`` adds
  one). Fused rows keep the weight the recorded run chose; it was tuned with the forced golds among the
  queries.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from reranker.core.jsonl import read_jsonl
from reranker.evaluation.evalsets import EvalSet
from reranker.evaluation.report import format_report
from reranker.evaluation.tables import FIRST_STAGE, evaluate

SEEDED_ROW = r"^(?P<system>.+?) s\d+(?P<fused> fused)?$"


def list_depth(recorded: dict) -> int:
    """The length of every recorded candidate list (top-k lists: the same for every query)."""
    depth, rest = divmod(recorded["candidates"], recorded["queries"])
    if rest:
        raise SystemExit("error: the recorded lists differ in length; only top-k lists can be restated")
    return depth


def retrieved_flags(candidates: Path, recorded: dict) -> dict[str, bool]:
    """``{qid: the first stage retrieved a gold}`` from a rebuilt candidates file, checked against the record."""
    first_stage = dict(
        zip(recorded["per_query"]["qids"], recorded["per_query"][FIRST_STAGE]["rank"], strict=True)
    )
    depth = list_depth(recorded)
    flags = {}
    for _, record in read_jsonl(candidates):
        qid, ids, golds = record["qid"], record["candidate_ids"], set(record["pos_ids"])
        ranks = [position + 1 for position, passage in enumerate(ids) if passage in golds]
        retrieved = bool(ranks) and not record.get("forced", False)
        if retrieved and ranks[0] != first_stage[qid]:
            raise SystemExit(f"error: {qid}: rebuilt rank {ranks[0]}, recorded {first_stage[qid]}")
        if not retrieved and first_stage[qid] != depth:
            raise SystemExit(f"error: {qid}: missed by the rebuilt list, recorded at rank {first_stage[qid]}")
        flags[qid] = retrieved
    if sorted(flags) != sorted(first_stage):
        raise SystemExit("error: the rebuilt candidates' queries differ from the recorded ones")
    return flags


def synthetic_set(recorded: dict, retrieved: dict[str, bool]) -> EvalSet:
    """Lists of ``depth`` placeholder candidates with the gold where the first stage ranked it (a missed gold
    where it was forced in, flagged ``forced``): ranks, not texts, decide every metric."""
    qids = recorded["per_query"]["qids"]
    depth = list_depth(recorded)
    relevant = [[position + 1 == rank for position in range(depth)]
                for rank in recorded["per_query"][FIRST_STAGE]["rank"]]  # fmt: skip
    candidates = [[f"{qid}/{position}" for position in range(depth)] for qid in qids]
    forced = [not retrieved[qid] for qid in qids]
    return EvalSet(qids, ["" for _ in qids], candidates, relevant, forced)


def scores_for_rank(depth: int, gold: int, rank: int) -> list[float]:
    """Scores of ``depth`` candidates that put the gold (0-based position ``gold``) at ``rank`` (1-based)."""
    others = iter(range(depth - 1))
    places = [rank - 1 if position == gold else next(others) for position in range(depth)]
    places = [place + (place >= rank - 1 and position != gold) for position, place in enumerate(places)]
    return [float(depth - place) for place in places]


def restate(
    recorded: dict,
    retrieved: dict[str, bool],
    group: str = SEEDED_ROW,
    extra: list[tuple[str, str]] | None = None,
) -> dict:
    """The end-to-end results of ``recorded``'s runs; ``extra``: more ``(a, b)`` system comparisons."""
    eval_set = synthetic_set(recorded, retrieved)
    depth = len(eval_set.candidates[0])
    golds = [flags.index(True) for flags in eval_set.relevant]
    runs, systems = {}, {}
    for row in sorted(recorded["table"], key=lambda name: (name != FIRST_STAGE, name)):
        ranks = recorded["per_query"][row]["rank"]
        runs[row] = [
            s for gold, rank in zip(golds, ranks, strict=True) for s in scores_for_rank(depth, gold, rank)
        ]
        if row != FIRST_STAGE:
            match = re.match(group, row)  # a row the pattern does not name is a system of its own
            name = match.group("system") + (match.group("fused") or "") if match else row
            systems.setdefault(name, []).append(row)
    owner = {run: name for name, runs_of in systems.items() for run in runs_of} | {FIRST_STAGE: FIRST_STAGE}
    # The recorded comparisons, between the systems their rows belong to, then any asked for.
    compare = list(dict.fromkeys([(owner[t["a"]], owner[t["b"]]) for t in recorded["tests"]] + (extra or [])))
    hit_ks = tuple(int(m.split("@")[1]) for m in recorded["metrics"] if m.startswith("hit@"))
    mrr_k = int(next(m for m in recorded["metrics"] if m.startswith("mrr@")).split("@")[1])
    results = evaluate(eval_set, runs, compare, systems=systems, mrr_k=mrr_k, hit_ks=hit_ks)
    # With the forced golds counted where they were put, the recorded ranks come back, or the set is wrong.
    reproduced = results["ceiling"] if eval_set.forced_count() else results
    for row in runs:
        if reproduced["per_query"][row]["rank"] != recorded["per_query"][row]["rank"]:
            raise SystemExit(f"error: {row}: recorded ranks not reproduced")
    del results["slices"]["query length"]  # the placeholders have no text to measure
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    flags = commands.add_parser("flags")
    flags.add_argument("candidates", type=Path)
    flags.add_argument("recorded", type=Path)
    flags.add_argument("out", type=Path)
    again = commands.add_parser("restate")
    again.add_argument("recorded", type=Path)
    again.add_argument("retrieved", type=Path)
    again.add_argument("out", type=Path)
    again.add_argument("--group", default=SEEDED_ROW)
    again.add_argument("--compare", nargs=2, action="append", default=[], metavar=("A", "B"),
                       help="a comparison of two systems beside the recorded ones")  # fmt: skip
    arguments = parser.parse_args(argv)
    recorded = json.loads(arguments.recorded.read_text(encoding="utf-8"))
    if arguments.command == "flags":
        result = retrieved_flags(arguments.candidates, recorded)
        arguments.out.write_text(json.dumps(result, indent=0, sort_keys=True) + "\n", encoding="utf-8")
        print(f"{sum(result.values())} of {len(result)} golds retrieved")
        return
    retrieved = json.loads(arguments.retrieved.read_text(encoding="utf-8"))
    results = restate(recorded, retrieved, arguments.group, [tuple(pair) for pair in arguments.compare])
    arguments.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    (arguments.out / "results.json").write_text(text, encoding="utf-8")
    (arguments.out / "results.md").write_text(format_report(results, markdown=True), encoding="utf-8")
    print(format_report(results))


def summary(path: Path) -> str:
    """Markdown of an end-to-end ``results.json``: the recall line, each row's MRR@10 and hit@1, each test."""
    results = json.loads(Path(path).read_text(encoding="utf-8"))
    ceiling = results["first_stage_recall"]
    recall = f"recall@{ceiling['k']} {ceiling['recall']:.4f}"
    lines = [
        f"End to end, {results['queries']} queries; first-stage {recall} (the ceiling of every row's hits).",
        "",
        "| row | MRR@10 | hit@1 |",
        "|---|---|---|",
        *(f"| {row} | {v['mrr@10']:.4f} | {v['hit@1']:.4f} |" for row, v in results["table"].items()),
        "",
        "| b vs a | metric | difference [95% CI] | p | Holm p | seeds agreeing | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in results["tests"]:
        lines.append(
            f"| {t['b']} vs {t['a']} | {t['metric']} | {t['difference']:+.4f} [{t['ci_low']:+.3f}, "
            f"{t['ci_high']:+.3f}] | {t['p_value']:.4f} | {t['p_holm']:.4f} | {t['seeds_agreeing']}/{t['seeds']} "
            f"| {t['verdict']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
