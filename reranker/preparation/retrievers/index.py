"""Inner-product search over passage embeddings with FAISS: exact (``IndexFlatIP``) or HNSW.

Exact search ranks ties in corpus order: FAISS's top-k does not promise which of several equal scores it
keeps at the cut, so one extra neighbour is asked for; a query whose k-th and (k+1)-th scores are equal
is answered from a range search (every passage scoring at least its k-th score), sorted by score and
then index. HNSW is approximate: its results are sorted the same way, but a passage it does not visit
is missing whatever its score (``benchmarks/encode.py`` measures its recall against exact search).
"""

from __future__ import annotations

import numpy as np

from reranker.core.errors import InputError

KINDS = ("exact", "hnsw")
QUERY_BLOCK = 4096  # queries per FAISS call: bounds the [Q, k] result arrays of a large query set


def _faiss():
    try:
        import faiss
    except ModuleNotFoundError:
        raise InputError(
            "the dense retriever needs FAISS: pip install 'reranker[dense]' (faiss-cpu)"
        ) from None
    return faiss


class VectorIndex:
    """Passage embeddings ``[N, D]`` searched by inner product (cosine when they are normalised).

    ``hnsw_m`` (links per node), ``ef_construction`` and ``ef_search`` (candidate lists while building
    and searching) are FAISS's HNSW knobs; larger values trade speed and memory for recall.
    """

    def __init__(
        self,
        dim: int,
        kind: str = "exact",
        hnsw_m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
    ) -> None:
        faiss = _faiss()
        if kind not in KINDS:
            raise InputError(f"--index must be one of {', '.join(KINDS)}, got {kind!r}")
        self.kind, self.dim, self.ef_search = kind, dim, ef_search
        if kind == "exact":
            self.index = faiss.IndexFlatIP(dim)
        else:
            self.index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efConstruction = ef_construction

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def add(self, embeddings: np.ndarray) -> None:
        """Append passages ``[n, D]``; their indices continue from the passages already added."""
        self.index.add(np.ascontiguousarray(embeddings, dtype=np.float32))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and indices ``[Q, k]`` (float32, int64), best first; ``k`` at most the corpus size."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = min(k, self.size)
        scores = np.empty((len(queries), k), dtype=np.float32)
        indices = np.empty((len(queries), k), dtype=np.int64)
        for start in range(0, len(queries), QUERY_BLOCK):
            block = slice(start, start + QUERY_BLOCK)
            scores[block], indices[block] = self._search_block(queries[block], k)
        return scores, indices

    def _search_block(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        wanted = min(k + 1, self.size) if self.kind == "exact" else k
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = max(self.ef_search, wanted)
        scores, indices = self.index.search(queries, wanted)  # [Q, wanted]
        out_scores = np.empty((len(queries), k), dtype=np.float32)
        out_indices = np.empty((len(queries), k), dtype=np.int64)
        for row in range(len(queries)):
            row_scores, row_indices = scores[row], indices[row]
            if wanted > k and row_scores[k] == row_scores[k - 1]:
                row_scores, row_indices = self._at_least_kth(queries[row], k)
            found = row_indices >= 0  # HNSW pads with -1 when it finds fewer than k
            row_scores, row_indices = row_scores[found], row_indices[found]
            order = np.lexsort((row_indices, -row_scores))[:k]  # last key sorts first
            out_scores[row] = _padded(row_scores[order], k, -np.inf)
            out_indices[row] = _padded(row_indices[order], k, -1)
        return out_scores, out_indices

    def _at_least_kth(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Every passage scoring at least the query's k-th score, however many tie there.

        Both calls take one query, so FAISS scores them on the same (non-BLAS) path and the k-th score
        is comparable; its inner-product range search keeps scores ``> radius``.
        """
        scores, _ = self.index.search(query[None, :], k)  # [1, k]
        radius = np.nextafter(scores[0, k - 1], np.float32(-np.inf))
        _, scores, indices = self.index.range_search(query[None, :], float(radius))
        return scores, indices

    def vectors(self, indices: list[int]) -> np.ndarray:
        """The stored embeddings ``[len(indices), D]`` of chosen passages."""
        if not indices:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.index.reconstruct_batch(np.asarray(indices, dtype=np.int64))


def _padded(values: np.ndarray, length: int, fill: float) -> np.ndarray:
    return np.concatenate([values, np.full(length - len(values), fill, dtype=values.dtype)])
