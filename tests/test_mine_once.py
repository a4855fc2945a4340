"""Mining encodes each query once and gives the triplets of the slow way (one query at a time, encoded again
for its search, its positives' and its negatives' scores), for BM25, dense and hybrid; BM25 scores of
chosen passages and the top-k cut equal the whole corpus's; a window past the corpus stops before any
encoding; an interrupted run reuses the passage-embedding cache and writes the same file."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from conftest import TOPICS, write_jsonl

from reranker.core.errors import InputError
from reranker.core.sampling import fill_distinct
from reranker.preparation import mining
from reranker.preparation.mine import prepare_mine
from reranker.preparation.mining import first_stage_drops, mine
from reranker.preparation.prepare import main
from reranker.preparation.retrievers.base import TextQueries
from reranker.preparation.retrievers.bm25 import BM25Index, BM25Queries, BM25Retriever, top
from reranker.preparation.retrievers.dense import DenseQueries, DenseRetriever
from reranker.preparation.retrievers.embedder import Embedder
from reranker.preparation.retrievers.hybrid import HybridQueries, HybridRetriever

pytest.importorskip("faiss")

PASSAGES = [sentence for sentences in TOPICS.values() for sentence in sentences]
CORPUS = {f"p{i}": text for i, text in enumerate(PASSAGES)}


def judged_queries() -> list[dict]:
    """A question per passage; every third has two positives (its passage and the one before)."""
    queries = []
    for number, text in enumerate(PASSAGES):
        topic = next(t for t, sentences in TOPICS.items() if text in sentences)
        positives = [f"p{number}"] + ([f"p{number - 1}"] if number % 3 == 2 else [])
        question = f"{topic}에 대한 질문 {text.split()[1]} 무엇인가"
        queries.append({"qid": f"q{number}", "query": question, "pos_ids": positives})
    return queries


CASES = [
    dict(window=(2, 8), num_hard=3, num_random=2, seed=1),
    dict(window=(1, 12), num_hard=4, num_random=3, seed=7, relative_margin=0.05),
    dict(window=(1, 18), num_hard=5, num_random=1, seed=3, absolute_margin=0.01, max_score=0.9),
]
# Largest difference from the slow way's first-stage scores. BM25 sums the same float32 terms in the same
# order: equal. Dense: the slow way encodes each query alone, without padding; a padded batch gives the same
# embedding up to float32 rounding (cosines measured up to 5e-7 apart). Hybrid: z-scores
# divide those differences by a query's spread of scores (measured up to 2.2e-6).
TOLERANCE = {"bm25": 0.0, "dense": 1e-5, "hybrid": 2e-5, "hybrid-shallow": 2e-5}


def slow_mine(queries, retriever, window, num_hard, num_random, seed, **margins):
    """The mining rules the slow way: each query searched, its positives and its negatives scored, one query
    at a time, the query encoded again for each."""
    ids = list(CORPUS)
    position = {passage_id: i for i, passage_id in enumerate(ids)}
    first_stage = retriever([CORPUS[i] for i in ids])
    rng = random.Random(seed)
    hits = [first_stage.search([query["query"]], window[1])[0] for query in queries]
    positive_scores = [
        first_stage.score([query["query"]], [[position[p] for p in query["pos_ids"]]])[0] for query in queries
    ]
    triplets, dropped = [], 0
    pools = []
    for query, hit, positives in zip(queries, hits, positive_scores, strict=True):
        pool = []
        for index, value in list(zip(hit.indices, hit.scores, strict=True))[window[0] - 1 :]:
            if ids[index] in query["pos_ids"]:
                continue
            if first_stage_drops(max(positives), value, **margins):
                dropped += 1
            else:
                pool.append(ids[index])
        rng.shuffle(pool)
        pools.append(pool)
    for query, pool, positives in zip(queries, pools, positive_scores, strict=True):
        negatives = pool[:num_hard]
        excluded = {*query["pos_ids"], *negatives}
        negatives += fill_distinct(rng, ids, [], num_random, excluded.__contains__)
        (negative_scores,) = first_stage.score([query["query"]], [[position[n] for n in negatives]])
        triplets.append({"neg": [CORPUS[n] for n in negatives], "pos_first_stage": positives,
                         "neg_first_stage": negative_scores})  # fmt: skip
    return triplets, dropped


def retriever_of(name: str, model: str):
    if name == "bm25":
        return BM25Retriever
    if name == "dense":
        return lambda passages: DenseRetriever(passages, model, pooling="mean")
    # "hybrid-shallow": candidates 4 deep, so the window's search and the scores' normalisation differ.
    depth = 4 if name == "hybrid-shallow" else 100
    return lambda passages: HybridRetriever(
        DenseRetriever(passages, model, pooling="mean"), BM25Retriever(passages), 0.4, depth=depth
    )


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 5 queries: 18 queries cross several blocks, as a large query set does."""
    for encoded in (BM25Queries, DenseQueries, HybridQueries, TextQueries):
        monkeypatch.setattr(encoded, "block", 5)


