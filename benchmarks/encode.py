"""Dense first stage speed: ``python benchmarks/encode.py [--passages 300] [--rounds 2] [--synthetic 0]``.

Encoding: our ``Embedder`` against ``SentenceTransformer.encode`` on the same model (multilingual-e5-small
from ``$ME5``, mean pooling, ``passage: `` prefix) and the same KorQuAD passages, at equal settings (max
length, batch size, precision, normalisation), alternating the order every round in one process; checks
that the embeddings agree and prints passages/s side by side. Search: FAISS exact (``IndexFlatIP``)
against HNSW over the encoded passages (or ``--synthetic N`` random unit vectors of the model's
dimension, for scale), queried with KorQuAD questions: build time, search time, HNSW recall@10 against
exact, and the memory each index adds.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import numpy as np
import torch
from common import ME5_SMALL, SHARED

from reranker.preparation.retrievers.embedder import Embedder
from reranker.preparation.retrievers.index import VectorIndex


def korquad(limit: int) -> tuple[list[str], list[str]]:
    """Distinct paragraphs and questions of KorQuAD 1.0 dev, in file order, ``limit`` of each."""
    data = json.loads((SHARED / "data" / "korquad" / "KorQuAD_v1.0_dev.json").read_text(encoding="utf-8"))
    passages, questions = [], []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            passages.append(paragraph["context"])
            questions += [qa["question"] for qa in paragraph["qas"]]
    return list(dict.fromkeys(passages))[:limit], questions[:limit]


def rss_mb() -> float:
    """The process's resident memory now (MB)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def encoding(args: argparse.Namespace, texts: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    ours = Embedder(str(ME5_SMALL), "mean", True, args.batch_size, args.max_length, "cpu", "float32")
    theirs = SentenceTransformer(str(ME5_SMALL), device="cpu")  # no modules.json: mean pooling
    theirs.max_seq_length = args.max_length
    systems = {
        "ours (Embedder.encode)": lambda: ours.encode(texts),
        "sentence-transformers (encode)": lambda: theirs.encode(
            texts, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True
        ),
    }
    speeds: dict[str, list[float]] = {name: [] for name in systems}
    outputs = {}
    for round_number in range(args.rounds):
        names = list(systems) if round_number % 2 == 0 else list(systems)[::-1]
        for name in names:
            start = time.perf_counter()
            outputs[name] = systems[name]()
            speeds[name].append(len(texts) / (time.perf_counter() - start))
            print(f"round {round_number + 1}: {name} {speeds[name][-1]:.1f} passages/s", flush=True)
    ours_out, theirs_out = outputs.values()
    ours_speed, theirs_speed = (statistics.median(v) for v in speeds.values())
    print(
        f"\n{len(texts)} passages, max length {args.max_length}, batch {args.batch_size}, fp32 CPU, normalised"
    )
    print(f"{torch.get_num_threads()} threads, {args.rounds} round(s), median passages/s")
    print("| system | passages/s | ours / system |")
    print("|---|---|---|")
    for name, speed in zip(systems, (ours_speed, theirs_speed), strict=True):
        print(f"| {name} | {speed:.1f} | {ours_speed / speed:.2f}x |")
    print(f"max abs embedding difference: {np.abs(ours_out - theirs_out).max():.2e}\n")
    return ours_out


def search(passages: np.ndarray, queries: np.ndarray, k: int) -> None:
    results = {}
    print(f"{len(passages)} passages x {passages.shape[1]} dims, {len(queries)} queries, k={k}")
    print("| index | build s | search s | queries/s | memory added MB | recall@10 vs exact |")
    print("|---|---|---|---|---|---|")
    for kind in ("exact", "hnsw"):
        before = rss_mb()
        start = time.perf_counter()
        index = VectorIndex(passages.shape[1], kind)
        index.add(passages)
        built = time.perf_counter() - start
        added = rss_mb() - before
        start = time.perf_counter()
        _, results[kind] = index.search(queries, k)
        searched = time.perf_counter() - start
        recall = np.mean(
            [len(set(a) & set(e)) / len(e) for a, e in zip(results[kind], results["exact"], strict=True)]
        )
        print(
            f"| {kind} | {built:.3f} | {searched:.3f} | {len(queries) / searched:.0f} | {added:.1f} | "
            f"{recall:.4f} |"
        )
        del index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--synthetic", type=int, default=0, help="search over N random unit vectors instead")
    args = parser.parse_args()
    passages, questions = korquad(args.passages)
    texts = [f"passage: {p}" for p in passages]
    embeddings = encoding(args, texts)
    embedder = Embedder(str(ME5_SMALL), "mean", True, args.batch_size, args.max_length, "cpu", "float32")
    queries = embedder.encode(questions, "query: ")
    if args.synthetic:
        generator = np.random.default_rng(0)
        embeddings = generator.normal(size=(args.synthetic, embeddings.shape[1])).astype(np.float32)
        embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    search(embeddings.astype(np.float16).astype(np.float32), queries, 10)
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
