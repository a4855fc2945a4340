"""``prepare encode``: fill a dense retriever's embedding cache, one process per GPU, before
``prepare ... --retriever dense`` (or ``hybrid``) reads it.

Each process encodes every ``num_workers``-th shard of the corpus, from shard ``worker``::

    for gpu in 0 1 2 3; do
      CUDA_VISIBLE_DEVICES=$gpu reranker prepare encode --corpus corpus.jsonl \\
        --dense-model intfloat/multilingual-e5-small --pooling mean --passage-prefix 'passage: ' \\
        --embedding-cache cache/e5 --worker $gpu --num-workers 4 &
    done; wait

A later command with the same corpus, model, options and ``--embedding-cache`` reads the shards.
"""

from __future__ import annotations

import argparse

from reranker.core.errors import InputError
from reranker.preparation.records import read_id_texts
from reranker.preparation.retrievers import add_retriever_arguments
from reranker.preparation.retrievers.dense import encode_share

HELP = "fill a dense retriever's embedding cache (one process per GPU)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", required=True, help="corpus JSONL {id, text} or MS MARCO collection.tsv")
    parser.add_argument("--worker", type=int, default=0, help="this process's number, from 0")
    parser.add_argument("--num-workers", type=int, default=1, help="how many processes share the corpus")
    add_retriever_arguments(parser, default="dense")


def prepare_encode(
    corpus: str,
    worker: int = 0,
    num_workers: int = 1,
    retriever: str = "dense",
    retriever_options: dict | None = None,
) -> dict:
    """Encode this worker's shards of ``corpus`` into ``retriever_options["cache_dir"]``; a summary."""
    options = retriever_options or {}
    if retriever not in ("dense", "hybrid"):
        raise InputError(f"prepare encode fills a dense retriever's cache; --retriever {retriever} has none")
    if not options.get("dense_model") or not options.get("cache_dir"):
        raise InputError("prepare encode needs --dense-model and --embedding-cache")
    if not 0 <= worker < num_workers:
        raise InputError(f"--worker must be in [0, --num-workers), got {worker} of {num_workers}")
    passages = list(read_id_texts(corpus, "id", "text").values())  # file order, as prepare reads it
    shards = encode_share(
        passages,
        options["dense_model"],
        options["cache_dir"],
        worker,
        num_workers,
        pooling=options.get("pooling"),
        passage_prefix=options.get("passage_prefix", ""),
        normalize=options.get("normalize", True),
        batch_size=options.get("batch_size", 64),
        max_length=options.get("max_length", 512),
        device=options.get("device"),
        dtype=options.get("dtype"),
        backend=options.get("backend", "torch"),
    )
    return {"corpus": len(passages), "shards": shards, "worker": worker, "cache": options["cache_dir"]}
