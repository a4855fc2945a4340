"""Each training knob docs/training.md offers does what it says: val_fraction, gradient_checkpointing,
freeze_embeddings, gradient accumulation (and a NaN inside an accumulation window), which text is truncated."""

import math

import pytest
import torch
from conftest import make_records, write_jsonl
from helpers import compose_config, tiny_run_overrides
from recorders import read_records
from torch.nn import functional as F
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from reranker.model.encoders import PairEncoder
from reranker.train import train
from reranker.training.datamodule import TripletDataModule
from reranker.training.module import RerankerModule


@pytest.mark.parametrize("fraction", [0.25, 0.5])
def test_val_fraction_holds_out_that_share_of_the_queries(fraction, tiny_bert, tmp_path):
    records = make_records()
    data = TripletDataModule(
        str(write_jsonl(tmp_path / "t.jsonl", records)), tiny_bert, group_size=3, val_fraction=fraction
    )
    data.setup("fit")
    val = [item[0] for item in data.val_groups]
    train_queries = list(data.train_groups.records["query"])
    assert len(val) == math.ceil(fraction * len(records))
    assert not set(val) & set(train_queries) and sorted(val + train_queries) == sorted(
        r["query"] for r in records
    )


def short_run(model, triplet_files, output, *extra) -> dict:
    """A few optimiser steps without validation or export; returns the last checkpoint's weights."""
    overrides = tiny_run_overrides(model, *triplet_files, output) + [
        "validate_before_training=false",
        "export_dir=null",
        "model.dropout=0.0",  # no random masks: runs that batch differently stay comparable
        "trainer.max_steps=3",
        *extra,
    ]
    train(compose_config(overrides))
    return torch.load(output / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


@pytest.mark.slow
def test_freeze_embeddings_keeps_the_word_embeddings_through_training(tiny_bert, triplet_files, tmp_path):
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert).state_dict()
    name = "bert.embeddings.word_embeddings.weight"
    frozen = short_run(tiny_bert, triplet_files, tmp_path / "frozen", "model.freeze_embeddings=true")
    trained = short_run(tiny_bert, triplet_files, tmp_path / "trained")
    assert torch.equal(frozen["state_dict"][f"model.{name}"], base[name])
    assert not torch.equal(trained["state_dict"][f"model.{name}"], base[name])  # steps do move them
    weight = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(frozen["state_dict"][f"model.{weight}"], base[weight])  # the rest trains


@pytest.mark.slow
def test_k_batches_accumulated_equal_one_batch_k_times_larger(tiny_bert, triplet_files, tmp_path):
    def first_update(name, *extra):
        record = ["+callbacks.grads._target_=tests.recorders.RecordGradients",
                  f"+callbacks.grads.path={tmp_path / name}.pt"]  # fmt: skip
        checkpoint = short_run(tiny_bert, triplet_files, tmp_path / name, *record, *extra)
        return checkpoint, torch.load(tmp_path / f"{name}.pt")

    whole, whole_gradients = first_update("whole", "data.batch_size=4")
    accumulated, accumulated_gradients = first_update(
        "accumulated", "data.batch_size=2", "trainer.accumulate_grad_batches=2"
    )
    _, smaller_gradients = first_update("smaller", "data.batch_size=2")
    assert whole["global_step"] == accumulated["global_step"] == 3  # optimiser steps, not batches
    assert whole_gradients.keys() == accumulated_gradients.keys()
    for name, gradient in accumulated_gradients.items():
        assert torch.allclose(gradient, whole_gradients[name], rtol=1e-4, atol=1e-7), name
    # Not equal by accident: one batch of 2 queries gives another gradient.
    assert any(
        not torch.allclose(g, whole_gradients[n], rtol=1e-4, atol=1e-7) for n, g in smaller_gradients.items()
    )


