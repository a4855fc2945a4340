"""The hybrid first stage: dense and BM25 fused per query over the union of their top lists."""

from __future__ import annotations

import numpy as np
import pytest
from test_dense import PASSAGES, QUERIES

from reranker.preparation.retrievers import build_retriever
from reranker.preparation.retrievers.bm25 import BM25Retriever
from reranker.preparation.retrievers.dense import DenseRetriever
from reranker.preparation.retrievers.hybrid import HybridRetriever

pytest.importorskip("faiss")

# Its tests encode a corpus and build FAISS indexes.
pytestmark = pytest.mark.slow


def top(scores: np.ndarray, depth: int) -> list[int]:
    return np.lexsort((np.arange(len(scores)), -scores))[:depth].tolist()


def zscore(values: np.ndarray) -> np.ndarray:
    spread = values.std()  # population standard deviation, as the project's fusion
    return (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)


def hand_fused(dense: DenseRetriever, bm25: BM25Retriever, query: str, weight: float, depth: int):
    """The fused ranking written out: both sides' full scores, top ``depth`` of each, z-scores mixed."""
    everything = list(range(len(PASSAGES)))
    dense_scores = np.array(dense.score([query], [everything])[0])  # [N]
    bm25_scores = np.array(bm25.score([query], [everything])[0])  # [N]
    pool = sorted(set(top(dense_scores, depth)) | set(top(bm25_scores, depth)))
    fused = weight * zscore(dense_scores[pool]) + (1 - weight) * zscore(bm25_scores[pool])
    order = np.lexsort((np.array(pool), -fused))
    return [pool[i] for i in order], fused[order]


@pytest.mark.parametrize("weight", [0.3, 0.8])
def test_hybrid_equals_a_hand_computed_fusion(bert_encoder, weight):
    dense = DenseRetriever(PASSAGES, bert_encoder, pooling="mean")
    bm25 = BM25Retriever(PASSAGES)
    hybrid = HybridRetriever(dense, bm25, weight, depth=4)
    for query, hits in zip(QUERIES, hybrid.search(QUERIES, 3), strict=True):
        indices, scores = hand_fused(dense, bm25, query, weight, depth=4)
        assert hits.indices == indices[:3]
        np.testing.assert_allclose(hits.scores, scores[:3], rtol=1e-5, atol=1e-6)
    # score() of the hits themselves gives their search scores back.
    hits = hybrid.search(QUERIES, 3)
    for values, h in zip(hybrid.score(QUERIES, [h.indices for h in hits]), hits, strict=True):
        np.testing.assert_allclose(values, h.scores, rtol=1e-6, atol=1e-9)


def test_hybrid_at_the_ends_of_the_weight_is_one_side(bert_encoder):
    dense = DenseRetriever(PASSAGES, bert_encoder, pooling="mean")
    bm25 = BM25Retriever(PASSAGES)
    only_dense = HybridRetriever(dense, bm25, 1.0, depth=5).search(QUERIES, 5)
    only_bm25 = HybridRetriever(dense, bm25, 0.0, depth=5).search(QUERIES, 5)
    assert [h.indices for h in only_dense] == [h.indices for h in dense.search(QUERIES, 5)]
    assert [h.indices for h in only_bm25] == [h.indices for h in bm25.search(QUERIES, 5)]


def test_build_retriever_hybrid_end_to_end(xlmr_encoder, capsys):
    retriever = build_retriever(
        "hybrid", PASSAGES, dense_model=xlmr_encoder, pooling="cls", hybrid_weight=0.6, max_length=64
    )
    assert retriever.name == "hybrid" and retriever.fusion.weight == 0.6
    hits = retriever.search(QUERIES, 100)
    assert all(sorted(h.indices) == list(range(len(PASSAGES))) for h in hits)
    assert all(h.scores == sorted(h.scores, reverse=True) for h in hits)
    assert capsys.readouterr().err.count("more than the corpus") == 1
