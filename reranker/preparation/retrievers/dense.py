"""Dense first stage: a bi-encoder embeds queries and passages, FAISS ranks passages by inner product.

With normalisation (the default) the inner product is the cosine similarity. Prefixes are put before
every query and passage (e5 models expect ``query: `` and ``passage: ``). Passage embeddings are
encoded in shards, cached in ``cache_dir`` when given (see ``embedding_cache.py``), and searched exactly
(``index="exact"``) or with HNSW (``index="hnsw"``, approximate; for corpora of millions of passages).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from reranker.core.errors import InputError
from reranker.core.progress import Progress
from reranker.model.identity import model_identity
from reranker.preparation.retrievers.base import Hits, score, search
from reranker.preparation.retrievers.embedder import Embedder
from reranker.preparation.retrievers.embedding_cache import (
    SHARD_SIZE,
    EmbeddingCache,
    corpus_identity,
)
from reranker.preparation.retrievers.index import QUERY_BLOCK, VectorIndex


class DenseRetriever:
    """A bi-encoder over a fixed list of passages behind the ``Retriever`` interface.

    Args:
        passages: the corpus, in order; hits are indices into it.
        model: an embedding model folder or hub name (Hugging Face or sentence-transformers).
        pooling: ``mean`` or ``cls``; None reads the model's own pooling config (an error without one).
        query_prefix, passage_prefix: text put before each query / passage.
        normalize: L2-normalise embeddings (inner product = cosine).
        batch_size, max_length: texts per encoder batch, tokens per text.
        cache_dir: folder caching the passage embeddings; None encodes them each time.
        index: ``exact`` (FAISS ``IndexFlatIP``) or ``hnsw`` (approximate).
        device, dtype: where and in what precision the encoder runs (float16 on a GPU, float32 on CPU).
        backend: ``torch``, or ``onnx`` (ONNX Runtime, float32: faster on CPU, the same embeddings to rounding).
        shard_size: passages per cache shard.
    """

    name = "dense"

    def __init__(
        self,
        passages: Sequence[str],
        model: str,
        *,
        pooling: str | None = None,
        query_prefix: str = "",
        passage_prefix: str = "",
        normalize: bool = True,
        batch_size: int = 64,
        max_length: int = 512,
        cache_dir: str | None = None,
        index: str = "exact",
        device: str | None = None,
        dtype: str | None = None,
        shard_size: int = SHARD_SIZE,
        backend: str = "torch",
    ) -> None:
        if not passages:
            raise InputError("the dense retriever needs a non-empty corpus")
        self.embedder = Embedder(model, pooling, normalize, batch_size, max_length, device, dtype, backend)
        self.query_prefix, self.passage_prefix = query_prefix, passage_prefix
        self.index = VectorIndex(self.embedder.dim, index)
        self.said_clamped = False
        cache = EmbeddingCache(cache_dir, self.identity(model, passages), shard_size)
        with Progress(cache.rows_to_encode(), "encode passages", "texts") as progress:
            for shard in cache.shards(passages, lambda texts: self.embed_passages(texts, progress)):
                self.index.add(shard)

    def identity(self, model: str, passages: Sequence[str]) -> dict:
        """What the passage embeddings depend on: model, the options that shape them, and the corpus."""
        return passage_identity(self.embedder, model, self.passage_prefix, passages)

    def embed_passages(self, passages: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """Passage embeddings ``[N, D]`` (float32)."""
        return self.embedder.encode(passages, self.passage_prefix, progress)

    def embed_queries(self, queries: Sequence[str]) -> np.ndarray:
        """Query embeddings ``[Q, D]`` (float32), encoded once each in batches of similar length."""
        with Progress(len(queries), "encode queries", "texts") as progress:
            return self.embedder.encode(queries, self.query_prefix, progress)

    def clamp(self, k: int) -> int:
        """``k`` at most the corpus size; said once on stderr when it is cut."""
        if k < 1:
            raise InputError(f"the number of passages to retrieve must be >= 1, got {k}")
        size = self.index.size
        if k > size and not self.said_clamped:
            print(
                f"k={k} is more than the corpus's {size} passages; returning {size} per query",
                file=sys.stderr,
            )
            self.said_clamped = True
        return min(k, size)

    def encode(self, queries: Sequence[str]) -> DenseQueries:
        return DenseQueries(
            self, self.embed_queries(queries) if queries else np.zeros((0, self.embedder.dim))
        )

    def search(self, queries: Sequence[str], k: int) -> list[Hits]:
        self.clamp(k)
        return list(search(self.encode(queries), k))

    def score(self, queries: Sequence[str], passages: Sequence[Sequence[int]]) -> list[list[float]]:
        if len(queries) != len(passages):
            raise ValueError(f"{len(queries)} queries but {len(passages)} passage lists")
        return score(self.encode(queries), passages)


class DenseQueries:
    """Query embeddings ``[Q, D]``, searched with the retriever's index and scored by inner product."""

    block = QUERY_BLOCK

    def __init__(self, retriever: DenseRetriever, embeddings: np.ndarray) -> None:
        self.retriever, self.embeddings = retriever, embeddings

    def __len__(self) -> int:
        return len(self.embeddings)

    def hits(self, start: int, end: int, k: int) -> list[Hits]:
        k = self.retriever.clamp(k)
        scores, indices = self.retriever.index.search(self.embeddings[start:end], k)  # [B, k]
        return [
            Hits(
                [int(i) for i in row_indices if i >= 0],
                [float(s) for s, i in zip(row_scores, row_indices, strict=True) if i >= 0],
            )
            for row_scores, row_indices in zip(scores, indices, strict=True)
        ]

    def scores(self, start: int, end: int, passages: Sequence[Sequence[int]]) -> list[list[float]]:
        index = self.retriever.index
        for indices in passages:
            if any(not 0 <= i < index.size for i in indices):
                raise ValueError(f"passage indices must be in [0, {index.size}), got {list(indices)}")
        return [
            (index.vectors(list(indices)) @ query).astype(float).tolist()  # [n]
            for query, indices in zip(self.embeddings[start:end], passages, strict=True)
        ]


