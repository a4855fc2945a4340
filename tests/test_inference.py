import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from reranker import Reranker
from reranker.core.errors import InputError
from reranker.model.batching import token_budget_batches

QUERY = "서울에 대한 질문 대한민국의 무엇인가"
PASSAGES = [
    "서울은 대한민국의 수도이다",
    "김치는 배추로 만든다",
    "부산은 항구 도시이다 부산에는 해운대 해수욕장이 있다 부산 국제 영화제가 열린다",
    "서울에는 한강이 흐른다",
    "태양",
]
PAIRS = [(QUERY, passage) for passage in PASSAGES] + [
    ("김치", "김치는 발효 음식이다"),
    ("김치", "태양은 항성이다"),
]


def plain_logits(folder, pairs) -> torch.Tensor:
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    features = tokenizer([q for q, _ in pairs], [p for _, p in pairs], padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**features).logits.view(-1)


@pytest.mark.slow
def test_scores_are_the_models_logits_in_input_order_whatever_the_batching(trained_run):
    export = trained_run / "export"
    expected = plain_logits(export, PAIRS)
    reranker = Reranker(export, device="cpu")
    for batch_size, max_tokens in ((1, 8192), (2, 8192), (32, 8192), (32, 40), (32, 1)):
        scores = reranker.score(PAIRS, batch_size=batch_size, max_tokens=max_tokens)
        assert scores == pytest.approx(expected.tolist(), abs=1e-4)
    assert len(set(expected.tolist())) == len(PAIRS)  # distinct scores: the order check above means something
    # Any order in, the same scores out in that order: pairs are sorted by length inside and put back.
    shuffled = [PAIRS[i] for i in (3, 6, 0, 5, 2, 1, 4)]
    assert reranker.score(shuffled, max_tokens=40) == pytest.approx(
        [expected[i].item() for i in (3, 6, 0, 5, 2, 1, 4)], abs=1e-4
    )


def test_token_budget_batches_cover_every_pair_once_within_the_budget():
    lengths = [5, 40, 12, 12, 33, 7, 40, 1, 25]
    batches = token_budget_batches(lengths, batch_size=3, max_tokens=60)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) <= 3 and (len(batch) == 1 or len(batch) * longest <= 60)
        assert lengths[batch[0]] == longest  # longest first within each batch, and batches longest first
    assert [lengths[batch[0]] for batch in batches] == sorted((lengths[b[0]] for b in batches), reverse=True)


@pytest.mark.slow
def test_normalizations(trained_run):
    reranker = Reranker(trained_run / "export", device="cpu")
    logits = torch.tensor(reranker.score(PAIRS))
    assert reranker.score(PAIRS, normalize="sigmoid") == pytest.approx(
        torch.sigmoid(logits).tolist(), abs=1e-6
    )
    softmax = reranker.score(PAIRS, normalize="softmax")
    # One softmax per query: the first five pairs share a query, the last two another.
    assert softmax[:5] == pytest.approx(torch.softmax(logits[:5], 0).tolist(), abs=1e-6)
    assert softmax[5:] == pytest.approx(torch.softmax(logits[5:], 0).tolist(), abs=1e-6)


@pytest.mark.slow
def test_rerank_orders_highest_first_and_cuts_at_top_k(trained_run):
    reranker = Reranker(trained_run / "export", device="cpu")
    scores = reranker.score([(QUERY, p) for p in PASSAGES])
    ranked = reranker.rerank(QUERY, PASSAGES)
    assert [r.index for r in ranked] == sorted(range(len(PASSAGES)), key=lambda i: -scores[i])
    assert [r.score for r in ranked] == pytest.approx(sorted(scores, reverse=True))
    assert reranker.rerank(QUERY, PASSAGES, top_k=2) == ranked[:2]
    assert len(reranker.rerank(QUERY, PASSAGES, top_k=10)) == len(PASSAGES)


@pytest.mark.slow
def test_a_checkpoint_scores_like_its_export(trained_run):
    checkpoint = next((trained_run / "checkpoints").glob("step*.ckpt"))
    from_checkpoint = Reranker(checkpoint, device="cpu").score(PAIRS)
    assert from_checkpoint == pytest.approx(
        Reranker(trained_run / "export", device="cpu").score(PAIRS), abs=1e-6
    )


