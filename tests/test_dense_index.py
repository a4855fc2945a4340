"""FAISS search of the dense first stage: exact ranking with ties in corpus order; HNSW."""

from __future__ import annotations

import numpy as np
import pytest

from reranker.core.errors import InputError
from reranker.preparation.retrievers.index import VectorIndex

pytest.importorskip("faiss")


def tied_corpus() -> tuple[np.ndarray, np.ndarray]:
    """Passages ``[100000, 8]`` of which 30, spread over the corpus, are the same best vector for the
    query ``[8]``. FAISS searches a corpus this size in parallel chunks and, left alone, can keep a later
    tied passage at the cut (seen with faiss-cpu 1.15 on two threads, k=20)."""
    generator = np.random.default_rng(0)
    passages = generator.normal(size=(100_000, 8)).astype(np.float32) * 0.01
    best = np.full(8, 1.0, dtype=np.float32)
    passages[generator.choice(len(passages), 30, replace=False)] = best
    return passages, best


def ranked(passages: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The full ranking by a plain dot product, ties in corpus order."""
    scores = passages @ query
    return np.lexsort((np.arange(len(passages)), -scores))


@pytest.mark.parametrize("num_queries", [1, 30])  # one query, and enough for FAISS's BLAS path
@pytest.mark.parametrize("k", [1, 5, 10, 20, 29, 30, 31, 40])
def test_exact_ties_keep_corpus_order(k, num_queries):
    passages, query = tied_corpus()
    index = VectorIndex(8)
    index.add(passages[:40_000])  # added in two parts: indices continue
    index.add(passages[40_000:])
    scores, indices = index.search(np.tile(query, (num_queries, 1)), k)
    expected = ranked(passages, query)[:k]
    assert indices.tolist() == [expected.tolist()] * num_queries
    np.testing.assert_allclose(scores[0], (passages @ query)[expected], rtol=1e-6)


def test_exact_search_on_random_vectors_equals_a_brute_force_ranking():
    generator = np.random.default_rng(1)
    passages = generator.normal(size=(500, 16)).astype(np.float32)
    queries = generator.normal(size=(25, 16)).astype(np.float32)
    index = VectorIndex(16)
    index.add(passages)
    scores, indices = index.search(queries, 10)
    for row, query in enumerate(queries):
        expected = ranked(passages, query)[:10]
        assert indices[row].tolist() == expected.tolist()
        np.testing.assert_allclose(scores[row], (passages @ query)[expected], rtol=1e-5)


def test_hnsw_finds_the_exact_neighbours_of_a_small_corpus():
    generator = np.random.default_rng(2)
    passages = generator.normal(size=(300, 16)).astype(np.float32)
    queries = generator.normal(size=(20, 16)).astype(np.float32)
    exact, approximate = VectorIndex(16), VectorIndex(16, "hnsw")
    exact.add(passages)
    approximate.add(passages)
    # A few hundred passages with a search list of 128: HNSW visits nearly all of them.
    assert approximate.search(queries, 5)[1].tolist() == exact.search(queries, 5)[1].tolist()
    np.testing.assert_allclose(approximate.vectors([4, 0]), passages[[4, 0]])


def test_unknown_index_kind_is_an_error():
    with pytest.raises(InputError, match="--index must be one of exact, hnsw"):
        VectorIndex(8, "ivf")
