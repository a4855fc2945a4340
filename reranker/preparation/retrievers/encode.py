"""Fill an embedding cache with one process per GPU, before ``prepare ... --retriever dense``.

Each process encodes every ``num_workers``-th shard of the corpus, from shard ``worker``::

    for gpu in 0 1 2 3; do
      CUDA_VISIBLE_DEVICES=$gpu python -m reranker.preparation.retrievers.encode --corpus corpus.jsonl \\
        --dense-model intfloat/multilingual-e5-small --pooling mean --passage-prefix 'passage: ' \\
        --embedding-cache cache/e5 --worker $gpu --num-workers 4 &
    done; wait

A later command with the same corpus, model, options and ``--embedding-cache`` reads the shards.
"""

from __future__ import annotations

import argparse
import sys

from reranker.core.errors import InputError
from reranker.preparation.records import read_id_texts
from reranker.preparation.retrievers import add_retriever_arguments, retriever_options
from reranker.preparation.retrievers.dense import encode_share


def encode(corpus: str, worker: int, num_workers: int, options: dict) -> int:
    """Encode this worker's shards of ``corpus`` (JSONL ``{id, text}`` or TSV) into the cache."""
    if not options.get("dense_model") or not options.get("cache_dir"):
        raise InputError("encode needs --dense-model and --embedding-cache")
    passages = list(read_id_texts(corpus, "id", "text").values())  # file order, as prepare reads it
    return encode_share(
        passages,
        options["dense_model"],
        options["cache_dir"],
        worker,
        num_workers,
        pooling=options["pooling"],
        passage_prefix=options["passage_prefix"],
        normalize=options["normalize"],
        batch_size=options["batch_size"],
        max_length=options["max_length"],
        device=options["device"],
        dtype=options["dtype"],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True, help="corpus JSONL {id, text} or MS MARCO collection.tsv")
    parser.add_argument("--worker", type=int, default=0, help="this process's number, from 0")
    parser.add_argument("--num-workers", type=int, default=1, help="how many processes share the corpus")
    add_retriever_arguments(parser, default="dense")
    args = parser.parse_args(argv)
    try:
        shards = encode(args.corpus, args.worker, args.num_workers, retriever_options(args))
    except InputError as err:
        raise SystemExit(f"error: {err}") from None
    print(f"worker {args.worker}: {shards} shards in {args.embedding_cache}", file=sys.stderr)


if __name__ == "__main__":
    main()
