"""The ``prepare translate``, ``prepare mine`` and ``prepare teacher`` subcommands: arguments and runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from reranker.core.errors import InputError
from reranker.preparation import mine, teacher, translate
from reranker.preparation.cache import Cache
from reranker.preparation.records import (
    read_judged_queries,
    read_triples_tsv,
    read_triplet_records,
    write_jsonl,
)
from reranker.preparation.retrievers.bm25 import TOKENIZERS
from reranker.preparation.translate_hf import model_identity


def add_translate(commands) -> None:
    parser = commands.add_parser("translate", help="translate the texts of triplets (aws or hf backend)")
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
    parser.add_argument("--backend", choices=sorted(translate.BACKENDS), default="aws")
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


def _translation_input(args: argparse.Namespace) -> list[dict]:
    if args.input and not args.queries:
        path = Path(args.input)
        records = read_triples_tsv(path) if path.suffix == ".tsv" else read_triplet_records(path)
    elif args.queries and args.collection and args.qrels and not args.input:
        judged, corpus, _ = read_judged_queries(args.queries, args.collection, args.qrels)
        records = [{"query": q["query"], "pos": [corpus[p] for p in q["pos_ids"]], "neg": []} for q in judged]
    else:
        raise InputError(
            "give either INPUT (triplet JSONL or triples TSV) or --queries, --collection and --qrels"
        )
    return records[: args.limit] if args.limit is not None else records


def run_translate(args: argparse.Namespace) -> dict:
    records = _translation_input(args)
    texts = translate.unique_texts(records)
    options = {"source": args.source, "target": args.target}
    if args.backend == "aws":
        options.update(region=args.region, concurrency=args.concurrency, max_request_bytes=args.max_request_bytes,
                       max_retry_seconds=args.max_retry_seconds)  # fmt: skip
    elif args.backend == "hf":
        options.update(model_name=args.model, batch_size=args.batch_size, max_length=args.max_length,
                       num_beams=args.num_beams, device=args.device, dtype=args.dtype)  # fmt: skip
    cache = Cache(args.cache or f"{args.out}.translations.sqlite")
    try:
        # The plan needs only the backend's cache identity; the backend (a model, a client) is built after it.
        identity = {
            "aws": lambda: "amazon-translate",
            "hf": lambda: model_identity(args.model, args.num_beams, args.max_length),
        }[args.backend]()
        job = translate.plan(texts, args.backend, identity, args.source, args.target, cache)
        print(job.summary(), file=sys.stderr)
        summary = {"triplets": len(records), "unique_texts": len(texts), "characters_to_send": job.characters}
        if args.dry_run:
            return summary
        backend = translate.make_backend(args.backend, **options)
        if backend.model != identity:
            raise RuntimeError(
                f"backend {args.backend} identifies as {backend.model!r}, expected {identity!r}"
            )
        if args.chunk_size is not None:
            if args.chunk_size < 1:
                raise InputError(f"--chunk-size must be >= 1, got {args.chunk_size}")
            backend.chunk_size = args.chunk_size
        advance, close = translate.progress_bar(len(job.pending))
        try:
            translation = translate.run_plan(job, backend, cache, advance)
        except translate.TranslationError as err:
            raise InputError(str(err)) from None
        finally:
            close()
    finally:
        cache.close()
    write_jsonl(args.out, translate.translate_records(records, translation))
    return summary


def add_mine(commands) -> None:
    parser = commands.add_parser(
        "mine", help="hard negatives from BM25, optionally filtered by a cross-encoder"
    )
    parser.add_argument(
        "--queries", required=True, help="queries JSONL {qid, query, pos_ids} or MS MARCO queries.tsv"
    )
    parser.add_argument("--corpus", required=True, help="corpus JSONL {id, text} or MS MARCO collection.tsv")
    parser.add_argument("--qrels", help="qrels file (needed with a TSV queries file; replaces pos_ids)")
    parser.add_argument("--out", required=True, help="triplet JSONL {qid, query, pos, neg}")
    parser.add_argument("--window", type=int, nargs=2, default=(10, 100), metavar=("FROM", "TO"),
                        help="BM25 ranks (1-based, inclusive) that hard negatives are drawn from")  # fmt: skip
    parser.add_argument("--num-hard-negatives", type=int, default=7)
    parser.add_argument("--num-random-negatives", type=int, default=0)
    parser.add_argument("--max-queries", type=int, default=None, help="the first N judged queries only")
    parser.add_argument(
        "--bm25-tokenizer", choices=sorted(TOKENIZERS), default="bigram", help="how BM25 splits text"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--filter-model", help="cross-encoder that drops likely false negatives (any Reranker path)"
    )
    parser.add_argument("--filter-margin", type=float, default=0.0,
                        help="drop a candidate scoring above (best positive - margin)")  # fmt: skip
    parser.add_argument("--filter-scale", choices=mine.SCALES, default="logit", help="the margin's scale")
    parser.add_argument("--filter-max-candidates", type=int, default=None,
                        help="score at most this many window candidates a query (default: the whole window)")  # fmt: skip
    _add_scoring(parser)


def _add_scoring(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-length", type=int, default=None,
                        help="tokens per (query, passage) pair (default: the length recorded with the model)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None, help="float16 on GPU by default, float32 on CPU")
    parser.add_argument("--cache", help="score cache (SQLite); the same file serves mine and teacher")


def _scorer(args: argparse.Namespace, model: str) -> tuple[teacher.ScoreFn, Cache | None]:
    """A cached scoring function for a cross-encoder, with a progress bar (pairs/s) on stderr."""
    from tqdm.auto import tqdm

    from reranker.serving.inference import Reranker

    dtype = args.dtype or ("float16" if torch.cuda.is_available() and args.device != "cpu" else None)
    reranker = Reranker(model, max_length=args.max_length, device=args.device, dtype=dtype)
    cache = Cache(args.cache)  # a file resumes a killed run; None keeps this run's scores in memory only
    identity = f"{model} max_length={args.max_length}"

    def score(pairs: list[tuple[str, str]]) -> list[float]:
        with tqdm(total=len(pairs), unit="pairs", file=sys.stderr, mininterval=1.0) as bar:
            scores = teacher.score_with_cache(
                list(dict.fromkeys(pairs)),
                lambda chunk: reranker.score(chunk, args.batch_size),
                identity,
                cache,
                chunk_size=8 * args.batch_size,
                progress=bar.update,
            )
        return [scores[pair] for pair in pairs]

    return score, cache


def run_mine(args: argparse.Namespace) -> dict:
    queries, corpus, unjudged = read_judged_queries(args.queries, args.corpus, args.qrels)
    if args.max_queries is not None:
        queries = queries[: args.max_queries]
    if not queries:
        raise InputError(f"{args.queries}: no query has a relevant passage")
    mine.check_options(tuple(args.window), args.num_hard_negatives, args.num_random_negatives,
                       args.filter_margin, args.filter_scale)  # fmt: skip
    score, cache = _scorer(args, args.filter_model) if args.filter_model else (None, None)
    try:
        triplets, summary = mine.mine(
            queries, corpus, tuple(args.window), args.num_hard_negatives, args.num_random_negatives,
            args.bm25_tokenizer, args.seed, score, args.filter_margin, args.filter_scale, args.filter_max_candidates,
        )  # fmt: skip
    finally:
        if cache is not None:
            cache.close()
    write_jsonl(args.out, triplets)
    return {**summary, "queries_without_judgement": unjudged}


def add_teacher(commands) -> None:
    parser = commands.add_parser("teacher", help="add pos_scores/neg_scores from a teacher cross-encoder")
    parser.add_argument("input", help="triplet JSONL")
    parser.add_argument("--model", required=True, help="teacher: a Hugging Face folder, hub name or .ckpt")
    parser.add_argument("--out", required=True, help="triplet JSONL with pos_scores and neg_scores")
    _add_scoring(parser)


def run_teacher(args: argparse.Namespace) -> dict:
    records = read_triplet_records(args.input)
    if args.cache is None:
        args.cache = f"{args.out}.scores.sqlite"
    score, cache = _scorer(args, args.model)
    try:
        pairs = teacher.pairs_of(records)
        scores = dict(zip(pairs, score(pairs), strict=True))
    finally:
        cache.close()
    write_jsonl(args.out, teacher.with_scores(records, scores))
    return {"triplets": len(records), "pairs": len(pairs)}


COMMANDS = {"translate": (add_translate, run_translate), "mine": (add_mine, run_mine),
            "teacher": (add_teacher, run_teacher)}  # fmt: skip
