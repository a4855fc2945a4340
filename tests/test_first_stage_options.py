"""``--retriever`` wiring of prepare candidates / mine / squad, mining's first-stage margins and ceiling,
first-stage scores on mined triplets, empty texts, clamped depths, and the scoring model's default length."""

from __future__ import annotations

import json

import pytest
from conftest import write_jsonl

from reranker.core.errors import InputError
from reranker.core.triplets import parse_record
from reranker.preparation.candidates import prepare_candidates
from reranker.preparation.mining import mine
from reranker.preparation.retrievers import Hits
from reranker.preparation.retrievers.bm25 import BM25Index
from reranker.prepare import main
from tests.test_mine import CORPUS, QUERIES


class TableRetriever:
    """A first stage with hand-made, query-independent scores keyed by passage text."""

    name = "table"

    def __init__(self, passages, table: dict[str, float]) -> None:
        self.passages, self.table = list(passages), table

    def search(self, queries, k):
        order = sorted(range(len(self.passages)), key=lambda i: (-self.table[self.passages[i]], i))[:k]
        return [Hits(order, [self.table[self.passages[i]] for i in order]) for _ in queries]

    def score(self, queries, passages):
        return [[self.table[self.passages[i]] for i in indices] for indices in passages]


def table(values: dict[str, float]):
    """A ``retriever`` argument: builds a :class:`TableRetriever` over the passages it is given."""
    by_text = {CORPUS[k]: v for k, v in values.items()}
    return lambda passages: TableRetriever(passages, by_text)


SCORES = {"p0": 10.0, "p1": 9.5, "p2": 8.0, "p3": 7.0, "p4": 5.0, "p5": -1.0}


def negatives(triplets) -> set[str]:
    return {key for key, text in CORPUS.items() if text in triplets[0]["neg"]}


def test_mined_negatives_follow_the_given_retriever_and_carry_its_scores():
    triplets, summary = mine(QUERIES, CORPUS, (2, 3), 2, retriever=table(SCORES))
    # The table ranks p1, p2 second and third: BM25 would rank p1 and p3 there.
    assert negatives(triplets) == {"p1", "p2"} and summary["retriever"] == "table"
    (triplet,) = triplets
    key_of = {text: key for key, text in CORPUS.items()}
    assert triplet["pos_first_stage"] == [10.0]
    assert triplet["neg_first_stage"] == [SCORES[key_of[text]] for text in triplet["neg"]]


def test_default_mining_carries_bm25_scores_that_training_reads():
    triplets, _ = mine(QUERIES, CORPUS, (1, 6), 3, 2, seed=3)
    (triplet,) = triplets
    bm25 = BM25Index(list(CORPUS.values())).scores(QUERIES[0]["query"])
    texts = list(CORPUS.values())
    assert triplet["pos_first_stage"] == [float(bm25[texts.index(t)]) for t in triplet["pos"]]
    assert triplet["neg_first_stage"] == [float(bm25[texts.index(t)]) for t in triplet["neg"]]
    assert len(triplet["neg_first_stage"]) == 5  # random negatives scored too
    checked = parse_record(triplet, "mined, line 1")  # what training's data module reads
    assert checked["neg_first_stage"] == triplet["neg_first_stage"]


def test_absolute_margin_drops_candidates_near_the_positive():
    # Positive 10; margin 1 drops 9.5 (> 9) and keeps 8.0.
    triplets, summary = mine(QUERIES, CORPUS, (1, 6), 5, retriever=table(SCORES), absolute_margin=1.0)
    assert negatives(triplets) == {"p2", "p3", "p4", "p5"} and summary["removed_by_first_stage"] == 1
    triplets, _ = mine(QUERIES, CORPUS, (1, 6), 5, retriever=table(SCORES), absolute_margin=2.5)
    assert negatives(triplets) == {"p3", "p4", "p5"}


