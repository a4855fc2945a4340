import lightning as L
import pytest
import torch
from transformers import AutoTokenizer

from reranker.core.errors import InputError
from reranker.training.datamodule import TripletDataModule
from reranker.training.module import RerankerModule
from reranker.training.optimizer import planned_steps


def _train_mode_scores(module: RerankerModule, model_dir: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores of the same pairs from two forward passes in training mode."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    features = tokenizer(
        ["서울의 인구는?", "부산은 어디에 있나?"],
        ["서울은 한국의 수도이다.", "부산은 남쪽의 항구 도시이다."],
        padding=True,
        return_tensors="pt",
    )
    module.train()
    torch.manual_seed(0)
    with torch.no_grad():
        return module(dict(features)), module(dict(features))


@pytest.mark.parametrize("model_fixture", ["tiny_bert", "tiny_xlmr"])
@pytest.mark.slow
def test_dropout_zero_makes_training_passes_deterministic_and_leaves_the_config(model_fixture, request):
    model_dir = request.getfixturevalue(model_fixture)
    base = RerankerModule(model_dir)
    first, second = _train_mode_scores(base, model_dir)
    assert not torch.equal(first, second)  # the base model's dropout (0.1) is active in training

    module = RerankerModule(model_dir, dropout=0.0)
    first, second = _train_mode_scores(module, model_dir)
    assert torch.equal(first, second)
    # The saved config (what an export writes) keeps the base model's dropout.
    assert module.model.config.hidden_dropout_prob == base.model.config.hidden_dropout_prob == 0.1
    assert module.model.config.attention_probs_dropout_prob == 0.1


@pytest.mark.parametrize("model_fixture", ["tiny_bert", "tiny_xlmr"])
@pytest.mark.slow
def test_attention_dropout_reaches_the_attention_and_only_it(model_fixture, request):
    model_dir = request.getfixturevalue(model_fixture)
    # Hidden dropout off, attention dropout on: passes differ, so the value set is the one attention uses.
    module = RerankerModule(model_dir, dropout=0.0, attention_dropout=0.5)
    first, second = _train_mode_scores(module, model_dir)
    assert not torch.equal(first, second)
    # Attention dropout off, the base model's hidden dropout (0.1) kept: passes still differ ...
    module = RerankerModule(model_dir, attention_dropout=0.0)
    first, second = _train_mode_scores(module, model_dir)
    assert not torch.equal(first, second)
    probabilities = {name: m.p for name, m in module.model.named_modules() if isinstance(m, torch.nn.Dropout)}
    attention = {name: p for name, p in probabilities.items() if name.endswith("attention.self.dropout")}
    assert len(attention) == module.model.config.num_hidden_layers
    assert set(attention.values()) == {0.0}
    assert {p for name, p in probabilities.items() if name not in attention} == {0.1}
    # ... and the config an export writes keeps the base model's value.
    assert module.model.config.attention_probs_dropout_prob == 0.1


@pytest.mark.slow
def test_attention_dropout_of_a_decoder_is_its_attention_modules_float(tiny_qwen3):
    from test_decoder import config_kind

    module = RerankerModule(tiny_qwen3, kind=config_kind(), attention_dropout=0.25)
    values = [m.attention_dropout for m in module.model.modules() if type(m).__name__ == "Qwen3Attention"]
    assert values and set(values) == {0.25}


@pytest.mark.parametrize("value", [-0.1, 1.0])
def test_an_attention_dropout_outside_zero_to_one_is_refused(value, tiny_bert):
    with pytest.raises(InputError, match=r"model.attention_dropout must be in \[0, 1\) or null"):
        RerankerModule(tiny_bert, attention_dropout=value)


@pytest.mark.parametrize("dropout", [-0.1, 1.0])
def test_a_dropout_outside_zero_to_one_is_refused(dropout, tiny_bert):
    with pytest.raises(InputError, match=r"model.dropout must be in \[0, 1\) or null"):
        RerankerModule(tiny_bert, dropout=dropout)


class _Counted(Exception):
    """Stops a fit once the optimiser steps are counted."""


class _CountSteps(L.Callback):
    def on_train_start(self, trainer, pl_module) -> None:
        # The training loader exists now: Lightning's own estimate builds nothing.
        self.estimated = trainer.estimated_stepping_batches
        self.planned = planned_steps(trainer, trainer.datamodule.train_batches_per_epoch())
        raise _Counted


@pytest.mark.parametrize(
    "limits",
    [
        {"max_epochs": 2},
        {"max_epochs": 3, "accumulate_grad_batches": 2, "limit_train_batches": 0.5},
        {"max_epochs": 2, "accumulate_grad_batches": 4, "limit_train_batches": 5},
        {"max_epochs": 5, "max_steps": 4},
        {"max_epochs": -1, "max_steps": 7},
    ],
)
def test_the_planned_optimiser_steps_are_lightnings_estimate(limits, tiny_bert, triplet_files):
    datamodule = TripletDataModule(*triplet_files[:1], tiny_bert, group_size=3, batch_size=2, num_workers=0)
    counter = _CountSteps()
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, callbacks=[counter], **limits,
    )  # fmt: skip
    with pytest.raises(_Counted):
        trainer.fit(RerankerModule(tiny_bert), datamodule=datamodule)
    assert counter.planned == counter.estimated