@pytest.mark.parametrize("name", ["bm25", "dense", "hybrid", "hybrid-shallow"])
@pytest.mark.slow
def test_mined_triplets_equal_the_slow_way(bert_encoder, name, small_blocks):
    queries = judged_queries()
    for options in CASES:
        expected, dropped = slow_mine(queries, retriever_of(name, bert_encoder), **options)
        triplets, summary = mine(queries, CORPUS, retriever=retriever_of(name, bert_encoder), **options)
        assert summary["removed_by_first_stage"] == dropped, options
        for query, got, want in zip(queries, triplets, expected, strict=True):
            assert got["neg"] == want["neg"], (options, query["qid"])
            for field in ("pos_first_stage", "neg_first_stage"):
                assert len(got[field]) == len(want[field])
                np.testing.assert_allclose(got[field], want[field], rtol=0, atol=TOLERANCE[name])
    assert dropped > 0  # the margins did drop candidates: the comparison covers them


class Encodings:
    """Counts the texts the embedder encodes and its forward passes, queries and passages apart."""

    def __init__(self, monkeypatch, fail_after_passage_calls: int | None = None) -> None:
        self.texts = {"query: ": 0, "passage: ": 0}
        self.forward_passes, self.passage_calls = 0, 0
        encode, embed_batch = Embedder.encode, Embedder.embed_batch

        def counted_encode(embedder, texts, prefix="", progress=None):
            if prefix == "passage: ":
                if self.passage_calls == fail_after_passage_calls:
                    raise KeyboardInterrupt  # the run killed while encoding this shard
                self.passage_calls += 1
            self.texts[prefix] += len(texts)
            return encode(embedder, texts, prefix, progress)

        def counted_batch(embedder, batch):
            self.forward_passes += 1
            return embed_batch(embedder, batch)

        monkeypatch.setattr(Embedder, "encode", counted_encode)
        monkeypatch.setattr(Embedder, "embed_batch", counted_batch)


@pytest.mark.parametrize("name", ["dense", "hybrid"])
@pytest.mark.slow
def test_each_query_is_encoded_once(bert_encoder, name, monkeypatch):
    encodings = Encodings(monkeypatch)
    queries = judged_queries()
    options = {"dense_model": bert_encoder, "pooling": "mean", "batch_size": 4}
    options |= {"query_prefix": "query: ", "passage_prefix": "passage: "}
    mine(queries, CORPUS, (1, 10), 3, 2, retriever=name, retriever_options=options)
    assert encodings.texts == {"query: ": len(queries), "passage: ": len(PASSAGES)}
    assert encodings.forward_passes == 2 * 5  # 18 passages and 18 queries, 4 a batch


