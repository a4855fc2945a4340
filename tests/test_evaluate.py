"""Evaluation sets, the evaluate table against hand-computed figures and pytrec_eval, and the paired test."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from reranker.core.errors import InputError
from reranker.evaluation.evalsets import EvalSet, load_eval_set
from reranker.evaluation.evaluate import FIRST_STAGE, evaluate, main
from reranker.evaluation.significance import paired_test

CORPUS = [{"id": f"p{i}", "text": f"passage {i}"} for i in range(5)]
QUERIES = [
    {"qid": "a", "query": "short", "candidate_ids": ["p0", "p1", "p2"], "pos_ids": ["p1"]},
    {"qid": "b", "query": "a much longer query text", "candidate_ids": ["p3", "p4"], "pos_ids": ["p3"]},
    {
        "qid": "c",
        "query": "third",
        "candidate_ids": ["p2", "p0", "p4", "p1"],
        "pos_ids": ["p1"],
        "forced": True,
    },
]


def write_jsonl(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def write_csv(path: Path, rows: list[dict]) -> str:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


@pytest.fixture
def queries_set(tmp_path) -> tuple[str, str]:
    return write_jsonl(tmp_path / "q.jsonl", QUERIES), write_jsonl(tmp_path / "c.jsonl", CORPUS)


def test_queries_format(queries_set):
    eval_set = load_eval_set(*queries_set)
    assert eval_set.qids == ["a", "b", "c"]
    assert eval_set.candidates[1] == ["passage 3", "passage 4"]
    assert eval_set.relevant == [[False, True, False], [True, False], [False, False, False, True]]
    assert eval_set.forced == [False, False, True]
    scores, relevance, mask = eval_set.dense(list(range(9)))
    assert scores.shape == (3, 4) and mask.sum() == 9 and scores[1, :2].tolist() == [3.0, 4.0]


def test_csv_format_with_gold_text_and_gold_index(tmp_path):
    contexts = json.dumps(["x", "y", "z"])
    by_text = write_csv(tmp_path / "t.csv", [{"question": "q1", "contexts": contexts, "gold_context": "y"},
                                             {"question": "q2", "contexts": contexts, "gold_context": "w"}])  # fmt: skip
    eval_set = load_eval_set(by_text)
    assert eval_set.relevant == [[False, True, False], [False, False, False]]  # "w" was not retrieved: a miss
    by_index = write_csv(tmp_path / "i.csv", [{"qid": "7", "question": "q1", "contexts": contexts, "gold_index": "2"},
                                              {"qid": "8", "question": "q2", "contexts": contexts, "gold_index": "-1"}])  # fmt: skip
    eval_set = load_eval_set(by_index)
    assert eval_set.qids == ["7", "8"] and eval_set.relevant == [[False, False, True], [False, False, False]]
    assert eval_set.forced is None


def test_triplet_format(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"query": "q", "pos": ["a"], "neg": ["b", "a", "c"]}])
    eval_set = load_eval_set(path)
    assert eval_set.candidates == [["a", "b", "c"]] and eval_set.relevant == [[True, False, False]]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"candidate_ids": ["p0", "p9"]}, "line 1: field 'candidate_ids': 'p9' is not in the corpus"),
        ({"candidate_ids": []}, "line 1: field 'candidate_ids' is empty"),
        ({"pos_ids": ["p9"]}, "line 1: field 'pos_ids': 'p9' is not in the corpus"),
        ({"pos_ids": []}, "line 1: field 'pos_ids' is empty"),
        (
            {"candidate_ids": ["x1", "x2"]},
            "line 1: field 'candidate_ids': none of its 2 ids is in the corpus",
        ),
        ({"qid": "b"}, "line 1: field 'qid'"),  # checked below for the duplicate on line 2
    ],
)
def test_bad_queries_name_line_and_field(tmp_path, change, message):
    records = [{**QUERIES[0], **change}, *QUERIES[1:]]
    path = write_jsonl(tmp_path / "q.jsonl", records)
    corpus = write_jsonl(tmp_path / "c.jsonl", CORPUS)
    if change.get("qid") == "b":
        message = "line 2: field 'qid': duplicate query id 'b'"
    with pytest.raises(InputError, match=message):
        load_eval_set(path, corpus)


def test_duplicate_corpus_ids_and_bad_csv(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [*CORPUS, {"id": "p2", "text": "again"}])
    with pytest.raises(InputError, match="c.jsonl, line 6: field 'id': duplicate passage id 'p2'"):
        load_eval_set(write_jsonl(tmp_path / "q.jsonl", QUERIES), corpus)
    no_gold = write_csv(tmp_path / "n.csv", [{"question": "q", "contexts": "[]"}])
    with pytest.raises(InputError, match="expected columns 'question', 'contexts' and 'gold_context' or"):
        load_eval_set(no_gold)
    not_list = write_csv(tmp_path / "l.csv", [{"question": "q", "contexts": "just text", "gold_index": "0"}])
    with pytest.raises(InputError, match="l.csv, row 2: field 'contexts' must be a JSON list of strings"):
        load_eval_set(not_list)
    with pytest.raises(SystemExit, match="^error: .*l.csv, row 2"):
        main([not_list])


def test_table_matches_hand_computed_values(queries_set):
    eval_set = load_eval_set(*queries_set)
    # Model: a ranks p1 first; b ranks p3 second; c ranks p1 third (behind p0, and the tie with p2 counts against it).
    model = [0.1, 0.9, 0.2, 0.3, 0.5, 0.4, 0.5, 0.0, 0.4]
    results = evaluate(
        eval_set, {FIRST_STAGE: eval_set.first_stage_scores(), "m": model}, [(FIRST_STAGE, "m")]
    )
    # End to end, first stage ranks: a 2, b 1; c's gold was forced in, not retrieved: a miss for every row.
    assert results["per_query"][FIRST_STAGE]["rank"] == [2, 1, 0]
    assert results["table"][FIRST_STAGE] == pytest.approx(
        {"hit@1": 1 / 3, "hit@3": 2 / 3, "hit@5": 2 / 3, "mrr@10": (1 / 2 + 1) / 3}
    )
    assert results["forced"] == 1
    assert results["per_query"]["m"]["rank"] == [1, 2, 0]
    assert results["table"]["m"] == pytest.approx(
        {"hit@1": 1 / 3, "hit@3": 2 / 3, "hit@5": 2 / 3, "mrr@10": (1 + 1 / 2) / 3}
    )
    # The reranking ceiling counts c's forced gold where each row puts it: 4th for the first stage, 3rd for m.
    ceiling = results["ceiling"]
    assert ceiling["title"] == "reranking ceiling: golds forced into 1 of 3 lists (not an end-to-end figure)"
    assert ceiling["per_query"][FIRST_STAGE]["rank"] == [2, 1, 4] and ceiling["per_query"]["m"]["rank"] == [
        1,
        2,
        3,
    ]
    assert ceiling["table"]["m"]["mrr@10"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    retrieved = results["slices"]["gold"]["retrieved by the first stage"]
    assert retrieved["queries"] == 2 and retrieved["m"]["mrr@10"] == pytest.approx(3 / 4)
    assert results["first_stage_recall"] == {
        "k": 4,
        "shortest_list": 2,
        "retrieved": 2,
        "queries": 3,
        "recall": 2 / 3,
    }
    lengths = results["slices"]["query length"]
    assert lengths["0-19 chars"]["queries"] == 2 and lengths["20-39 chars"]["queries"] == 1
    assert [t["metric"] for t in results["tests"]] == ["mrr@10", "hit@1"]


def test_agrees_with_pytrec_eval():
    pytrec_eval = pytest.importorskip("pytrec_eval")
    rng = random.Random(3)
    qids, candidates, relevant, scores = [], [], [], []
    for q in range(60):
        size = rng.randint(2, 25)
        gold = set(rng.sample(range(size), rng.randint(1, 2)))
        qids.append(f"q{q}")
        candidates.append([f"d{i}" for i in range(size)])
        relevant.append([i in gold for i in range(size)])
        scores += [rng.random() for _ in range(size)]
    eval_set = EvalSet(qids, [f"query {q}" for q in qids], candidates, relevant)
    results = evaluate(eval_set, {"m": scores}, [], samples=10)
    qrels = {
        q: {d: int(r) for d, r in zip(c, rel, strict=True)}
        for q, c, rel in zip(qids, candidates, relevant, strict=True)
    }
    run, full_run, start = {}, {}, 0
    for q, c in zip(qids, candidates, strict=True):
        ranked = sorted(zip(c, scores[start : start + len(c)], strict=True), key=lambda item: -item[1])
        full_run[q] = dict(ranked)
        run[q] = dict(ranked[:10])  # MRR@10 is the reciprocal rank within the top 10
        start += len(c)
    success = pytrec_eval.RelevanceEvaluator(qrels, {"success.1,3,5"}).evaluate(full_run)
    reciprocal = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run)
    expected = {
        "mrr@10": sum(v["recip_rank"] for v in reciprocal.values()) / len(qids),
        **{f"hit@{k}": sum(v[f"success_{k}"] for v in success.values()) / len(qids) for k in (1, 3, 5)},
    }
    for name, value in expected.items():
        assert results["table"]["m"][name] == pytest.approx(value, abs=1e-9)
    assert results["per_query"]["m"]["mrr@10"] == pytest.approx(
        [reciprocal[q]["recip_rank"] for q in qids], abs=1e-9
    )


def test_paired_test_identical_and_clearly_better():
    rng = random.Random(0)
    a = [rng.random() for _ in range(200)]
    same = paired_test(a, list(a), samples=2000)
    assert same["difference"] == 0 and same["p_value"] == 1.0 and same["ci_low"] == same["ci_high"] == 0
    better = paired_test(a, [x + 0.05 + 0.02 * rng.random() for x in a], samples=2000)
    assert (
        better["p_value"] < 0.001
        and 0.05 < better["ci_low"] < better["difference"] < better["ci_high"] < 0.07
    )
    noise = paired_test(a, [x + rng.gauss(0, 0.1) for x in a], samples=2000)
    assert noise["p_value"] > 0.05 and noise["ci_low"] < 0 < noise["ci_high"]


@pytest.mark.slow
def test_evaluate_with_a_model_writes_identical_reports(tiny_bert, queries_set, tmp_path):
    data, corpus = queries_set
    args = [
        data,
        "--corpus",
        corpus,
        "--model",
        f"tiny={tiny_bert}",
        "--max-length",
        "32",
        "--samples",
        "200",
    ]
    first = main([*args, "--out", str(tmp_path / "a")])
    main([*args, "--out", str(tmp_path / "b"), "--cache", str(tmp_path / "cache")])
    assert list(first["table"]) == [FIRST_STAGE, "tiny", "tiny fused"]
    for name in ("results.json", "results.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert "| without reranker |" in (tmp_path / "a" / "results.md").read_text()
    cached = main([*args, "--cache", str(tmp_path / "cache")])  # read back from the cache
    assert cached["per_query"]["tiny"] == first["per_query"]["tiny"]
    with pytest.raises(SystemExit, match="^error: --compare names unknown rows"):
        main([*args, "--compare", FIRST_STAGE, "other"])


def test_a_query_with_several_positives_needs_only_one_among_its_candidates(tmp_path):
    # MS MARCO-style judgements: two positives, the first stage retrieved one of them.
    records = [{**QUERIES[0], "pos_ids": [QUERIES[0]["pos_ids"][0], "p4"]}, *QUERIES[1:]]
    eval_set = load_eval_set(
        write_jsonl(tmp_path / "q.jsonl", records), write_jsonl(tmp_path / "c.jsonl", CORPUS)
    )
    assert eval_set.relevant[0] == [c in records[0]["pos_ids"] for c in records[0]["candidate_ids"]]
    assert sum(eval_set.relevant[0]) == 1