@pytest.mark.parametrize("nan_batch", [2, 3], ids=["first-of-window", "last-of-window"])
@pytest.mark.slow
def test_a_nan_inside_an_accumulation_window_drops_that_update_only(
    nan_batch, tiny_bert, triplet_files, tmp_path
):
    checkpoint = short_run(
        tiny_bert, triplet_files, tmp_path / "run", "data.batch_size=2", "trainer.accumulate_grad_batches=2",
        "trainer.max_steps=-1", "trainer.max_epochs=1",
        "+callbacks.nan._target_=tests.faults.NaNOnRankAt", "+callbacks.nan.rank=0",
        f"+callbacks.nan.batch_idx={nan_batch}",
        "+callbacks.weights._target_=tests.recorders.RecordWeights",
        f"+callbacks.weights.path={tmp_path / 'weights'}",
    )  # fmt: skip
    digests = [r["digest"] for r in read_records(tmp_path / "weights")]  # after batches 0..6
    assert len(digests) == 7
    # Windows: batches (0, 1), (2, 3), (4, 5), (6): the second one's update is dropped, the others apply.
    assert digests[1] != digests[0] and digests[3] == digests[2] == digests[1] and digests[5] != digests[3]
    (adam_steps,) = {int(s["step"]) for s in checkpoint["optimizer_states"][0]["state"].values()}
    assert adam_steps == checkpoint["global_step"] - 1 == 3
    assert all(torch.isfinite(t).all() for t in checkpoint["state_dict"].values())


def pair_scores_and_gradients(module: RerankerModule, features: dict) -> tuple[torch.Tensor, list]:
    module.zero_grad()
    scores = module(features).view(2, -1)  # [B, G]
    loss = F.cross_entropy(scores, torch.zeros(2, dtype=torch.long))
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in module.parameters() if p.grad is not None]


@pytest.mark.slow
def test_gradient_checkpointing_recomputes_layers_and_gives_the_same_loss_and_gradients(tiny_bert):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    records = make_records()[:2]
    queries = [r["query"] for r in records for _ in range(2)]
    passages = [text for r in records for text in (*r["pos"], *r["neg"])]
    features = PairEncoder(tokenizer, 64)(queries, passages)
    results = {}
    for checkpointing in (False, True):
        module = RerankerModule(tiny_bert, dropout=0.0, gradient_checkpointing=checkpointing)
        module.train()
        calls = []
        # A submodule of the layer: transformers wraps the layer's forward, so the layer's own hooks run once.
        module.model.base_model.encoder.layer[0].attention.register_forward_hook(
            lambda *a, calls=calls: calls.append(1)
        )
        results[checkpointing] = (*pair_scores_and_gradients(module, features), len(calls))
    (loss, gradients, calls), (loss_ckpt, gradients_ckpt, calls_ckpt) = results[False], results[True]
    assert (calls, calls_ckpt) == (1, 2)  # the layer ran again in the backward pass
    assert torch.allclose(loss, loss_ckpt, atol=1e-6) and len(gradients) == len(gradients_ckpt) > 0
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(gradients, gradients_ckpt, strict=True))


def test_the_longer_text_of_a_pair_is_truncated_first(tiny_bert):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    encode = PairEncoder(tokenizer, max_length=16)
    short, long = "서울", " ".join(["서울은 대한민국의 수도이다"] * 10)

    def segments(query: str, passage: str) -> tuple[int, int]:
        """Tokens of the query and of the passage in ``[CLS] query [SEP] passage [SEP]``."""
        ids = encode([query], [passage])["input_ids"][0]
        first_sep, second_sep = (ids == tokenizer.sep_token_id).nonzero().view(-1).tolist()
        assert len(ids) == 16 and second_sep == 15
        return first_sep - 1, second_sep - first_sep - 1

    short_tokens = len(tokenizer(short, add_special_tokens=False)["input_ids"])
    assert segments(short, long) == (short_tokens, 16 - 3 - short_tokens)  # the passage is cut
    assert segments(long, short) == (16 - 3 - short_tokens, short_tokens)  # the query is cut
