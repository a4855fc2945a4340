"""First stages for preparation, one module each behind the interface of ``base.py``.

``bm25`` (bm25s over tokenised text), ``dense`` (an embedding model, exact or approximate inner-product
search) and ``hybrid`` (the two mixed with the project's fusion). Commands take ``--retriever`` and the
options of :func:`add_retriever_arguments`; :func:`build_retriever` turns them into a retriever. A command that
searches and then scores chosen passages (mining) encodes its queries once with :func:`encode_queries`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from reranker.core.errors import InputError
from reranker.preparation.retrievers.base import EncodedQueries, Hits, Retriever, encode_queries

NAMES = ("bm25", "dense", "hybrid")

__all__ = [
    "NAMES",
    "EncodedQueries",
    "Hits",
    "Retriever",
    "RetrieverSpec",
    "add_retriever_arguments",
    "build_retriever",
    "clamp_depth",
    "encode_queries",
    "open_retriever",
    "pop_retriever_arguments",
    "retriever_options",
]


def add_retriever_arguments(parser: argparse.ArgumentParser, default: str = "bm25") -> None:
    """``--retriever`` and the options of every retriever, in one argument group."""
    from reranker.preparation.retrievers.bm25 import TOKENIZERS

    group = parser.add_argument_group("first stage")
    group.add_argument(
        "--retriever", choices=NAMES, default=default, help="the first stage that ranks the corpus"
    )
    group.add_argument(
        "--bm25-tokenizer", choices=sorted(TOKENIZERS), default="bigram", help="how BM25 splits text"
    )
    group.add_argument(
        "--dense-model", help="embedding model (Hugging Face folder or hub name) for dense/hybrid"
    )
    group.add_argument(
        "--pooling", choices=("mean", "cls"), default=None,
        help="how token vectors become one (default: the model's own pooling config)",
    )  # fmt: skip
    group.add_argument("--query-prefix", default="", help="text put before each query (e5: 'query: ')")
    group.add_argument("--passage-prefix", default="", help="text put before each passage (e5: 'passage: ')")
    group.add_argument(
        "--no-normalize", dest="normalize", action="store_false", help="keep embeddings unnormalised"
    )
    group.add_argument("--dense-batch-size", type=int, default=64, help="texts per encoder batch")
    group.add_argument("--dense-max-length", type=int, default=512, help="tokens per text")
    group.add_argument("--embedding-cache", help="folder caching passage embeddings (reused when unchanged)")
    group.add_argument(
        "--index",
        choices=("exact", "hnsw"),
        default="exact",
        help="exact inner product, or approximate (HNSW)",
    )
    group.add_argument(
        "--hybrid-weight", type=float, default=0.5, help="hybrid: the dense side's weight in [0, 1]"
    )
    group.add_argument("--retriever-device", default=None, help="device of the embedding model")
    group.add_argument("--retriever-dtype", default=None, help="float16/bfloat16 on a GPU; float32 on CPU")
    group.add_argument(
        "--retriever-backend", choices=("torch", "onnx"), default="torch",
        help="run the embedding model with torch, or with ONNX Runtime (float32; faster on CPU; the onnx extra)",
    )  # fmt: skip


# Command-line destination → keyword of :func:`build_retriever`.
OPTIONS = {
    "bm25_tokenizer": "bm25_tokenizer",
    "dense_model": "dense_model",
    "pooling": "pooling",
    "query_prefix": "query_prefix",
    "passage_prefix": "passage_prefix",
    "normalize": "normalize",
    "dense_batch_size": "batch_size",
    "dense_max_length": "max_length",
    "embedding_cache": "cache_dir",
    "index": "index",
    "hybrid_weight": "hybrid_weight",
    "retriever_device": "device",
    "retriever_dtype": "dtype",
    "retriever_backend": "backend",
}

# What a command's keyword function accepts as ``retriever``: a name, or a function building a retriever over
# the passages it is given (for a first stage that is not one of :data:`NAMES`).
RetrieverSpec = str | Callable[[Sequence[str]], Retriever]


def retriever_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of :func:`build_retriever` from parsed ``--retriever`` options."""
    return {keyword: getattr(args, dest) for dest, keyword in OPTIONS.items()}


def pop_retriever_arguments(arguments: dict) -> tuple[str, dict]:
    """``--retriever`` and the options of :func:`build_retriever`, taken out of a command's parsed arguments."""
    return arguments.pop("retriever"), {keyword: arguments.pop(dest) for dest, keyword in OPTIONS.items()}


def clamp_depth(k: int, corpus_size: int, flag: str) -> int:
    """``k`` neighbours, or the whole corpus when it holds fewer (said once, on stderr)."""
    if k <= corpus_size:
        return k
    print(
        f"note: {flag} asks for {k} passages; the corpus holds {corpus_size}, using {corpus_size}",
        file=sys.stderr,
    )
    return corpus_size


def open_retriever(
    retriever: RetrieverSpec, passages: Sequence[str], options: dict | None = None
) -> Retriever:
    """The first stage over ``passages``: by name with ``options``, or built by the given function."""
    if callable(retriever):
        return retriever(passages)
    return build_retriever(retriever, passages, **(options or {}))


def build_retriever(
    name: str,
    passages: Sequence[str],
    *,
    bm25_tokenizer: str = "bigram",
    dense_model: str | None = None,
    pooling: str | None = None,
    query_prefix: str = "",
    passage_prefix: str = "",
    normalize: bool = True,
    batch_size: int = 64,
    max_length: int = 512,
    cache_dir: str | None = None,
    index: str = "exact",
    hybrid_weight: float = 0.5,
    device: str | None = None,
    dtype: str | None = None,
    backend: str = "torch",
) -> Retriever:
    """A retriever over ``passages`` by name (``bm25``, ``dense`` or ``hybrid``) with its options."""
    if name not in NAMES:
        raise InputError(f"unknown retriever {name!r}; choose one of {', '.join(NAMES)}")
    from reranker.preparation.retrievers.bm25 import BM25Retriever

    if name == "bm25":
        return BM25Retriever(passages, bm25_tokenizer)
    if not dense_model:
        raise InputError(f"--retriever {name} needs --dense-model (an embedding model folder or hub name)")
    from reranker.preparation.retrievers.dense import DenseRetriever

    dense = DenseRetriever(
        passages,
        dense_model,
        pooling=pooling,
        query_prefix=query_prefix,
        passage_prefix=passage_prefix,
        normalize=normalize,
        batch_size=batch_size,
        max_length=max_length,
        cache_dir=cache_dir,
        index=index,
        device=device,
        dtype=dtype,
        backend=backend,
    )
    if name == "dense":
        return dense
    from reranker.preparation.retrievers.hybrid import HybridRetriever

    return HybridRetriever(dense, BM25Retriever(passages, bm25_tokenizer), hybrid_weight)
