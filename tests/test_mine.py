"""``prepare mine`` (BM25 window, random negatives, the false-negative filter) and ``prepare teacher``."""

from __future__ import annotations

import json
import math

import pytest
from conftest import write_jsonl

from reranker.core.errors import InputError
from reranker.preparation.mining import is_false_negative, mine, scaled
from reranker.prepare import main

CORPUS = {
    "p0": "서울은 대한민국의 수도이다.",
    "p1": "서울의 인구는 약 천만 명이다.",
    "p2": "부산은 항구 도시이다.",
    "p3": "서울 지하철은 노선이 많다.",
    "p4": "제주도는 섬이다.",
    "p5": "대전은 과학 도시이다.",
}
QUERIES = [{"qid": "q0", "query": "대한민국의 수도 서울", "pos_ids": ["p0"]}]


def table_scores(values: dict[str, float]):
    """A scoring function from hand-made scores, keyed by passage text; it records every pair it scores."""
    by_text = {CORPUS[k]: v for k, v in values.items()}
    seen = []

    def score(pairs):
        seen.extend(pairs)
        return [by_text[passage] for _, passage in pairs]

    return score, seen


def test_margin_works_for_logits_of_any_sign():
    # All-negative logits: the positive at -2; -2.5 is within a margin of 1, -3.5 is not.
    assert is_false_negative(-2.0, -2.5, 1.0) and not is_false_negative(-2.0, -3.5, 1.0)
    # A candidate above the positive is dropped whatever the margin's sign conventions of its scores.
    assert is_false_negative(-2.0, -1.0, 1.0) and is_false_negative(3.0, 5.0, 0.0)
    # A threshold as a fraction of the positive (positive * 0.9 = -1.8) would keep -1.9, 0.1 from the positive.
    assert is_false_negative(-2.0, -1.9, 0.5)
    assert scaled(0.0, "sigmoid") == 0.5 and scaled(-3.0, "logit") == -3.0


def test_window_and_random_negatives_without_filter():
    triplets, summary = mine(QUERIES, CORPUS, window=(1, 3), num_hard=2, num_random=2, seed=1)
    (triplet,) = triplets
    assert (
        triplet["pos"] == [CORPUS["p0"]] and len(triplet["neg"]) == 4 and CORPUS["p0"] not in triplet["neg"]
    )
    # BM25 ranks p0 first, then the two other passages naming 서울: the window minus the positive.
    assert set(triplet["neg"][:2]) == {CORPUS["p1"], CORPUS["p3"]}
    assert len(set(triplet["neg"])) == 4
    assert summary["first_stage_recall@3"] == 1.0 and summary["random_negatives"] == 2
    assert mine(QUERIES, CORPUS, window=(1, 3), num_hard=2, num_random=2, seed=1)[0] == triplets  # seeded


def test_filter_drops_candidates_near_the_positive_with_all_negative_logits():
    # Positive -4; with margin 1 a candidate above -5 is a likely false negative.
    score, seen = table_scores({"p0": -4.0, "p1": -4.5, "p2": -9.0, "p3": -6.0, "p4": -7.0, "p5": -8.0})
    triplets, summary = mine(QUERIES, CORPUS, window=(1, 6), num_hard=4, score=score, margin=1.0)
    negatives = triplets[0]["neg"]
    assert CORPUS["p1"] not in negatives and len(negatives) == 4
    assert set(negatives) == {CORPUS[k] for k in ("p2", "p3", "p4", "p5")}
    assert (
        summary["removed_by_filter"] == 1 and summary["candidates_scored"] == len(seen) - 1
    )  # minus the positive


def test_filter_scores_at_most_max_scored_candidates_a_query():
    # A teacher that scores the positive below everything: each candidate is dropped; the cap bounds the cost.
    score, seen = table_scores({"p0": -9.0, "p1": 1.0, "p2": 1.0, "p3": 1.0, "p4": 1.0, "p5": 1.0})
    triplets, summary = mine(QUERIES, CORPUS, (1, 6), 1, score=score, margin=0.0, max_scored=3)
    assert triplets[0]["neg"] == [] and summary["candidates_scored"] == 3 == summary["removed_by_filter"]
    assert summary["queries_short_of_hard_negatives"] == 1


