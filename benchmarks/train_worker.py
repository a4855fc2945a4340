"""One short training run of one system in its own process: ``train_worker.py SYSTEM MODEL TRIPLETS OUT STEPS [OVERRIDE...]``.

The same probes watch every system, so the figures are comparable whatever the framework:
- a global optimizer-step hook timestamps each optimisation step (step time = time between steps);
- global forward hooks count, per step, the token positions the model processed (the ``[n, L, H]``
  input of each pass through the encoder stack: n × L) and the real ones (the ids that are not the pad
  id, counted where the word-embedding table is looked up).
- memory: the resident set when the first training forward pass starts (weights, data, the runtime), then
  at the first optimizer step the bytes of the parameters, of those that train, of their gradients and of
  the optimizer's state; the rest of the peak is activations and the allocator's slack.
Prints one JSON line: pairs/s and real tokens/s over the steps after ``WARMUP``, padding share, peak RSS
and that breakdown.
Settings fixed for all systems: group 4, 8 queries per step, 256 tokens per pair (FlagEmbedding: query 64 +
passage 192), all weights trained, fp32 on CPU, learning rate 2e-5, no validation, no checkpoints.
Imports only what its system needs (FlagEmbedding runs under transformers 4).
"""

from __future__ import annotations

import json
import resource
import sys
import time

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

GROUP, QUERIES, MAX_LENGTH, LR, WARMUP = 4, 8, 256, 2e-5, 2


