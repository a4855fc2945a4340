"""``model.recompute_attention``: attention with dropout that keeps no ``[L, L]`` matrix for the backward
pass gives the plain path's outputs and gradients for the same dropout mask, saves no such matrix, and
trains and exports an encoder like the default attention."""

import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from reranker.core.errors import InputError
from reranker.model.attention import NAME, RecomputedAttention, additive_bias, use_recomputed_attention
from reranker.model.kinds import ModelKind

B, H, L, D, P = 3, 2, 7, 4, 0.3


def inputs(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    query, key, value = (torch.randn(B, H, L, D, generator=generator, dtype=torch.float64) for _ in range(3))
    mask = torch.ones(B, 1, L, L, dtype=torch.bool)
    mask[0, :, :, 5:] = False  # padded keys of the first pair
    mask[2, :, :, 3:] = False
    return query, key, value, mask


def plain(query, key, value, bias, dropout, scale):
    """The eager path: softmax, the dropout mask drawn as RecomputedAttention draws it, the product."""
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale + bias
    probabilities = torch.softmax(scores, dim=-1)
    keep = torch.empty_like(probabilities).bernoulli_(1.0 - dropout).bool()
    return torch.matmul(probabilities * keep / (1.0 - dropout), value)


def test_outputs_and_gradients_are_the_plain_paths_for_the_same_dropout_mask():
    query, key, value, mask = inputs()
    bias = additive_bias(mask, torch.float64)
    grad = torch.randn(B, H, L, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    results = []
    for function in (RecomputedAttention.apply, plain):
        leaves = [t.clone().requires_grad_() for t in (query, key, value)]
        torch.manual_seed(5)  # the same draw of the dropout mask in both
        output = function(*leaves, bias, P, D**-0.5)
        output.backward(grad)
        results.append([output.detach(), *(leaf.grad for leaf in leaves)])
    for ours, reference in zip(*results, strict=True):
        torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)
    assert (results[0][0] == 0).any() or P == 0  # a mask was applied somewhere


def saved_square_floats(model, features) -> list[tuple]:
    """Shapes of the float tensors ``[..., L, L]`` kept for the backward pass of one training step."""
    length = features["input_ids"].shape[1]
    saved = []

    def pack(tensor):
        if tensor.is_floating_point() and tensor.dim() >= 2 and tensor.shape[-2:] == (length, length):
            saved.append(tuple(tensor.shape))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(**features).logits.sum().backward()
    return saved


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_xlmr"])
def test_no_attention_matrix_is_kept_for_the_backward_pass(fixture, request):
    path = request.getfixturevalue(fixture)
    tokenizer = AutoTokenizer.from_pretrained(path)
    features = dict(
        tokenizer(["a query", "another longer query"], ["a passage", "b"], padding=True, return_tensors="pt")
    )
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, attn_implementation="sdpa")
    model.train()
    assert saved_square_floats(model, features)  # the plain path with attention dropout keeps them
    use_recomputed_attention(model, ModelKind.from_config(None))
    assert model.config._attn_implementation == NAME
    assert saved_square_floats(model, features) == []
    model.eval()  # without dropout the fused kernel runs, as with sdpa
    with torch.no_grad():
        ours = model(**features).logits
    model.set_attn_implementation("sdpa")
    with torch.no_grad():
        assert torch.equal(ours, model(**features).logits)


def test_a_decoder_kind_is_refused(tiny_bert):
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=1)
    decoder = ModelKind.from_config(
        {"form": "yes_no", "query_template": "Query: {query}", "passage_template": "Passage: {passage}"}
    )
    with pytest.raises(InputError, match="model.recompute_attention: encoder cross-encoders only"):
        use_recomputed_attention(model, decoder)


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_xlmr"])
def test_a_training_with_it_exports_a_model_that_loads_anywhere(fixture, request, triplet_files, tmp_path):
    from helpers import compose_config, tiny_run_overrides

    from reranker.train import train

    overrides = tiny_run_overrides(request.getfixturevalue(fixture), *triplet_files, tmp_path / "run")
    config = compose_config([*overrides, "model.recompute_attention=true", "model.attention_dropout=0.1"])
    metrics = train(config)
    assert all(value == value for value in metrics.values())  # no NaN
    export = tmp_path / "run" / "export"
    assert NAME not in (export / "config.json").read_text()
    assert json.loads((export / "config.json").read_text()).get("attn_implementation") in (
        None,
        "sdpa",
        "eager",
    )
    AutoModelForSequenceClassification.from_pretrained(export)