def test_relative_margin_for_positive_and_negative_scores():
    # Positive 10, relative margin 0.1: threshold 9 drops 9.5.
    triplets, _ = mine(QUERIES, CORPUS, (1, 6), 5, retriever=table(SCORES), relative_margin=0.1)
    assert negatives(triplets) == {"p2", "p3", "p4", "p5"}
    # Positive -2, margin 0.5: the threshold is -3 (below the positive): -2.5 is dropped, -3.5 kept.
    # pos * (1 - margin) = -1 would keep -2.5 and even -1.5, which scores above the positive.
    scores = {"p0": -2.0, "p1": -1.5, "p2": -2.5, "p3": -3.5, "p4": -4.0, "p5": -5.0}
    triplets, summary = mine(QUERIES, CORPUS, (1, 6), 5, retriever=table(scores), relative_margin=0.5)
    assert negatives(triplets) == {"p3", "p4", "p5"} and summary["removed_by_first_stage"] == 2


def test_max_score_drops_candidates_above_it_and_the_cross_encoder_filter_sees_the_rest():
    seen = []

    def score(pairs):
        seen.extend(passage for _, passage in pairs)
        return [0.0 for _ in pairs]

    triplets, summary = mine(QUERIES, CORPUS, (1, 6), 5, score=score, margin=-1.0, retriever=table(SCORES),
                             max_score=7.5)  # fmt: skip
    assert negatives(triplets) == {"p3", "p4", "p5"} and summary["removed_by_first_stage"] == 2
    assert CORPUS["p1"] not in seen and CORPUS["p2"] not in seen  # dropped before the cross-encoder


def test_bad_margins_are_errors():
    with pytest.raises(InputError, match="--relative-margin must be in"):
        mine(QUERIES, CORPUS, relative_margin=1.5)
    with pytest.raises(InputError, match="--absolute-margin must be a finite number"):
        mine(QUERIES, CORPUS, absolute_margin=float("inf"))


def test_candidates_use_the_given_retriever_and_its_score_of_a_forced_gold(tmp_path):
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [{"id": k, "text": v} for k, v in CORPUS.items()])
    queries = write_jsonl(tmp_path / "q.jsonl", [{"qid": "q0", "query": "서울", "pos_ids": ["p4"]}])
    out = tmp_path / "c.jsonl"
    prepare_candidates(queries, corpus, out, top_k=3, retriever=table(SCORES), force_gold=True)
    record = json.loads(out.read_text())
    # p4 (5.0) is not in the top 3: it replaces the last candidate with its own score.
    assert record["candidate_ids"] == ["p0", "p1", "p4"] and record["candidate_scores"] == [10.0, 9.5, 5.0]
    assert record["forced"] is True


def test_retriever_flag_reaches_the_first_stage(tmp_path, capsys):
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [{"id": k, "text": v} for k, v in CORPUS.items()])
    queries = write_jsonl(tmp_path / "q.jsonl", QUERIES)
    for command in (["candidates"], ["mine", "--window", "1", "6"]):
        with pytest.raises(SystemExit, match="--retriever dense needs --dense-model"):
            main([*command, "--queries", str(queries), "--corpus", str(corpus), "--out", str(tmp_path / "o"),
                  "--retriever", "dense"])  # fmt: skip
    main(["mine", "--queries", str(queries), "--corpus", str(corpus), "--out", str(tmp_path / "m.jsonl"),
          "--window", "1", "6", "--num-hard-negatives", "5", "--absolute-margin", "0"])  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    # BM25 scores no candidate above the positive here: a margin of 0 drops none.
    assert summary["removed_by_first_stage"] == 0 and summary["hard_negatives"] == 5