class Probe:
    def __init__(self, vocab_size: int, pad_id: int) -> None:
        self.vocab_size, self.pad_id = vocab_size, pad_id
        self.step_ends: list[float] = []
        self.tokens: list[list[int]] = [[0, 0]]  # per step: [processed, real]
        self.memory: dict[str, float] = {}
        register_optimizer_step_post_hook(self.on_step)
        torch.nn.modules.module.register_module_forward_hook(self.on_forward)

    def on_step(self, optimizer, args, kwargs) -> None:
        self.step_ends.append(time.perf_counter())
        self.tokens.append([0, 0])
        if "trained_gb" not in self.memory:
            params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            state = [t for s in optimizer.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
            self.memory |= {
                "trained_gb": sum(p.numel() * p.element_size() for p in params) / 2**30,
                "gradients_gb": sum(p.grad.numel() * p.grad.element_size() for p in params) / 2**30,
                "optimizer_state_gb": sum(t.numel() * t.element_size() for t in state) / 2**30,
            }

    def on_forward(self, module, inputs, output) -> None:
        if not module.training:
            return
        if "rss_at_first_forward_gb" not in self.memory:
            self.memory["rss_at_first_forward_gb"] = current_rss_gb()
            self.memory["peak_rss_before_training_gb"] = peak_rss_gb()
            root = next((m for m in gc_modules() if module in set(m.modules())), module)
            self.memory["weights_gb"] = sum(p.numel() * p.element_size() for p in root.parameters()) / 2**30
        if isinstance(module, torch.nn.Embedding) and module.num_embeddings == self.vocab_size:
            self.tokens[-1][1] += int((inputs[0] != self.pad_id).sum())
        elif (
            type(module).__name__.endswith("Encoder")
            and inputs
            and isinstance(inputs[0], torch.Tensor)
            and inputs[0].dim() == 3
        ):
            self.tokens[-1][0] += inputs[0].shape[0] * inputs[0].shape[1]

    def report(self, system: str) -> dict:
        timed = self.step_ends[WARMUP:]
        seconds = timed[-1] - timed[0]
        steps = len(timed) - 1
        counted = self.tokens[WARMUP + 1 : WARMUP + 1 + steps]  # tokens of the steps ending at timed[1:]
        processed, real = sum(t[0] for t in counted), sum(t[1] for t in counted)
        return {
            "system": system,
            "timed_steps": steps,
            "pairs_per_s": steps * QUERIES * GROUP / seconds,
            "real_tokens_per_s": real / seconds,
            "padding_share": 1 - real / processed,
            "peak_rss_gb": peak_rss_gb(),
            "memory": self.memory,
        }


def current_rss_gb() -> float:
    """The process's resident set now, GB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**30


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def gc_modules() -> list[torch.nn.Module]:
    """The largest live modules (the whole model first), found through the garbage collector."""
    import gc

    modules = [o for o in gc.get_objects() if isinstance(o, torch.nn.Module)]
    return sorted(modules, key=lambda m: sum(p.numel() for p in m.parameters()), reverse=True)[:1]


def run_ours(model: str, triplets: str, out: str, steps: int, *extra_overrides: str) -> None:
    import runpy

    sys.argv = [
        "train",
        f"model.model_name_or_path={model}",
        f"data.train_files={triplets}",
        f"data.group_size={GROUP}",
        f"data.batch_size={QUERIES}",
        f"data.max_length={MAX_LENGTH}",
        f"model.lr={LR}",
        f"trainer.max_steps={steps}",
        "++trainer.limit_val_batches=0",
        "++trainer.num_sanity_val_steps=0",
        "validate_before_training=false",
        "export_dir=null",
        "logger=none",
        "callbacks.progress_bar=null",
        "callbacks.learning_rate_monitor=null",
        "callbacks.model_checkpoint=null",
        f"hydra.run.dir={out}",
        *extra_overrides,
    ]
    # As ``python -m reranker.train``: Hydra finds ``conf/`` beside the module it runs as __main__.
    runpy.run_module("reranker.train", run_name="__main__")


def run_sentence_transformers(model: str, triplets: str, out: str, steps: int, *_: str) -> None:
    from datasets import load_dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import ListNetLoss

    def as_list(record):
        docs = record["pos"][:1] + record["neg"][: GROUP - 1]
        return {"query": record["query"], "docs": docs, "labels": [1.0] + [0.0] * (GROUP - 1)}

    data = load_dataset("json", data_files=triplets, split="train")
    data = data.map(as_list, remove_columns=data.column_names)
    encoder = CrossEncoder(model, num_labels=1, max_length=MAX_LENGTH, device="cpu")
    arguments = CrossEncoderTrainingArguments(
        output_dir=out,
        per_device_train_batch_size=QUERIES,
        max_steps=steps,
        learning_rate=LR,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=1000,
        seed=42,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    loss = ListNetLoss(encoder, mini_batch_size=QUERIES * GROUP)
    CrossEncoderTrainer(model=encoder, args=arguments, train_dataset=data, loss=loss).train()


def run_flagembedding(model: str, triplets: str, out: str, steps: int, *_: str) -> None:
    from FlagEmbedding.finetune.reranker.encoder_only.base.__main__ import main

    sys.argv = [
        "flag",
        "--model_name_or_path",
        model,
        "--train_data",
        triplets,
        "--train_group_size",
        str(GROUP),
        "--query_max_len",
        "64",
        "--passage_max_len",
        "192",
        "--max_len",
        str(MAX_LENGTH),
        "--per_device_train_batch_size",
        str(QUERIES),
        "--max_steps",
        str(steps),
        "--learning_rate",
        str(LR),
        "--output_dir",
        out,
        "--overwrite_output_dir",
        "--save_strategy",
        "no",
        "--report_to",
        "none",
        "--use_cpu",
        "--dataloader_num_workers",
        "0",
        "--logging_steps",
        "1000",
        "--disable_tqdm",
        "true",
    ]
    main()


def main() -> None:
    system, model, triplets, out, steps = sys.argv[1:6]
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(model)
    probe = Probe(config.vocab_size, AutoTokenizer.from_pretrained(model).pad_token_id)
    runners = {
        "ours": run_ours,
        "sentence-transformers": run_sentence_transformers,
        "FlagEmbedding": run_flagembedding,
    }
    try:
        runners[system](model, triplets, out, int(steps), *sys.argv[6:])
    finally:
        # What runs after the last step (a final validation, saving) is not measured and may fail alone.
        if len(probe.step_ends) >= WARMUP + 2:
            print("RESULT " + json.dumps(probe.report(system)), flush=True)


if __name__ == "__main__":
    main()
