"""Tables of the dense-first-stage experiment from run.sh's outputs.

    python experiments/dense_first_stage/report.py WORK_DIR HERE

Reads ``WORK/{set}/first_stage_{retriever}_top{k}.json`` (printed by ``prepare candidates``) and
``HERE/results/{set}-{retriever}/results.json`` (written by ``evaluate``), writes ``HERE/tables.md`` and
``HERE/results.json``: per set and first stage, the first stage's own MRR@10, then each training arm
(BM25-mined, dense-mined) alone and fused, as the mean over seeds with the spread, and a paired test of the
seed-averaged per-query reciprocal ranks against the first stage on the same lists.
"""

import json
import sys
from pathlib import Path

from reranker.evaluation.significance import paired_test

SETS = {"korquad": "KorQuAD (200 held-out questions)", "msmarco": "MS MARCO sample (300 held-out queries)"}
RETRIEVERS = ("bm25", "dense", "hybrid")
ARMS = ("bm25-mined", "dense-mined")
FIRST = "without reranker"


def first_stage_table(work: Path) -> list[str]:
    lines = [
        "| set | first stage | recall@10 | recall@30 | recall@100 | MRR@10 |",
        "|---|---|---|---|---|---|",
    ]
    for name in SETS:
        for retriever in RETRIEVERS:
            row = {
                k: json.loads((work / name / f"first_stage_{retriever}_top{k}.json").read_text())
                for k in (10, 30, 100)
            }
            lines.append(
                f"| {name} | {retriever} | {row[10]['recall@10']:.4f} | {row[30]['recall@30']:.4f} | "
                f"{row[100]['recall@100']:.4f} | {row[10]['mrr@10']:.4f} |"
            )
    return lines


def arm_rows(results: dict, arm: str, suffix: str) -> list[str]:
    return [
        name
        for name in results["table"]
        if name.startswith(arm) and name.endswith(suffix) and (suffix or not name.endswith(" fused"))
    ]


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def reranker_table(here: Path, summary: dict) -> list[str]:
    lines = [
        "| set | first stage | first stage MRR@10 | arm | reranker alone (seeds) | Δ vs first stage [95% CI], p | fused (seeds) | Δ fused, p |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in SETS:
        for retriever in RETRIEVERS:
            results = json.loads((here / "results" / f"{name}-{retriever}" / "results.json").read_text())
            first = results["table"][FIRST]["mrr@10"]
            first_rr = results["per_query"][FIRST]["mrr@10"]
            for arm in ARMS:
                cells = []
                for suffix in ("", " fused"):
                    rows = arm_rows(results, arm, suffix)
                    values = [results["table"][row]["mrr@10"] for row in rows]
                    per_query = [
                        mean(q)
                        for q in zip(*(results["per_query"][row]["mrr@10"] for row in rows), strict=True)
                    ]
                    test = paired_test(first_rr, per_query)
                    summary.setdefault(name, {}).setdefault(retriever, {})[f"{arm}{suffix}"] = {
                        "mrr@10 by seed": dict(zip(rows, values, strict=True)),
                        "test against the first stage (seed-averaged per query)": test,
                    }
                    cells.append(f"{mean(values):.4f} ({', '.join(f'{v:.3f}' for v in values)})")
                    cells.append(
                        f"{test['difference']:+.4f} [{test['ci_low']:+.3f}, {test['ci_high']:+.3f}], p = {test['p_value']:.4f}"
                    )
                lines.append(f"| {name} | {retriever} | {first:.4f} | {arm} | " + " | ".join(cells) + " |")
            summary[name][retriever]["first stage mrr@10"] = first
    return lines


def main(work: str, here: str) -> None:
    work_dir, here_dir = Path(work), Path(here)
    summary: dict = {}
    text = ["# Tables", "", "## First stage alone", "", *first_stage_table(work_dir), "",
            "## Rerankers on each first stage's top 10", "", *reranker_table(here_dir, summary), ""]  # fmt: skip
    (here_dir / "tables.md").write_text("\n".join(text) + "\n", encoding="utf-8")
    (here_dir / "results.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print("\n".join(text))


if __name__ == "__main__":
    main(*sys.argv[1:])