def test_bm25_scores_of_chosen_passages_equal_the_whole_corpus_scores():
    index = BM25Index(PASSAGES)
    rng = np.random.default_rng(0)
    questions = [query["query"] for query in judged_queries()]
    for query in [*questions, "서울 서울 서울은", "xyz 없는단어"]:
        token_ids = index.token_ids(query)
        everything = index.scores_from_ids(token_ids)  # [N]
        chosen = rng.integers(0, len(PASSAGES), size=25)  # repeats and any order
        assert index.passage_scores(token_ids, chosen.tolist()).tolist() == everything[chosen].tolist()
    assert index.passage_scores(index.token_ids("xyz"), [3, 1]).tolist() == [0.0, 0.0]


def test_the_top_k_cut_equals_a_full_sort_with_ties_in_index_order():
    rng = np.random.default_rng(1)
    for _ in range(50):
        scores = rng.integers(0, 4, size=30).astype(np.float32)  # many ties
        full = np.lexsort((np.arange(30), -scores)).tolist()
        for k in (1, 5, 17, 30, 40):
            assert top(scores, k) == full[:k]


def test_a_window_past_the_corpus_stops_before_any_encoding(tmp_path, bert_encoder, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("encoded before checking the window")

    monkeypatch.setattr(Embedder, "__init__", refuse)
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [{"id": k, "text": v} for k, v in CORPUS.items()])
    queries = write_jsonl(tmp_path / "q.jsonl", judged_queries())
    out = tmp_path / "out.jsonl"
    with pytest.raises(SystemExit) as stop:
        main(["mine", "--queries", str(queries), "--corpus", str(corpus), "--out", str(out), "--window",
              "10", "50", "--retriever", "dense", "--dense-model", bert_encoder, "--pooling", "mean"])  # fmt: skip
    assert str(stop.value) == "error: --window TO is 50 but the corpus holds 18 passages: give TO <= 18"
    assert not out.exists()
    with pytest.raises(InputError, match="--window TO is 100 but the corpus holds 18 passages"):
        mine(judged_queries(), CORPUS)  # the default window, BM25


@pytest.mark.parametrize("killed", ["while encoding passages", "after the search"])
@pytest.mark.slow
def test_an_interrupted_run_reuses_the_embedding_cache_and_writes_the_same_file(
    tmp_path, bert_encoder, monkeypatch, killed
):
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [{"id": k, "text": v} for k, v in CORPUS.items()])
    queries = write_jsonl(tmp_path / "q.jsonl", judged_queries())
    options = dict(pooling="mean", query_prefix="query: ", passage_prefix="passage: ", shard_size=4)

    def run(out, cache=None) -> None:
        def dense(passages):
            return DenseRetriever(passages, bert_encoder, cache_dir=cache, **options)

        prepare_mine(queries, corpus, out, window=(1, 10), num_hard_negatives=3, num_random_negatives=2,
                     retriever=dense)  # fmt: skip

    run(tmp_path / "uncached.jsonl")
    cache = str(tmp_path / "cache")
    if killed == "after the search":

        def stop(*args, **kwargs):
            raise KeyboardInterrupt

        with monkeypatch.context() as patch:
            patch.setattr(mining, "_draw", stop)
            with pytest.raises(KeyboardInterrupt):
                run(tmp_path / "out.jsonl", cache)
        encoded_before = len(PASSAGES)
    else:
        with monkeypatch.context() as patch:
            Encodings(patch, fail_after_passage_calls=2)  # shards 0 and 1 written, then killed
            with pytest.raises(KeyboardInterrupt):
                run(tmp_path / "out.jsonl", cache)
        encoded_before = 8
    assert not (tmp_path / "out.jsonl").exists()
    encodings = Encodings(monkeypatch)
    run(tmp_path / "out.jsonl", cache)
    assert encodings.texts == {"query: ": 18, "passage: ": len(PASSAGES) - encoded_before}
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "uncached.jsonl").read_bytes()
    assert len(json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])["neg"]) == 5