def passage_identity(embedder: Embedder, model: str, passage_prefix: str, passages: Sequence[str]) -> dict:
    """What passage embeddings depend on: the model, the options that shape them, and the corpus. Not the
    backend: torch and ONNX embeddings agree far below the cache's float16 precision."""
    options = {
        "pooling": embedder.pooling,
        "passage_prefix": passage_prefix,
        "normalize": embedder.normalize,
        "max_length": embedder.max_length,
    }
    return {
        "model": model_identity(model, embedder.folder),
        "options": options,
        "corpus": corpus_identity(passages),
    }


def encode_share(
    passages: Sequence[str],
    model: str,
    cache_dir: str,
    worker: int,
    num_workers: int,
    *,
    pooling: str | None = None,
    passage_prefix: str = "",
    normalize: bool = True,
    batch_size: int = 64,
    max_length: int = 512,
    device: str | None = None,
    dtype: str | None = None,
    shard_size: int = SHARD_SIZE,
    backend: str = "torch",
) -> int:
    """Encode one worker's share of the corpus's shards into ``cache_dir``; returns how many shards.

    One process per GPU, each with its ``worker`` number, fills one cache; a :class:`DenseRetriever`
    built afterwards with the same corpus, model and options reads every shard and encodes nothing.
    """
    if not 0 <= worker < num_workers:
        raise InputError(f"--worker must be in [0, {num_workers}), got {worker}")
    embedder = Embedder(model, pooling, normalize, batch_size, max_length, device, dtype, backend)
    cache = EmbeddingCache(cache_dir, passage_identity(embedder, model, passage_prefix, passages), shard_size)
    with Progress(cache.rows_to_encode(worker, num_workers), "encode passages", "texts") as progress:
        shards = cache.shards(
            passages, lambda texts: embedder.encode(texts, passage_prefix, progress), worker, num_workers
        )
        return sum(1 for _ in shards)