def test_empty_texts_name_file_line_and_field(tmp_path):
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [{"id": "a", "text": "서울"}, {"id": "b", "text": "  "}])
    queries = write_jsonl(tmp_path / "q.jsonl", [{"qid": "1", "query": "서울", "pos_ids": ["a"]}])
    out = tmp_path / "o.jsonl"
    with pytest.raises(SystemExit, match=r"^error: .*corpus.jsonl, line 2: field 'text' must be a non-empty"):
        main(["candidates", "--queries", str(queries), "--corpus", str(corpus), "--out", str(out)])
    with pytest.raises(SystemExit, match=r"^error: .*corpus.jsonl, line 2: field 'text' must be a non-empty"):
        main(["mine", "--queries", str(queries), "--corpus", str(corpus), "--out", str(out)])
    good = write_jsonl(tmp_path / "good.jsonl", [{"id": "a", "text": "서울"}])
    blank = write_jsonl(tmp_path / "blank.jsonl", [{"qid": "1", "query": " \t", "pos_ids": ["a"]}])
    with pytest.raises(SystemExit, match=r"^error: .*blank.jsonl, line 1: field 'query' must be a non-empty"):
        main(["candidates", "--queries", str(blank), "--corpus", str(good), "--out", str(out)])
    assert not out.exists()
    squad = tmp_path / "squad.json"
    squad.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [
        {"context": "서울은 수도이다.", "qas": [{"id": "x", "question": "  ", "answers": [
            {"text": "서울", "answer_start": 0}]}]}]}]}, ensure_ascii=False))  # fmt: skip
    with pytest.raises(
        SystemExit, match=r"squad.json: data\[0\].paragraphs\[0\].qas\[0\]: field 'question' is"
    ):
        main(["squad", str(squad), "--out", str(tmp_path / "s")])


def test_more_neighbours_than_the_corpus_are_clamped_and_said_once(tmp_path, capsys):
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [{"id": k, "text": v} for k, v in CORPUS.items()])
    queries = write_jsonl(tmp_path / "q.jsonl", [QUERIES[0], {**QUERIES[0], "qid": "q1"}])
    out = tmp_path / "c.jsonl"
    main(
        ["candidates", "--queries", str(queries), "--corpus", str(corpus), "--out", str(out), "--top-k", "50"]
    )
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert notes == ["note: --top-k asks for 50 passages; the corpus holds 6, using 6"]
    assert all(len(json.loads(line)["candidate_ids"]) == 6 for line in out.read_text().splitlines())


def test_squad_negatives_and_validation_scores_come_from_the_given_retriever(tmp_path):
    from reranker.preparation.squad import build_triplets
    from reranker.preparation.squad_reader import Article, Passage, Question

    passages = [Passage(k, "T", v, 0, len(v)) for k, v in CORPUS.items()]
    articles = [Article("T", passages, [Question("q0", "T", QUERIES[0]["query"], ["p0"], ["수도이다"])])]
    import random

    (triplet,) = build_triplets(articles, 0, 2, (1, 10), random.Random(0), first_stage_scores=True,
                                retriever=table(SCORES))  # fmt: skip
    assert triplet["neg"] == [CORPUS["p1"], CORPUS["p2"]]
    assert triplet["pos_first_stage"] == [10.0] and triplet["neg_first_stage"] == [9.5, 8.0]
    # A question whose gold (p4, 5.0) is below the top 3 is left out of lists that must retrieve it.
    articles[0].questions.append(Question("q1", "T", "다른 질문", ["p4"], ["없는 답"]))
    both = build_triplets(articles, 0, 2, (1, 10), random.Random(0), retriever=table(SCORES))
    retrieved = build_triplets(
        articles, 0, 2, (1, 10), random.Random(0), retriever=table(SCORES), gold_within=3
    )
    assert [t["query"] for t in both] == [QUERIES[0]["query"], "다른 질문"]
    assert retrieved == both[:1]
    assert (
        build_triplets(articles, 0, 2, (1, 10), random.Random(0), retriever=table(SCORES), gold_within=5)
        == both
    )


def test_scoring_model_length_defaults_to_the_models_own(tmp_path, monkeypatch):
    import reranker.model.pair_scorer as pair_scorer

    made = []

    class Recording:
        def __init__(self, path, max_length=None, device=None, dtype=None):
            made.append(max_length)
            self.max_length = 77 if max_length is None else max_length

        def score(self, pairs, batch_size):
            return [0.5 for _ in pairs]

    monkeypatch.setattr(pair_scorer, "PairScorer", Recording)
    source = write_jsonl(
        tmp_path / "in.jsonl", [{"query": "서울", "pos": [CORPUS["p0"]], "neg": [CORPUS["p2"]]}]
    )
    main(["teacher", str(source), "--model", "m", "--out", str(tmp_path / "t.jsonl")])
    main(["teacher", str(source), "--model", "m", "--out", str(tmp_path / "u.jsonl"), "--max-length", "64"])
    assert made == [None, 64]  # None reaches the Reranker as is: the length recorded with the model
