"""Does ``torch.compile`` speed up a training step on CPU? ``python benchmarks/compile.py [--workload korean]``.

One fixed batch of the training workload (8 queries × group 4 = 32 pairs from ``benchmarks/setup.py``'s
triplets, padded to their longest, at most 256 tokens), the model folder of the workload, group
cross-entropy, fused AdamW; a step is forward, loss, backward and the optimizer step. Eager and
``torch.compile`` (inductor, static shapes) alternate for ``--rounds``, each timing ``--steps`` steps after
its own warm-up step (where the compiled one compiles; that time is reported apart; a recompile inside the
timed steps is an error). Before timing, both run two steps without dropout from the same weights and their
losses are compared: losses further apart than rounding exit non-zero after the result is written. Prints
ms per step and the ratio; ``--out`` records them.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from common import ROOT, WORK, write_result
from torch.nn import functional as F

GROUP, QUERIES, MAX_LENGTH = 4, 8, 256
TOLERANCE = 1e-4  # largest loss difference to call two steps the same to rounding


def batch(model: Path, triplets: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    records = [json.loads(line) for line in triplets.read_text(encoding="utf-8").splitlines()[:QUERIES]]
    pairs = [(r["query"], p) for r in records for p in (r["pos"][:1] + r["neg"][: GROUP - 1])]
    queries, passages = zip(*pairs, strict=True)
    return dict(tokenizer(list(queries), list(passages), truncation=True, max_length=MAX_LENGTH,
                          padding=True, return_tensors="pt"))  # fmt: skip


def without_dropout(model: torch.nn.Module) -> dict[torch.nn.Dropout, float]:
    """Set every dropout layer's probability to 0 (the attention reads its layer's ``p`` at call time);
    returns the probabilities to restore."""
    saved = {module: module.p for module in model.modules() if isinstance(module, torch.nn.Dropout)}
    for module in saved:
        module.p = 0.0
    return saved


def step_function(model: torch.nn.Module, optimizer: torch.optim.Optimizer, inputs: dict):
    labels = torch.zeros(QUERIES, dtype=torch.long)

    def step() -> float:
        scores = model(**inputs).logits.view(QUERIES, GROUP)
        loss = F.cross_entropy(scores, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=("english", "korean"), default="korean")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--out", type=Path, help="results JSON (default benchmarks/results/compile_WORKLOAD.json)"
    )
    args = parser.parse_args()
    from transformers import AutoModelForSequenceClassification

    folder, triplets = WORK / "models" / args.workload, WORK / "data" / args.workload / "train.jsonl"
    if not triplets.is_file():
        sys.exit(f"error: {triplets} is missing; run python benchmarks/setup.py")
    inputs = batch(folder, triplets)
    base = AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="sdpa")
    systems = {}
    for name in ("eager", "compiled"):
        model = copy.deepcopy(base).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, fused=True)
        forward = torch.compile(model) if name == "compiled" else model
        systems[name] = (model, optimizer, step_function(forward, optimizer, inputs))
    # The same losses to rounding: two steps each without dropout from the same weights (the second
    # step's loss follows the first one's gradients and AdamW update).
    losses, seconds = {}, {}
    for name, (model, _, step) in systems.items():
        saved = without_dropout(model)
        start = time.perf_counter()
        losses[name] = [step(), step()]
        seconds[f"{name}, 2 steps without dropout"] = time.perf_counter() - start
        for module, probability in saved.items():
            module.p = probability
    difference = max(abs(a - b) for a, b in zip(losses["eager"], losses["compiled"], strict=True))
    print(f"losses without dropout: {losses}; {seconds}", flush=True)
    timings: dict[str, list[float]] = {name: [] for name in systems}
    for round_number in range(args.rounds):
        order = list(systems) if round_number % 2 == 0 else list(systems)[::-1]
        for name in order:
            step = systems[name][2]
            start = time.perf_counter()
            step()  # warm-up: the compiled model compiles its graph with dropout here
            if round_number == 0:
                seconds[f"{name}, first step with dropout"] = time.perf_counter() - start
            with torch._dynamo.config.patch(error_on_recompile=True):
                start = time.perf_counter()
                for _ in range(args.steps):
                    step()
            timings[name].append((time.perf_counter() - start) / args.steps * 1000)
            print(f"round {round_number + 1}, {name}: {timings[name][-1]:.0f} ms a step", flush=True)
    eager, compiled = (statistics.median(timings[name]) for name in ("eager", "compiled"))
    record = {
        "benchmark": "compile",
        "workload": args.workload,
        "shape": list(inputs["input_ids"].shape),
        "steps": args.steps,
        "rounds": args.rounds,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "losses_without_dropout": losses,
        "largest_loss_difference": difference,
        "seconds": seconds,
        "ms_per_step": timings,
    }
    out = args.out or ROOT / "benchmarks" / "results" / f"compile_{args.workload}.json"
    write_result(out, record)
    print(f"eager {eager:.0f} ms, compiled {compiled:.0f} ms a step: {eager / compiled:.2f}×; "
          f"largest loss difference without dropout {difference:.1e}")  # fmt: skip
    if difference > TOLERANCE:
        sys.exit(f"error: compiled and eager losses differ by {difference:.1e} (more than {TOLERANCE:g})")


if __name__ == "__main__":
    main()