def test_filter_replaces_dropped_candidates_in_rounds_of_twice_the_need():
    # Every candidate but p5 scores above the positive: each is dropped and the next one drawn replaces it.
    score, seen = table_scores({"p0": 0.0, "p1": 1.0, "p2": 1.0, "p3": 1.0, "p4": 1.0, "p5": -1.0})
    rounds = []

    def counted(pairs):
        rounds.append(len(pairs))
        return score(pairs)

    positions = []
    for seed in range(6):
        rounds.clear()
        seen.clear()
        triplets, summary = mine(QUERIES, CORPUS, (1, 6), 1, seed=seed, score=counted, margin=0.0)
        assert triplets[0]["neg"] == [CORPUS["p5"]], seed
        drawn = [passage for _, passage in seen[1:]]  # seen[0]: the positive, scored first
        at = drawn.index(CORPUS["p5"])
        # Rounds of 2 (twice the one still needed) from a pool of 5, up to the round that finds p5.
        expected = [min(2, 5 - 2 * i) for i in range(at // 2 + 1)]
        assert rounds[1:] == expected, seed
        assert summary["candidates_scored"] == sum(expected) == summary["removed_by_filter"] + 1
        positions.append(at)
    assert max(positions) >= 2  # some seed needed more than one round


def test_filter_on_probabilities():
    # Logits 2.0 (positive) and 1.0: probabilities 0.88 and 0.73; a 0.1 margin keeps it, 0.2 drops it.
    score, _ = table_scores({"p0": 2.0, "p1": 1.0, "p2": -5, "p3": -5, "p4": -5, "p5": -5})
    kept = mine(QUERIES, CORPUS, (1, 6), 5, score=score, margin=0.1, scale="sigmoid")[0][0]["neg"]
    dropped = mine(QUERIES, CORPUS, (1, 6), 5, score=score, margin=0.2, scale="sigmoid")[0][0]["neg"]
    assert CORPUS["p1"] in kept and CORPUS["p1"] not in dropped


def test_bad_options_and_files(tmp_path):
    with pytest.raises(InputError, match="--window needs 1 <= FROM <= TO"):
        mine(QUERIES, CORPUS, window=(5, 2))
    with pytest.raises(InputError, match="--filter-margin must be a finite number"):
        mine(QUERIES, CORPUS, margin=math.nan)
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [{"id": k, "text": v} for k, v in CORPUS.items()])
    queries = write_jsonl(tmp_path / "q.jsonl", [{"qid": "q0", "query": "서울", "pos_ids": ["p9"]}])
    out = tmp_path / "out.jsonl"
    with pytest.raises(SystemExit, match="q.jsonl, line 1: field 'pos_ids': 'p9' is not in the corpus"):
        main(["mine", "--queries", str(queries), "--corpus", str(corpus), "--out", str(out)])
    (tmp_path / "q.tsv").write_text("q0\t서울\n")
    (tmp_path / "qrels.tsv").write_text("q0 0 p0\n")
    with pytest.raises(SystemExit, match="qrels.tsv, line 1: expected 'qid 0 pid relevance' or 'qid pid'"):
        main(["mine", "--queries", str(tmp_path / "q.tsv"), "--corpus", str(corpus), "--qrels",
              str(tmp_path / "qrels.tsv"), "--out", str(out)])  # fmt: skip
    assert not out.exists()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "pos": ["p"]}\n{"query": "q", "pos": "p"}\n')
    with pytest.raises(
        SystemExit, match="bad.jsonl, line 2: field 'pos' must be a non-empty list of strings"
    ):
        main(["teacher", str(bad), "--model", "unused", "--out", str(out)])
    assert not out.exists()


@pytest.mark.slow
def test_mine_command_with_a_cross_encoder_filter(tmp_path, tiny_bert, capsys):
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [{"id": k, "text": v} for k, v in CORPUS.items()])
    queries = write_jsonl(tmp_path / "q.jsonl", QUERIES)
    out = tmp_path / "out.jsonl"
    main(["mine", "--queries", str(queries), "--corpus", str(corpus), "--out", str(out), "--window", "1", "6",
          "--num-hard-negatives", "3", "--filter-model", tiny_bert, "--max-length", "512", "--filter-margin", "-100"])  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    # A margin of -100 drops only candidates scoring 100 above the positive: none.
    assert summary["removed_by_filter"] == 0 and summary["candidates_scored"] == 5
    assert len(json.loads(out.read_text())["neg"]) == 3
    main(["mine", "--queries", str(queries), "--corpus", str(corpus), "--out", str(out), "--window", "1", "6",
          "--num-hard-negatives", "3", "--filter-model", tiny_bert, "--max-length", "512", "--filter-margin", "100"])  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert summary["removed_by_filter"] == 5 and json.loads(out.read_text())["neg"] == []


@pytest.mark.slow
def test_teacher_scores_align_with_their_passages_and_resume(tmp_path, tiny_bert, monkeypatch):
    from reranker.model.pair_scorer import PairScorer as Reranker

    records = [
        {"query": "서울", "pos": [CORPUS["p0"]], "neg": [CORPUS["p1"], CORPUS["p2"]], "type": "x"},
        {"query": "부산", "pos": [CORPUS["p2"]], "neg": [CORPUS["p0"]]},
    ]
    source = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    main(
        [
            "teacher",
            str(source),
            "--model",
            tiny_bert,
            "--out",
            str(out),
            "--batch-size",
            "2",
            "--max-length",
            "512",
        ]
    )
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    reference = Reranker(tiny_bert)
    for record, new in zip(records, scored, strict=True):
        assert {k: v for k, v in new.items() if not k.endswith("_scores")} == record  # other fields kept
        assert new["pos_scores"] == pytest.approx(
            reference.score([(record["query"], p) for p in record["pos"]]), abs=1e-6
        )
        assert new["neg_scores"] == pytest.approx(
            reference.score([(record["query"], n) for n in record["neg"]]), abs=1e-6
        )
    assert (tmp_path / "out.jsonl.scores.sqlite").is_file()
    first = out.read_bytes()

    # A second run finds every pair in the cache: the model never scores, and the file is the same.
    def refuse(*args, **kwargs):
        raise AssertionError("scored a cached pair")

    monkeypatch.setattr(Reranker, "score", refuse)
    out.unlink()
    main(
        [
            "teacher",
            str(source),
            "--model",
            tiny_bert,
            "--out",
            str(out),
            "--batch-size",
            "2",
            "--max-length",
            "512",
        ]
    )
    assert out.read_bytes() == first
