import pytest
import torch
from transformers import AutoTokenizer

from reranker.core.errors import InputError
from reranker.training.module import RerankerModule


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


@pytest.mark.parametrize("dropout", [-0.1, 1.0])
def test_a_dropout_outside_zero_to_one_is_refused(dropout, tiny_bert):
    with pytest.raises(InputError, match=r"model.dropout must be in \[0, 1\) or null"):
        RerankerModule(tiny_bert, dropout=dropout)
