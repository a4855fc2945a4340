"""Markdown tables of the benchmark result files in ``benchmarks/results/``, for ``scripts/figures.py`` blocks.

Each function takes one result file (a path) and returns the table the README shows for it, so a figure in
the README can always be traced to a committed file and the script that formats it.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

# MS MARCO passage ranking: the corpus, and the training queries that have a judged passage.
MSMARCO_PASSAGES = 8_841_823
MSMARCO_TRAIN_QUERIES = 502_939
# Mining: our wall time at least this many times shorter than sentence-transformers' mine_hard_negatives.
MINING_GOAL = 1.5


def read(path: str) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def goal_rows(speed: dict[str, float], goals: list) -> list[str]:
    """One table row per ``(faster, slower, goal)`` whose two systems ran: the measured ratio and whether it
    meets the goal."""
    rows = []
    for faster, slower, goal in goals:
        if faster in speed and slower in speed:
            ratio = speed[faster] / speed[slower]
            rows.append(
                f"| {faster} ≥ {goal}× {slower} | {ratio:.2f}× | {'yes' if ratio >= goal else 'no'} |"
            )
    return rows


def mining_table(path: str) -> str:
    """Mining: each system's wall, CPU and RSS, our stages' rates, the overlap, and the MS MARCO projection."""
    result = read(path)
    settings = result["settings"]
    lines = [
        f"{result['queries']:,} queries × {result['passages']:,} passages ({result['workload']}), "
        f"{result['model']}, window {settings['window'][0]}-{settings['window'][1]}, relative margin "
        f"{settings['relative_margin']}, {settings['num_negatives']} negatives, {settings['max_length']} "
        f"tokens, {settings['dtype']}, {settings['rounds']} round(s) (median); {result['machine']['cpu']}, "
        f"{result['machine']['cores']} cores; commit {result['commit']}, recorded {result['recorded']}.",
        "",
        "| system | wall s | CPU s | peak RSS GB | wall / our wall |",
        "|---|---|---|---|---|",
    ]
    walls = {name: statistics.median(run["wall"] for run in runs) for name, runs in result["runs"].items()}
    for name, runs in result["runs"].items():
        cpu = statistics.median(run["cpu"] for run in runs)
        rss = max(run["rss"] for run in runs)
        label = f"{name} ({result['before_commit']})" if name == "ours, before" else name
        lines.append(
            f"| {label} | {walls[name]:.1f} | {cpu:.1f} | {rss:.2f} | {walls[name] / walls['ours']:.2f} |"
        )
    if "sentence-transformers" in walls:
        lines += ["", "| goal | measured | met |", "|---|---|---|"]
        for name in ("ours", "ours, onnx"):
            if name in walls:
                ratio = walls["sentence-transformers"] / walls[name]
                lines.append(f"| {name} ≥ {MINING_GOAL}× sentence-transformers' speed | {ratio:.2f}× | "
                             f"{'yes' if ratio >= MINING_GOAL else 'no'} |")  # fmt: skip
    overlap = result["negatives_inside_st_window"]
    lines += ["", f"Our {overlap['negatives']:,} negatives inside sentence-transformers' whole window: "
              f"{overlap['share']:.1%}."]  # fmt: skip
    if result.get("same_file_as_before") is not None:
        same = "the same bytes" if result["same_file_as_before"] else "a different file"
        lines[-1] += f" Before and after the change wrote {same}."
    if "onnx_same_negatives" in result:
        lines += ["", f"Ours with the ONNX backend mined the same negatives, in the same order, as ours with "
                  f"torch for {result['onnx_same_negatives']:.1%} of the queries."]  # fmt: skip
    for name, label in (("ours", "Our encoding"), ("ours, onnx", "With the ONNX backend")):
        rates = result["runs"].get(name, [{}])[0].get("rates", {})
        passages, queries = rates.get("encode passages"), rates.get("encode queries")
        if passages and queries:
            per_passages, per_queries = 100_000 / passages, 1_000 / queries
            total = MSMARCO_PASSAGES / passages + MSMARCO_TRAIN_QUERIES / queries
            lines += ["", f"{label}: {passages:.1f} passages/s ({per_passages:,.0f} s per 100,000 passages), "
                      f"{queries:.1f} queries/s ({per_queries:.1f} s per 1,000 queries). Projected to MS MARCO "
                      f"({MSMARCO_PASSAGES:,} passages, {MSMARCO_TRAIN_QUERIES:,} training queries) on this "
                      f"machine: {hours(total)} of encoding, exact search and the margin filter not included."]  # fmt: skip
    return "\n".join(lines)


def metrics_table(path: str) -> str:
    """The metric set over Q × C: ours (one rank computation shared) against a rank computation per metric."""
    result = read(path)
    lines = [
        f"MRR@10 + hit@1/3/5 over {result['queries']:,} × {result['candidates']} scores, {result['threads']} "
        f"threads, {result['repeats'] - 1} timed runs after one warm-up; {result['machine']['cpu']}; commit "
        f"{result['commit']}, recorded {result['recorded']}. Both give the same values.",
        "",
        "| implementation | wall median s | wall best s | CPU median s |",
        "|---|---|---|---|",
    ]
    for name, timing in result["timings"].items():
        lines.append(
            f"| {name} | {timing['wall_median']:.3f} | {timing['wall_best']:.3f} | {timing['cpu_median']:.3f} |"
        )
    return "\n".join(lines)


def memory_table(path: str) -> str:
    """Training memory per setting: peak RSS and where it goes, with the speed of the same run."""
    result = read(path)
    lines = [
        f"multilingual-e5-small, KorQuAD triplets, group 4 × 8 queries, 256 tokens, fp32, {result['steps']} "
        f"steps; {result['machine']['cpu']}, {result['machine']['cores']} cores; commit {result['commit']}, "
        f"recorded {result['recorded']}. GB = 2^30 bytes.",
        "",
        "| setting | peak RSS GB | at training start | weights | trained | gradients | optimizer state "
        "| rest of the peak | pairs/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, run in result["runs"].items():
        memory = run["memory"]
        rest = run["peak_rss_gb"] - memory["rss_at_first_forward_gb"] - memory["gradients_gb"]
        rest -= memory["optimizer_state_gb"]
        lines.append(
            f"| {name} | {run['peak_rss_gb']:.2f} | {memory['rss_at_first_forward_gb']:.2f} | "
            f"{memory['weights_gb']:.2f} | {memory['trained_gb']:.2f} | {memory['gradients_gb']:.2f} | "
            f"{memory['optimizer_state_gb']:.2f} | {rest:.2f} | {run['pairs_per_s']:.2f} |"
        )
    return "\n".join(lines)


def score_table(path: str) -> str:
    """Scoring: each system's pairs/s and peak RSS, its scores' difference to float32 torch, and the goals."""
    result = read(path)
    speed = {
        name: statistics.median(run["pairs_per_s"] for run in runs) for name, runs in result["runs"].items()
    }
    lines = [
        f"{result['pairs']:,} pairs ({result['workload']}), {result['rounds']} round(s) (median); "
        f"{result['machine']['cpu']}, {result['machine']['cores']} cores; commit {result['commit']}, recorded "
        f"{result['recorded']}.",
        "",
        f"| system | pairs/s | peak RSS GB | score difference to {result['reference']}: max / mean |",
        "|---|---|---|---|",
    ]
    for name, runs in result["runs"].items():
        gap = result["differences"].get(name)
        difference = f"{gap['max']:.1e} / {gap['mean']:.1e}" if gap else ""
        lines.append(
            f"| {name} | {speed[name]:.1f} | {max(r['peak_rss_gb'] for r in runs):.2f} | {difference} |"
        )
    lines += ["", "| goal | measured | met |", "|---|---|---|"]
    lines += goal_rows(speed, result["goals"])
    return "\n".join(lines)


def train_table(path: str) -> str:
    """Training speed: each system's pairs/s, real tokens/s and share of the matmul-bound limit, and the goals."""
    result = read(path)
    settings = result["settings"]
    runs = result["runs"]
    speed = {name: statistics.median(run["pairs_per_s"] for run in system) for name, system in runs.items()}
    low, high = min(result["matmul_gflops"]), max(result["matmul_gflops"])
    per_token = result["flop_per_real_token"]
    dropout = settings["attention_dropout"]
    dropout = "the base model's attention dropout" if dropout is None else f"attention dropout {dropout:g}"
    lines = [
        f"{result['workload']} workload ({result['model']}), group 4 × 8 queries, 256 tokens, every weight "
        f"trained, fp32, {dropout}; {settings['steps']} steps ({next(iter(runs.values()))[0]['timed_steps']} timed), "
        f"{settings['rounds']} alternating round(s) (median); {result['machine']['cpu']}, "
        f"{result['machine']['cores']} cores; commit {result['commit']}, recorded {result['recorded']}.",
        "",
        "| system | pairs/s | real tokens/s | padding share | peak RSS GB | share of the limit | ours / system |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, system in runs.items():
        tokens = statistics.median(run["real_tokens_per_s"] for run in system)
        padding = statistics.median(run["padding_share"] for run in system)
        rss = max(run["peak_rss_gb"] for run in system)
        share = f"{tokens * per_token / high / 1e9:.0%}-{tokens * per_token / low / 1e9:.0%}"
        ratio = f"{speed['ours'] / speed[name]:.2f}" if "ours" in speed else ""
        lines.append(
            f"| {name} | {speed[name]:.2f} | {tokens:.0f} | {padding:.1%} | {rss:.2f} | {share} | {ratio} |"
        )
    lines += [
        "",
        f"The limit: {per_token:.2e} FLOP per real token (6 per weight of the encoder's layers, plus "
        f"attention at the mean {result['mean_real_length']:.0f} real tokens a pair) at {low:.0f}-{high:.0f} "
        f"GFLOP/s (`matmul.py`'s feed-forward shape, before and after the systems): "
        f"{low * 1e9 / per_token:,.0f}-{high * 1e9 / per_token:,.0f} real tokens/s.",
        "",
        "| goal | measured | met |",
        "|---|---|---|",
    ]
    lines += goal_rows(speed, result["goals"])
    return "\n".join(lines)


def compile_table(path: str) -> str:
    """``torch.compile`` against eager on one training step: ms a step, the compile time, the loss check."""
    result = read(path)
    timings = {name: statistics.median(values) for name, values in result["ms_per_step"].items()}
    seconds = result["seconds"]
    lines = [
        f"{result['workload']} workload, one batch of {result['shape'][0]} pairs × {result['shape'][1]} tokens, "
        f"{result['steps']} timed steps × {result['rounds']} alternating rounds (median), {result['threads']} "
        f"threads, torch {result['torch']}; {result['machine']['cpu']}; commit {result['commit']}, recorded "
        f"{result['recorded']}.",
        "",
        "| step | ms a step | eager / this | first step with dropout s |",
        "|---|---|---|---|",
    ]
    for name, ms in timings.items():
        first = seconds.get(f"{name}, first step with dropout")
        lines.append(f"| {name} | {ms:.0f} | {timings['eager'] / ms:.2f} | {first:.1f} |")
    lines += ["", f"Two steps without dropout from the same weights: losses {result['losses_without_dropout']}, "
              f"largest difference {result['largest_loss_difference']:.1e}."]  # fmt: skip
    return "\n".join(lines)


def onnx_quality_table(path: str, reference: str = "torch", allowed_loss: float = 0.005) -> str:
    """int8 and float32 ONNX against torch on the same retrieved lists (``reranker evaluate``'s results.json):
    each system's metrics, then each paired test against ``reference``, and whether the loss is shown to be within ``allowed_loss``
    (the lower end of the 95% interval of ONNX − torch at or above −``allowed_loss``)."""
    result = read(path)
    metrics = result["metrics"]
    lines = [
        f"{result['queries']:,} held-out questions × {result['candidates'] // result['queries']} candidates "
        f"({result['candidates']:,} pairs).",
        "",
        "| system | " + " | ".join(metrics) + " |",
        "|---|" + "---|" * len(metrics),
    ]
    for name, values in result["table"].items():
        lines.append(f"| {name} | " + " | ".join(f"{values[m]:.4f}" for m in metrics) + " |")
    lines += [
        "",
        "| test (MRR@10) | difference | 95% interval | p | loss ≤ " + f"{allowed_loss} shown |",
        "|---|---|---|---|---|",
    ]
    for test in result["tests"]:
        if test["metric"] != "mrr@10" or test["a"] != reference:
            continue
        shown = "yes" if test["ci_low"] >= -allowed_loss else "no"
        lines.append(
            f"| {test['b']} − {test['a']} | {test['difference']:+.4f} | [{test['ci_low']:+.4f}, "
            f"{test['ci_high']:+.4f}] | {test['p_value']:.3g} | {shown} |"
        )
    return "\n".join(lines)
