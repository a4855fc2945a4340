"""Training speed, side by side: ``python benchmarks/train.py [--workload english] [--steps 12] [--rounds 2]``.

Runs our trainer (``python -m reranker.train``), sentence-transformers' ``CrossEncoderTrainer`` with
``ListNetLoss`` on one-hot labels, and FlagEmbedding's encoder-only reranker fine-tuning on the same model
folder and triplets (``benchmarks/setup.py`` builds both), one process each, alternating the order every
round. Each process is measured by the same probes (``train_worker.py``): after 2 warm-up steps, pairs/s,
real (non-padding) tokens/s, padding share of processed tokens, peak RSS.

``--attention-dropout P`` trains every system from a copy of the model folder whose configuration sets the
attention-probability dropout to P (the hidden-state dropout stays the base model's): the same setting for all.

The matmul-bound limit is measured in the same run, before and after the systems (``matmul.py``'s
feed-forward shape): a training step costs about 6 FLOP per weight of the encoder's layers per real
token (forward 2, backward 4) plus attention (12 · L · d per layer and token, L the mean real length of a
pair), so limit tokens/s = GFLOP/s / FLOP per token; each system's real tokens/s is given as a share of it.
``--out`` (default ``benchmarks/results/train_<workload>[_attention<P>].json``) records the runs;
``benchmarks/tables.py`` makes the README's table from it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import HERE, PYTHONS, ROOT, WORK, worker_env, write_result
from matmul import gflops

GOALS = [("ours", "FlagEmbedding", 3.0), ("ours", "sentence-transformers", 2.0)]  # (faster, slower, goal)


def model_with_attention_dropout(model: Path, probability: float) -> Path:
    """A folder beside ``model`` with the same weights and tokenizer and the attention dropout set."""
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    if "attention_probs_dropout_prob" not in config:
        sys.exit(f"error: {model / 'config.json'} has no attention_probs_dropout_prob to set")
    config["attention_probs_dropout_prob"] = probability
    copy = model.parent / f"{model.name}-attention{probability:g}"
    if copy.exists():
        shutil.rmtree(copy)
    copy.mkdir()
    for item in model.iterdir():
        if item.is_file() and item.name != "config.json":
            (copy / item.name).symlink_to(item.resolve())
    (copy / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return copy


def encoder_shape(model: Path) -> dict:
    """What the FLOP model needs: the weights of the encoder's layers (each multiplies every token; the
    embedding tables are looked up and the pooler and head see one position a pair), hidden size, layers."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(model)
    with torch.device("meta"):
        network = AutoModelForSequenceClassification.from_config(config)
    weights = sum(p.numel() for p in network.base_model.encoder.parameters())
    return {"layer_weights": weights, "hidden_size": config.hidden_size, "layers": config.num_hidden_layers}


def flop_per_token(shape: dict, mean_length: float) -> float:
    """Training FLOP per real token: 6 per layer weight (forward 2, backward 4), plus attention."""
    return 6 * shape["layer_weights"] + 12 * mean_length * shape["hidden_size"] * shape["layers"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=("english", "korean"), default="english")
    parser.add_argument(
        "--steps", type=int, default=12, help="optimisation steps per run; the first 3 are not timed"
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--systems", nargs="+", choices=list(PYTHONS), default=list(PYTHONS))
    parser.add_argument(
        "--attention-dropout", type=float, help="every system's attention dropout (default: the base model's)"
    )
    parser.add_argument("--ours", nargs="*", default=[], help="extra Hydra overrides for our trainer")
    parser.add_argument(
        "--out", type=Path, help="results JSON (default benchmarks/results/train_WORKLOAD.json)"
    )
    args = parser.parse_args()
    if args.steps < 5:
        sys.exit(
            "error: --steps must be at least 5 (the first 3 are not timed: 2 warm-up steps and the one "
            "that starts the clock)"
        )
    if args.attention_dropout is not None and not 0 <= args.attention_dropout < 1:
        sys.exit(f"error: --attention-dropout must be in [0, 1), got {args.attention_dropout}")
    model = WORK / "models" / args.workload
    triplets = WORK / "data" / args.workload / "train.jsonl"
    if not triplets.is_file() or not (model / "config.json").is_file():
        sys.exit(f"error: {model} or {triplets} is missing; run python benchmarks/setup.py")
    if args.attention_dropout is not None:
        model = model_with_attention_dropout(model, args.attention_dropout)
    shape = encoder_shape(model)
    env = worker_env()
    matmul = [gflops(4096, 384, 1536)]
    print(f"matmul [4096, 384] @ [384, 1536]: {matmul[0]:.1f} GFLOP/s", flush=True)
    results: dict[str, list[dict]] = {system: [] for system in args.systems}
    for round_number in range(args.rounds):
        order = args.systems if round_number % 2 == 0 else args.systems[::-1]
        for system in order:
            out = WORK / "runs" / f"train-{args.workload}" / system
            shutil.rmtree(out, ignore_errors=True)
            command = [
                PYTHONS[system],
                str(HERE / "train_worker.py"),
                system,
                str(model),
                str(triplets),
                str(out),
            ]
            command += [str(args.steps), *(args.ours if system == "ours" else [])]
            start = time.time()
            done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if not lines:
                sys.exit(f"{system} failed:\n{done.stderr[-3000:]}")
            result = json.loads(lines[-1].removeprefix("RESULT "))
            results[system].append(result)
            print(f"round {round_number + 1}, {system} ({time.time() - start:.0f} s with loading): "
                  f"{result['pairs_per_s']:.2f} pairs/s, {result['padding_share']:.1%} padding, "
                  f"{result['peak_rss_gb']:.2f} GB", flush=True)  # fmt: skip
    matmul.append(gflops(4096, 384, 1536))
    print(f"matmul after: {matmul[1]:.1f} GFLOP/s", flush=True)
    ours = results.get("ours") or next(iter(results.values()))
    mean_length = statistics.median(run["real_tokens_per_s"] / run["pairs_per_s"] for run in ours)
    record = {
        "benchmark": "train",
        "workload": args.workload,
        "model": str(model.relative_to(HERE)),
        "settings": {
            "steps": args.steps,
            "rounds": args.rounds,
            "attention_dropout": args.attention_dropout,
            "ours_overrides": args.ours,
        },
        "matmul_gflops": matmul,
        "encoder": shape,
        "flop_per_real_token": flop_per_token(shape, mean_length),
        "mean_real_length": mean_length,
        "runs": results,
        "goals": [list(goal) for goal in GOALS],
    }
    suffix = "" if args.attention_dropout is None else f"_attention{args.attention_dropout:g}"
    out = args.out or ROOT / "benchmarks" / "results" / f"train_{args.workload}{suffix}.json"
    write_result(out, record)
    from tables import train_table

    print(train_table(str(out)))


if __name__ == "__main__":
    main()
