"""The English MS MARCO sample as queries/corpus JSONL, queries split into train / val / eval (seeded).

    python experiments/dense_first_stage/msmarco_split.py SHARED_DATA_DIR OUT_DIR

Writes ``corpus.jsonl`` ({id, text}, all 2,117 passages) and ``{train,val,eval}_queries.jsonl``
({qid, query, pos_ids}); the three query sets are disjoint, the corpus is shared.
"""

import json
import random
import sys
from pathlib import Path

import pyarrow.parquet as pq

SIZES = {"val": 100, "eval": 300}  # the rest trains


def main(shared: str, out: str) -> None:
    folder = Path(shared) / "msmarco-en-sample"
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = pq.read_table(folder / "msmarco_corpus.parquet").to_pylist()
    queries = pq.read_table(folder / "msmarco_qa.parquet").to_pylist()
    with (out_dir / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        for row in corpus:
            handle.write(
                json.dumps({"id": row["doc_id"], "text": row["contents"]}, ensure_ascii=False) + "\n"
            )
    records = [
        {
            "qid": str(row["qid"]),
            "query": row["query"],
            "pos_ids": [i for group in row["retrieval_gt"] for i in group],
        }
        for row in queries
    ]
    random.Random(42).shuffle(records)
    start = 0
    for name, size in (("val", SIZES["val"]), ("eval", SIZES["eval"]), ("train", len(records))):
        part = records[start : start + size]
        start += len(part)
        with (out_dir / f"{name}_queries.jsonl").open("w", encoding="utf-8") as handle:
            for record in part:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        print(f"{name}: {len(part)} queries", file=sys.stderr)


if __name__ == "__main__":
    main(*sys.argv[1:])
