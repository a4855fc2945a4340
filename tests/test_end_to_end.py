"""The end-to-end headline of ``reranker evaluate``: a gold the first stage missed is a miss for every row,
the first stage's recall is printed as the ceiling, a forced gold is only counted under a table titled as
the reranking ceiling, and sets with nothing to measure are refused in one line."""

from __future__ import annotations

import pytest
from conftest import write_jsonl

from reranker.evaluation.evalsets import EvalSet, load_eval_set
from reranker.evaluation.evaluate import main
from reranker.evaluation.tables import FIRST_STAGE, evaluate

CORPUS = [{"id": f"p{i}", "text": f"passage {i}"} for i in range(6)]
# Query c's gold p5 is not among its candidates: the first stage missed it.
QUERIES = [
    {"qid": "a", "query": "first query", "candidate_ids": ["p0", "p1", "p2"], "pos_ids": ["p1"]},
    {"qid": "b", "query": "second query", "candidate_ids": ["p3", "p4"], "pos_ids": ["p3"]},
    {"qid": "c", "query": "third query", "candidate_ids": ["p2", "p0", "p4"], "pos_ids": ["p5"]},
]


def flipped_set(forced: bool | None) -> tuple[EvalSet, list[float]]:
    """30 queries whose gold the first stage missed and 8 it ranked first, 4 candidates each, and a reranker
    that puts the last candidate first and the first second. ``forced``: True, the misses' golds were forced
    in last (and recorded); None, forced in but not recorded (how a forced gold was counted before); False,
    the lists as retrieved (the last candidate is not relevant)."""
    relevant = [[False, False, False, forced is not False] for _ in range(30)]
    relevant += [[True, False, False, False] for _ in range(8)]
    queries = [f"query {i}" for i in range(len(relevant))]
    eval_set = EvalSet(
        queries,
        queries,
        [[f"{q} passage {c}" for c in range(4)] for q in queries],
        relevant,
        forced=None if forced is None else [forced] * 30 + [False] * 8,
    )
    reranker = [score for _ in queries for score in (3.0, 1.0, 0.0, 4.0)]
    return eval_set, reranker


def verdicts(eval_set: EvalSet, reranker: list[float]) -> tuple[dict, list[str]]:
    runs = {FIRST_STAGE: eval_set.first_stage_scores(), "reranker": reranker}
    results = evaluate(eval_set, runs, [(FIRST_STAGE, "reranker")], samples=2000)
    return results, [test["verdict"] for test in results["tests"]]


def test_forcing_the_gold_in_would_invert_the_verdict_the_end_to_end_headline_keeps():
    # Counted where it was forced, each missed gold is a gain for the reranker (rank 4 -> 1): "better".
    _, counted = verdicts(*flipped_set(forced=None))
    assert counted == ["better", "better"]
    # End to end the reranker only ever moves a retrieved gold from first to second: "worse", whether the
    # misses' golds were forced in (and recorded) or the lists are as retrieved.
    recorded, recorded_verdicts = verdicts(*flipped_set(forced=True))
    retrieved, retrieved_verdicts = verdicts(*flipped_set(forced=False))
    assert recorded_verdicts == retrieved_verdicts == ["worse", "worse"]
    assert recorded["table"] == retrieved["table"] and recorded["tests"] == retrieved["tests"]
    assert recorded["table"]["reranker"]["mrr@10"] == pytest.approx(8 * 0.5 / 38)
    # The forced file keeps the figure forcing gives, titled as what it is; the retrieved one has none.
    ceiling = recorded["ceiling"]
    assert (
        ceiling["title"] == "reranking ceiling: golds forced into 30 of 38 lists (not an end-to-end figure)"
    )
    assert ceiling["table"]["reranker"]["mrr@10"] == pytest.approx((30 + 8 * 0.5) / 38)
    assert "ceiling" not in retrieved