@pytest.mark.slow
def test_max_length_truncates(bert_run):
    long_pairs = [(QUERY, " ".join(PASSAGES * 20)), (QUERY, PASSAGES[0])]
    short = Reranker(bert_run / "export", max_length=16, device="cpu")
    assert short.encoder([q for q, _ in long_pairs], [p for _, p in long_pairs])["input_ids"].shape[1] == 16
    assert short.score(long_pairs) != pytest.approx(Reranker(bert_run / "export").score(long_pairs))
    # The limit never exceeds what the model accepts (the tiny models have 128 positions).
    assert Reranker(bert_run / "export", max_length=100_000).max_length == 128


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.slow
def test_half_precision_is_close_to_float32(dtype, trained_run):
    full = Reranker(trained_run / "export", device="cpu").score(PAIRS)
    half = Reranker(trained_run / "export", device="cpu", dtype=dtype)
    assert {parameter.dtype for parameter in half.model.parameters()} == {getattr(torch, dtype)}
    scores = half.score(PAIRS)
    assert all(type(score) is float for score in scores)
    # The tiny models' wide random weights make half-precision rounding visible (seen: up to ~0.03 in
    # float16; bfloat16 keeps 8 bits of mantissa against float16's 11).
    assert scores == pytest.approx(full, abs=0.1 if dtype == "float16" else 0.3)
    assert scores != full  # it did run in half precision


@pytest.mark.slow
def test_no_autograd_graph_is_built(bert_run):
    reranker = Reranker(bert_run / "export", device="cpu")
    builds_graph = []
    reranker.model.register_forward_hook(
        lambda module, args, output: builds_graph.append(output.logits.requires_grad)
    )
    reranker.score(PAIRS, batch_size=4)
    assert builds_graph == [False, False]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda r: r.rerank(QUERY, []), "passages must be a non-empty list of strings"),
        (lambda r: r.rerank(QUERY, "one passage"), "passages must be a non-empty list of strings"),
        (lambda r: r.rerank(None, PASSAGES), "query must be a string, got NoneType"),
        (lambda r: r.rerank(QUERY, PASSAGES, top_k=0), "top_k must be None or an integer >= 1, got 0"),
        (
            lambda r: r.score([(QUERY, "p"), (QUERY,)]),
            "pairs[1] must be a (query, passage) pair of two strings",
        ),
        (lambda r: r.score([(QUERY, None)]), "pairs[0] must be a (query, passage) pair of two strings"),
        (lambda r: r.score(["ab"]), "pairs[0] must be a (query, passage) pair of two strings"),
        (lambda r: r.score(PAIRS, normalize="tanh"), "normalize must be one of None, 'sigmoid', 'softmax'"),
        (lambda r: r.score(PAIRS, batch_size=0), "batch_size must be an integer >= 1"),
        (lambda r: r.score(PAIRS, max_tokens=0), "max_tokens must be an integer >= 1"),
    ],
)
@pytest.mark.slow
def test_bad_calls_raise_clear_errors(call, message, bert_run):
    reranker = Reranker(bert_run / "export", device="cpu")
    with pytest.raises(InputError) as error:
        call(reranker)
    assert message in str(error.value)


@pytest.mark.slow
def test_score_of_no_pairs_is_empty(bert_run):
    assert Reranker(bert_run / "export", device="cpu").score([]) == []


@pytest.mark.slow
def test_folder_without_weights_or_tokenizer(bert_run, tmp_path):
    export = bert_run / "export"
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (no_weights / name).write_bytes((export / name).read_bytes())
    with pytest.raises(InputError, match=f"cannot load model '{no_weights}'"):
        Reranker(no_weights)
    no_tokenizer = tmp_path / "no-tokenizer"
    no_tokenizer.mkdir()
    for name in ("config.json", "model.safetensors"):
        (no_tokenizer / name).write_bytes((export / name).read_bytes())
    with pytest.raises(InputError, match=f"cannot load a tokenizer from {no_tokenizer}"):
        Reranker(no_tokenizer)
    with pytest.raises(InputError, match="dtype must be one of float32, float16, bfloat16"):
        Reranker(export, dtype="int8")


@pytest.mark.slow
def test_checkpoint_of_another_model_class(bert_run, tmp_path):
    real = torch.load(next((bert_run / "checkpoints").glob("step*.ckpt")), weights_only=False)
    other = tmp_path / "other.ckpt"
    torch.save({**real, "hyper_parameters": {"hidden_size": 8}}, other)
    with pytest.raises(InputError, match="was not written by reranker.train"):
        Reranker(other)
    mismatched = tmp_path / "mismatched.ckpt"
    torch.save({**real, "state_dict": {"encoder.weight": torch.zeros(2, 2)}}, mismatched)
    with pytest.raises(InputError, match="its weights do not fit a cross-encoder on"):
        Reranker(mismatched)
    not_torch = tmp_path / "text.ckpt"
    not_torch.write_text("not a checkpoint")
    with pytest.raises(InputError, match="is not a PyTorch checkpoint"):
        Reranker(not_torch)
