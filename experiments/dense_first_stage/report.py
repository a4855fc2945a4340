"""Tables of the dense-first-stage experiment, from its committed result files only.

    python experiments/dense_first_stage/report.py record WORK_DIR   # copy the first-stage summaries in
    python scripts/figures.py                                        # regenerate the README's tables

- ``results/first_stage/{set}-{retriever}-top{k}.json``: ``prepare candidates``' summary of each first stage
  (recall@k, MRR@10 over the evaluation queries), copied from ``WORK`` by ``record``.
- ``results/{set}-{retriever}/results.json``: ``evaluate``'s recorded results (lists with forced golds);
  ``results/{set}-{retriever}/retrieved.json`` the per-query flag of ``experiments/end_to_end.py flags``;
  ``results/{set}-{retriever}/end_to_end/results.json`` the end-to-end restatement (``end_to_end.py
  restate``), which the reranker table reads.

``first_stage_table()`` and ``reranker_table()`` are the generated blocks of README.md.
"""

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).parent
SETS = {"korquad": "KorQuAD", "msmarco": "MS MARCO"}
RETRIEVERS = ("bm25", "dense", "hybrid")
ARMS = ("bm25-mined", "dense-mined")
FIRST = "without reranker"
DEPTHS = (10, 30, 100)


def first_stage_table() -> str:
    lines = [
        "| set | first stage | recall@10 | recall@30 | recall@100 | MRR@10 |",
        "|---|---|---|---|---|---|",
    ]
    for name, title in SETS.items():
        for retriever in RETRIEVERS:
            row = {
                k: json.loads(
                    (HERE / "results" / "first_stage" / f"{name}-{retriever}-top{k}.json").read_text()
                )
                for k in DEPTHS
            }
            recalls = " | ".join(f"{row[k][f'recall@{k}']:.4f}" for k in DEPTHS)
            lines.append(f"| {title} | {retriever} | {recalls} | {row[10]['mrr@10']:.4f} |")
    return "\n".join(lines)


def test_of(results: dict, a: str, b: str, metric: str = "mrr@10") -> dict:
    return next(t for t in results["tests"] if t["a"] == a and t["b"] == b and t["metric"] == metric)


def cell(results: dict, system: str) -> str:
    """The system's mean MRR@10 (each seed's), its difference from the first stage, Holm p and verdict."""
    seeds = ", ".join(f"{results['table'][run]['mrr@10']:.3f}" for run in results["systems"][system])
    test = test_of(results, FIRST, system)
    return (
        f"{results['table'][system]['mrr@10']:.4f} ({seeds}) {test['difference']:+.4f} "
        f"[{test['ci_low']:+.3f}, {test['ci_high']:+.3f}], Holm p {test['p_holm']:.4f}, "
        f"{test['seeds_agreeing']}/{test['seeds']}: **{test['verdict']}**"
    )


def reranker_table() -> str:
    lines = [
        "| set | first stage: recall@10, MRR@10 | arm | alone: MRR@10 (seeds) Δ [95% CI], Holm p, seeds agreeing | fused: the same |",
        "|---|---|---|---|---|",
    ]
    for name, title in SETS.items():
        for retriever in RETRIEVERS:
            path = HERE / "results" / f"{name}-{retriever}" / "end_to_end" / "results.json"
            results = json.loads(path.read_text())
            recall = results["first_stage_recall"]
            first = f"{retriever}: {recall['recall']:.4f}, {results['table'][FIRST]['mrr@10']:.4f}"
            for arm in ARMS:
                lines.append(
                    f"| {title} | {first} | {arm} | {cell(results, arm)} | {cell(results, f'{arm} fused')} |"
                )
    return "\n".join(lines)


def mining_table() -> str:
    """Dense-mined against BM25-mined negatives, alone, on every list."""
    lines = ["| set | list | dense-mined − bm25-mined, MRR@10 [95% CI] | Holm p | seeds agreeing | verdict |"]
    lines.append("|---|---|---|---|---|---|")
    for name, title in SETS.items():
        for retriever in RETRIEVERS:
            path = HERE / "results" / f"{name}-{retriever}" / "end_to_end" / "results.json"
            test = test_of(json.loads(path.read_text()), "bm25-mined", "dense-mined")
            lines.append(
                f"| {title} | {retriever} | {test['difference']:+.4f} [{test['ci_low']:+.3f}, {test['ci_high']:+.3f}] "
                f"| {test['p_holm']:.4f} | {test['seeds_agreeing']}/{test['seeds']} | {test['verdict']} |"
            )
    return "\n".join(lines)


def record(work: Path) -> None:
    """Copy the first-stage summaries ``WORK/{set}/first_stage_{retriever}_top{k}.json`` into results/."""
    out = HERE / "results" / "first_stage"
    out.mkdir(parents=True, exist_ok=True)
    for name in SETS:
        for retriever in RETRIEVERS:
            for k in DEPTHS:
                source = work / name / f"first_stage_{retriever}_top{k}.json"
                shutil.copyfile(source, out / f"{name}-{retriever}-top{k}.json")


if __name__ == "__main__":
    if sys.argv[1:2] != ["record"] or len(sys.argv) != 3:
        raise SystemExit(__doc__)
    record(Path(sys.argv[2]))
