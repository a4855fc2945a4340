"""``prepare translate``: machine-translate the texts of triplets (or of MS MARCO judged queries).

Each unique text is sent once through a backend of :mod:`reranker.preparation.translation` (``aws`` or
``hf``); every translation goes to a SQLite cache first, so a killed run resumes where it stopped and the same
input and cache give a byte-identical output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reranker.core.cache import Cache
from reranker.core.errors import InputError
from reranker.preparation.records import (
    read_judged_queries,
    read_triples_tsv,
    read_triplet_records,
    write_jsonl,
)
from reranker.preparation.translation import (
    BACKENDS,
    TranslationError,
    backend_identity,
    driver,
    make_backend,
)

HELP = "translate the texts of triplets (aws or hf backend)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "input", nargs="?", help="triplet JSONL or MS MARCO triples TSV (query, positive, negative)"
    )
    parser.add_argument(
        "--queries", help="MS MARCO queries.tsv (with --collection and --qrels instead of INPUT)"
    )
    parser.add_argument("--collection", help="MS MARCO collection.tsv")
    parser.add_argument("--qrels", help="qrels (TREC 'qid 0 pid rel' or 'qid pid')")
    parser.add_argument("--out", required=True, help="translated triplet JSONL")
    parser.add_argument("--limit", type=int, default=None, help="translate only the first N triplets")
    parser.add_argument("--source", default="en", help="source language code (en)")
    parser.add_argument("--target", default="ko", help="target language code (ko)")
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="aws")
    parser.add_argument("--cache", help="translation cache (SQLite; default: OUT.translations.sqlite)")
    parser.add_argument("--dry-run", action="store_true", help="print the characters to translate and stop")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="texts per cache commit (default: the backend's)")  # fmt: skip
    aws = parser.add_argument_group("aws backend")
    aws.add_argument("--region", default=None, help="AWS region (default: the boto3 configuration)")
    aws.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    aws.add_argument("--max-request-bytes", type=int, default=10_000)
    aws.add_argument("--max-retry-seconds", type=float, default=300.0, help="give up on a request after this")
    hf = parser.add_argument_group("hf backend")
    hf.add_argument(
        "--model", help="seq2seq model folder or hub name (e.g. facebook/nllb-200-distilled-600M)"
    )
    hf.add_argument("--batch-size", type=int, default=16)
    hf.add_argument("--max-length", type=int, default=512, help="tokens in and out per segment")
    hf.add_argument("--num-beams", type=int, default=1)
    hf.add_argument("--device", default=None)
    hf.add_argument("--dtype", default=None, help="float16 on GPU by default, float32 on CPU")


def read_input(
    input: str | Path | None,
    queries: str | Path | None = None,
    collection: str | Path | None = None,
    qrels: str | Path | None = None,
    limit: int | None = None,
) -> list[dict]:
    """Triplet records from a triplet JSONL, a triples TSV, or MS MARCO queries + collection + qrels."""
    if input and not queries:
        path = Path(input)
        records = read_triples_tsv(path) if path.suffix == ".tsv" else read_triplet_records(path)
    elif queries and collection and qrels and not input:
        judged, corpus, _ = read_judged_queries(queries, collection, qrels)
        records = [{"query": q["query"], "pos": [corpus[p] for p in q["pos_ids"]], "neg": []} for q in judged]
    else:
        raise InputError(
            "give either INPUT (triplet JSONL or triples TSV) or --queries, --collection and --qrels"
        )
    return records[:limit] if limit is not None else records


def prepare_translate(
    input: str | Path | None = None,
    *,
    out: str | Path,
    queries: str | Path | None = None,
    collection: str | Path | None = None,
    qrels: str | Path | None = None,
    limit: int | None = None,
    source: str = "en",
    target: str = "ko",
    backend: str = "aws",
    cache: str | Path | None = None,
    dry_run: bool = False,
    chunk_size: int | None = None,
    region: str | None = None,
    concurrency: int = 8,
    max_request_bytes: int = 10_000,
    max_retry_seconds: float = 300.0,
    model: str | None = None,
    batch_size: int = 16,
    max_length: int = 512,
    num_beams: int = 1,
    device: str | None = None,
    dtype: str | None = None,
) -> dict:
    """Write the translated triplets to ``out``; returns a summary (with ``dry_run``, only the summary)."""
    records = read_input(input, queries, collection, qrels, limit)
    texts = driver.unique_texts(records)
    options = {"source": source, "target": target}
    if backend == "aws":
        options.update(region=region, concurrency=concurrency, max_request_bytes=max_request_bytes,
                       max_retry_seconds=max_retry_seconds)  # fmt: skip
    elif backend == "hf":
        options.update(model_name=model, batch_size=batch_size, max_length=max_length,
                       num_beams=num_beams, device=device, dtype=dtype)  # fmt: skip
    store = Cache(cache or f"{out}.translations.sqlite")
    try:
        # The plan needs only the backend's cache identity; the backend (a model, a client) is built after it.
        identity = backend_identity(backend, **options)
        job = driver.plan(texts, backend, identity, source, target, store)
        print(job.summary(), file=sys.stderr)
        summary = {"triplets": len(records), "unique_texts": len(texts), "characters_to_send": job.characters}
        if dry_run:
            return summary
        translator = make_backend(backend, **options)
        if translator.model != identity:
            raise RuntimeError(f"backend {backend} identifies as {translator.model!r}, expected {identity!r}")
        if chunk_size is not None:
            if chunk_size < 1:
                raise InputError(f"--chunk-size must be >= 1, got {chunk_size}")
            translator.chunk_size = chunk_size
        advance, close = driver.progress_bar(len(job.pending))
        try:
            translation = driver.run_plan(job, translator, store, advance)
        except TranslationError as err:
            raise InputError(str(err)) from None
        finally:
            close()
    finally:
        store.close()
    write_jsonl(out, driver.translate_records(records, translation))
    return summary
