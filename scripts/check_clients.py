"""Compare the clients people load rerankers with against ``Reranker.score`` on an exported folder.

    python scripts/check_clients.py FOLDER [--data FILE.jsonl] [--queries N] [--compat-python PATH]

Each query of the triplet file is scored with its ``pos + neg`` passages by ``reranker.Reranker``, plain
transformers (logits, ``exp_normalize``), the ``text-classification`` pipeline, sentence-transformers'
``CrossEncoder`` and, through the transformers 4 environment (``make .venv-compat``), FlagEmbedding's
``FlagReranker``. Prints, per client, the largest score difference after the matching normalisation and
how many queries it ranks exactly as ``Reranker`` does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import CrossEncoder
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

from reranker import Reranker
from reranker.training.config import sample_data_path

ROOT = Path(__file__).resolve().parents[1]


def read_groups(path: str, limit: int) -> list[list[tuple[str, str]]]:
    groups = []
    with open(path, encoding="utf-8") as file:
        for line in file:
            record = json.loads(line)
            groups.append([(record["query"], passage) for passage in record["pos"] + record.get("neg", [])])
            if len(groups) == limit:
                break
    return groups


def exp_normalize(x: np.ndarray) -> np.ndarray:
    y = np.exp(x - x.max())
    return y / y.sum()


def plain_transformers(folder: str, groups: list[list[tuple[str, str]]]) -> list[list[float]]:
    """The common recipe: logits of padded, truncated pairs, then ``exp_normalize`` per query."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    scores = []
    for group in groups:
        with torch.no_grad():
            inputs = tokenizer([list(p) for p in group], padding=True, truncation=True, return_tensors="pt")
            logits = model(**inputs).logits.view(-1).float().numpy()
        scores.append(exp_normalize(logits).tolist())
    return scores


def compare(name: str, client: list[list[float]], ours: list[list[float]]) -> None:
    difference = max(abs(a - b) for c, o in zip(client, ours, strict=True) for a, b in zip(c, o, strict=True))
    same = sum(
        np.argsort(-np.array(c)).tolist() == np.argsort(-np.array(o)).tolist()
        for c, o in zip(client, ours, strict=True)
    )
    print(f"{name:<42} max |diff| {difference:.2e}   same ranking {same}/{len(ours)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--data", default=sample_data_path("ko_val.jsonl"))
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--compat-python", default=str(ROOT / ".venv-compat" / "bin" / "python"))
    args = parser.parse_args()
    groups = read_groups(args.data, args.queries)
    print(f"{args.folder}: {len(groups)} queries, {sum(map(len, groups))} pairs")

    reranker = Reranker(args.folder, device="cpu")
    logits = [reranker.score(group) for group in groups]
    sigmoid = [reranker.score(group, normalize="sigmoid") for group in groups]
    softmax = [reranker.score(group, normalize="softmax") for group in groups]

    compare("transformers + exp_normalize vs softmax", plain_transformers(args.folder, groups), softmax)
    classifier = pipeline("text-classification", model=args.folder, device="cpu")
    inputs = [[{"text": q, "text_pair": p} for q, p in group] for group in groups]
    raw = [[r["score"] for r in classifier(i, truncation=True)] for i in inputs]
    compare("pipeline vs logits", raw, logits)
    squashed = [
        [r["score"] for r in classifier(i, truncation=True, function_to_apply="sigmoid")] for i in inputs
    ]
    compare("pipeline function_to_apply='sigmoid' vs sigmoid", squashed, sigmoid)
    cross_encoder = CrossEncoder(args.folder, device="cpu")
    compare("CrossEncoder.predict vs logits", [cross_encoder.predict(g).tolist() for g in groups], logits)

    if not Path(args.compat_python).exists():
        print(f"FlagReranker: skipped, {args.compat_python} missing (make .venv-compat)")
        return
    script = ROOT / "tests" / "compat" / "score_with_transformers4.py"
    with tempfile.TemporaryDirectory() as tmp:
        pairs_file = Path(tmp) / "pairs.json"
        pairs_file.write_text(
            json.dumps([p for g in groups for p in g], ensure_ascii=False), encoding="utf-8"
        )
        result = subprocess.run(
            [args.compat_python, str(script), str(pairs_file), args.folder],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
    if result.returncode != 0:
        sys.exit(result.stderr[-3000:])
    output = json.loads(result.stdout.strip().splitlines()[-1])
    scores = output["folders"][args.folder]
    sizes = np.cumsum([0, *map(len, groups)]).tolist()

    def regroup(flat: list[float]) -> list[list[float]]:
        return [flat[a:b] for a, b in pairwise(sizes)]

    version = output["transformers"]
    compare("FlagReranker.compute_score vs logits", regroup(scores["flag"]), logits)
    compare("FlagReranker(normalize=True) vs sigmoid", regroup(scores["flag_normalized"]), sigmoid)
    compare(f"transformers {version} logits vs logits", regroup(scores["plain"]), logits)
    compare(f"Reranker on transformers {version} vs logits", regroup(scores["reranker"]), logits)


if __name__ == "__main__":
    main()