def test_a_missed_gold_is_rank_zero_for_every_row_and_recall_is_printed(tiny_bert, tmp_path, capsys):
    data = write_jsonl(tmp_path / "q.jsonl", QUERIES)
    corpus = write_jsonl(tmp_path / "c.jsonl", CORPUS)
    args = [str(data), "--corpus", str(corpus), "--model", f"tiny={tiny_bert}", "--max-length", "32"]
    results = main([*args, "--samples", "200", "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    assert list(results["table"]) == [FIRST_STAGE, "tiny", "tiny fused"]
    for row in results["table"]:
        ranks = results["per_query"][row]["rank"]
        assert ranks[2] == 0 and all(rank > 0 for rank in ranks[:2]), row
        assert results["per_query"][row]["mrr@10"][2] == 0.0 and results["per_query"][row]["hit@5"][2] == 0.0
        assert results["table"][row]["hit@5"] == pytest.approx(2 / 3)  # the ceiling: recall over the lists
    assert results["first_stage_recall"]["recall"] == pytest.approx(2 / 3)
    recall = (
        "first-stage recall@3: 0.6667 (lists of 2 to 3 candidates), 2 of 3 queries with a judged positive "
        "among their candidates: the ceiling of every row's hit@3"
    )
    assert recall in printed and recall in (tmp_path / "out" / "results.md").read_text()
    assert printed.index(recall) < printed.index(FIRST_STAGE)
    assert "reranking ceiling" not in printed and "ceiling" not in results


def test_a_file_with_forced_golds_titles_its_ceiling_table_and_leads_with_the_end_to_end_one(
    tmp_path, capsys
):
    forced = [
        {**QUERIES[0]},
        {**QUERIES[1]},
        {**QUERIES[2], "candidate_ids": ["p2", "p0", "p5"], "forced": True},
    ]
    data = write_jsonl(tmp_path / "q.jsonl", forced)
    results = main([str(data), "--corpus", str(write_jsonl(tmp_path / "c.jsonl", CORPUS)), "--samples", "50"])
    printed = capsys.readouterr().out
    title = "reranking ceiling: golds forced into 1 of 3 lists (not an end-to-end figure)"
    assert title in printed and printed.index("end-to-end:") < printed.index(title)
    assert results["per_query"][FIRST_STAGE]["rank"] == [2, 1, 0]  # the headline: the forced gold is a miss
    assert results["ceiling"]["per_query"][FIRST_STAGE]["rank"] == [2, 1, 3]  # where it was put


@pytest.mark.parametrize(
    ("queries", "message"),
    [
        # Every gold missed: no row can score anything.
        ([{**q, "pos_ids": ["p5"], "candidate_ids": ["p0", "p1"]} for q in QUERIES],
         r"^error: .*q.jsonl: no query has a judged positive among its retrieved candidates \(3 queries\): nothing to measure"),
        # Every gold forced in: end to end, the same.
        ([{**q, "forced": True} for q in QUERIES[:2]], r"^error: .*q.jsonl: no query has a judged positive"),
        # A query whose candidates are all unknown to the corpus (the wrong corpus, typically).
        ([QUERIES[0], {**QUERIES[1], "candidate_ids": ["x3", "x4"]}],
         r"^error: .*q.jsonl, line 2: field 'candidate_ids': none of its 2 ids is in the corpus .*c.jsonl"),
    ],
)  # fmt: skip
def test_bad_sets_are_refused_in_one_line(tmp_path, queries, message):
    data = write_jsonl(tmp_path / "q.jsonl", queries)
    corpus = write_jsonl(tmp_path / "c.jsonl", CORPUS)
    with pytest.raises(SystemExit, match=message) as stopped:
        main([str(data), "--corpus", str(corpus), "--out", str(tmp_path / "out")])
    assert "\n" not in str(stopped.value.code) and not (tmp_path / "out").exists()


def test_a_csv_of_misses_only_is_refused_and_a_miss_is_read(tmp_path):
    (tmp_path / "m.csv").write_text('question,contexts,gold_index\nq1,"[""x"", ""y""]",-1\n')
    with pytest.raises(SystemExit, match=r"^error: .*m.csv: no query has a judged positive"):
        main([str(tmp_path / "m.csv")])
    eval_set = load_eval_set(
        write_jsonl(tmp_path / "q.jsonl", QUERIES), write_jsonl(tmp_path / "c.jsonl", CORPUS)
    )
    assert eval_set.retrieved() == [True, True, False] and eval_set.relevant[2] == [False, False, False]


def test_the_fusion_weight_is_tuned_on_the_end_to_end_lists():
    # Counted, the forced golds would pull a towards the reranker; end to end they are misses at every a,
    # so a forced file tunes as the lists as retrieved do.
    from reranker.evaluation.evaluate import fuse_runs

    options = {"method": "zscore", "weight": None, "rrf_k": 60, "folds": 3, "mrr_k": 10, "seed": 0}
    found = {}
    for forced in (True, False, None):
        eval_set, reranker = flipped_set(forced)
        runs = {FIRST_STAGE: eval_set.first_stage_scores(), "reranker": reranker}
        found[forced] = fuse_runs(eval_set, runs, None, {}, options)["reranker"]["folds"]
    assert found[True] == found[False] != found[None]
