"""Speed features keep the numbers: chunked forward passes, query order within a step, length grouping,
for encoders and decoder prompts."""

import itertools
import random

import pytest
import torch
from test_decoder import config_kind
from transformers import AutoTokenizer

from reranker.model.batching import padding_chunks, score_features, token_budget_batches
from reranker.model.encoders import PairEncoder
from reranker.model.kinds import ModelKind, Scorer
from reranker.model.loading import set_padding_token
from reranker.training.lengths import GroupLengths
from reranker.training.module import RerankerModule
from reranker.training.sampling import GroupSampler

QUERIES = ["서울", "김치는 어떻게 만드나", "부산 해운대", "태양"]
PASSAGES = [
    ["서울은 대한민국의 수도이다", "김치", "부산은 항구 도시이다 부산에는 해운대 해수욕장이 있다", "해"],
    ["김치는 배추로 만든다 소금에 절인 배추에 양념을 넣는다", "서울", "태양은 항성이다", "바다"],
    [
        "해운대는 부산에 있다",
        "김치는 발효 음식이다 오래 두면 시어진다 찌개에 넣는다",
        "서울에는 한강이",
        "달",
    ],
    ["태양은 뜨겁다", "부산", "김치", "서울은 대한민국의 수도이다 서울에는 한강이 흐른다 산이 많다"],
]


def batch_of(tokenizer, order):
    encoder = PairEncoder(tokenizer, 64)
    queries = [QUERIES[q] for q in order for _ in PASSAGES[q]]
    passages = [p for q in order for p in PASSAGES[q]]
    labels = torch.tensor([[1.0, 0.0, 0.0, 0.0]] * len(order))  # [B, G]
    return {"features": encoder(queries, passages), "labels": labels}


def step_loss_and_grad(module, batch):
    module.zero_grad()
    scores = module(batch["features"]).view(batch["labels"].shape)  # [B, G]
    loss = module.loss(scores, batch)
    loss.backward()
    # Every parameter's gradient: a chunk that dropped a layer's or a position's contribution shows here.
    grads = {
        name: param.grad.clone() for name, param in module.model.named_parameters() if param.grad is not None
    }
    return loss.detach(), grads


@pytest.mark.parametrize("model_fixture", ["tiny_bert", "tiny_xlmr"])
@pytest.mark.slow
def test_chunked_forward_gives_the_scores_and_gradients_of_one_pass(model_fixture, request):
    """XLM-R derives position ids from its input: chunks fed looked-up embeddings must match too."""
    model_dir = request.getfixturevalue(model_fixture)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    batch = batch_of(tokenizer, [0, 1, 2, 3])
    lengths = batch["features"]["attention_mask"].sum(dim=1)
    assert lengths.min() < lengths.max()  # the batch has padding for the chunks to leave out
    assert len(padding_chunks(lengths.tolist(), 40)) > 1
    whole = RerankerModule(model_dir, dropout=0.0, forward_max_tokens=None)
    chunked = RerankerModule(model_dir, dropout=0.0, forward_max_tokens=40)
    chunked.model.load_state_dict(whole.model.state_dict())
    with torch.no_grad():
        one_pass = score_features(whole.model, batch["features"])
        in_chunks = score_features(chunked.model, batch["features"], max_tokens=40)
    torch.testing.assert_close(in_chunks, one_pass, atol=1e-5, rtol=1e-5)
    loss_whole, grad_whole = step_loss_and_grad(whole, batch)
    loss_chunked, grad_chunked = step_loss_and_grad(chunked, batch)
    torch.testing.assert_close(loss_chunked, loss_whole, atol=1e-6, rtol=1e-6)
    trainable = {name for name, param in whole.model.named_parameters() if param.requires_grad}
    assert grad_whole.keys() == grad_chunked.keys() and len(grad_whole) > 0.9 * len(trainable)
    for name, grad in grad_whole.items():
        torch.testing.assert_close(grad_chunked[name], grad, atol=1e-6, rtol=1e-5, msg=name)


@pytest.mark.slow
def test_step_loss_is_the_same_whatever_order_its_queries_arrive_in(tiny_bert):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    module = RerankerModule(tiny_bert, dropout=0.0, forward_max_tokens=40)
    loss, grad = step_loss_and_grad(module, batch_of(tokenizer, [0, 1, 2, 3]))
    for order in ([3, 1, 0, 2], [2, 3, 1, 0]):
        other_loss, other_grad = step_loss_and_grad(module, batch_of(tokenizer, order))
        torch.testing.assert_close(other_loss, loss, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(other_grad, grad, atol=1e-6, rtol=1e-5)


def fake_lengths(items):
    """A made-up but deterministic group length per item."""
    return [(index * 37 + seed) % 101 for index, seed in items]


def grouped_sampler(num_items=203, rank=0, world_size=1, batch_size=4, window_batches=5, epoch=3):
    sampler = GroupSampler(
        num_items,
        seed=7,
        rank=rank,
        world_size=world_size,
        group_lengths=fake_lengths,
        batch_size=batch_size,
        window_batches=window_batches,
    )
    sampler.set_epoch(epoch)
    return sampler


def test_length_grouping_yields_every_query_once_per_epoch_on_every_rank_split():
    plain = GroupSampler(203, seed=7)
    plain.set_epoch(3)
    assert sorted(list(grouped_sampler())) == sorted(list(plain))  # same items, same group seeds
    assert sorted(index for index, _ in grouped_sampler()) == list(range(203))
    for world_size in (2, 3):
        shards = [
            [index for index, _ in grouped_sampler(rank=r, world_size=world_size)] for r in range(world_size)
        ]
        seen = [index for shard in shards for index in shard]
        assert len(seen) == len(set(seen)) == 203 // world_size * world_size  # disjoint, equal shares
        for rank, shard in enumerate(shards):  # grouping reorders within a rank's own share only
            plain = GroupSampler(203, seed=7, rank=rank, world_size=world_size)
            plain.set_epoch(3)
            assert sorted(shard) == sorted(index for index, _ in plain)


def test_length_grouping_puts_similar_lengths_together():
    items = list(grouped_sampler(batch_size=4, window_batches=5))
    lengths = fake_lengths(items)
    window = 20
    for start in range(0, 200, window):
        batches = [lengths[i : i + 4] for i in range(start, start + window, 4)]
        # Each batch is a run of its window's sorted lengths: the batches' ranges do not overlap.
        ranges = sorted((min(batch), max(batch)) for batch in batches)
        assert all(high <= next_low for (_, high), (next_low, _) in zip(ranges, ranges[1:], strict=False))
    assert lengths != sorted(lengths)  # batch order within a window is shuffled, not longest-last


def test_length_grouping_resumes_exactly_mid_epoch():
    full = list(grouped_sampler())
    for batches_done in (0, 1, 5, 7, 49, 50):
        sampler = grouped_sampler()
        sampler.resume(3, batches_done * 4)
        assert list(sampler) == full[batches_done * 4 :]
    assert list(grouped_sampler()) == full  # a resume applies to one iteration only


def test_query_max_length_keeps_the_query_whole_against_a_long_passage(tiny_bert):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    # A query of 8 tokens and a long passage in 16: longest-first truncation would cut both texts to ~6.
    query = " ".join(["서울"] * 8)
    passage = " ".join(["해운대는 부산에 있다"] * 40)
    query_ids = tokenizer(query, add_special_tokens=False)["input_ids"]
    assert len(query_ids) == 8
    plain = PairEncoder(tokenizer, 16)([query], [passage])["input_ids"][0].tolist()
    assert plain.index(tokenizer.sep_token_id) - 1 < 8  # without the knob, the long passage cuts the query
    kept = PairEncoder(tokenizer, 16, query_max_length=8)([query], [passage])["input_ids"][0].tolist()
    assert len(kept) == 16
    assert kept[1 : 1 + len(query_ids) + 1] == [*query_ids, tokenizer.sep_token_id]  # [CLS] query [SEP] ...
    long_query = " ".join(["서울"] * 30)
    cut = PairEncoder(tokenizer, 16, query_max_length=4)([long_query], [passage])["input_ids"][0].tolist()
    first_sep = cut.index(tokenizer.sep_token_id)
    assert first_sep - 1 == 4 and len(cut) == 16  # the query cut to 4 tokens, the passage fills the rest


class FakeGroup:
    def __init__(self, query, passages):
        self.query, self.passages = query, passages


@pytest.mark.parametrize("model", ["tiny_bert", "tiny_qwen3"])
def test_group_lengths_are_the_encoded_length_of_each_groups_longest_pair(model, request):
    """The sampler's length of a group is what the batch encoder makes of its longest pair (a decoder's
    prompt included, within a token or two where the tokenizer merges across the template's edges)."""
    path = request.getfixturevalue(model)
    kind = ModelKind.from_config(config_kind()) if model == "tiny_qwen3" else ModelKind()
    encoder = kind.encoder(AutoTokenizer.from_pretrained(path), 64 if model == "tiny_bert" else 300)
    groups = [FakeGroup(query, passages) for query, passages in zip(QUERIES, PASSAGES, strict=True)]
    by_item = {(index, 0): group for index, group in enumerate(groups)}  # TrainGroups takes (index, seed)
    lengths = GroupLengths(by_item, encoder)(list(by_item))
    encoded = [
        max(map(len, encoder.encode([group.query] * 4, group.passages)["input_ids"])) for group in groups
    ]
    tolerance = 0 if model == "tiny_bert" else 2
    assert all(abs(a - b) <= tolerance for a, b in zip(lengths, encoded, strict=True)), (lengths, encoded)
    assert len(set(encoded)) > 1  # groups of different lengths: the comparison means something


@pytest.mark.slow
def test_left_padded_prompts_run_in_one_pass_whatever_forward_max_tokens(tiny_qwen3):
    kind = ModelKind.from_config({**config_kind(), "form": "classifier"})
    tokenizer = set_padding_token(AutoTokenizer.from_pretrained(tiny_qwen3))
    model = kind.load_model(tiny_qwen3, tokenizer).eval()
    features = kind.encoder(tokenizer, 300)([QUERIES[0]] * 4, PASSAGES[0])
    lengths = features["attention_mask"].sum(dim=1)
    assert lengths.min() < lengths.max()  # left padding that a chunked pass would cut wrongly
    with torch.no_grad():
        one_pass = model(**features, use_cache=False).logits.view(-1)
        scored = Scorer(kind, tokenizer, max_tokens=250)(model, features)
    torch.testing.assert_close(scored, one_pass, atol=1e-5, rtol=1e-5)


def padded_cost(chunks, lengths, chunk_cost):
    return sum(len(chunk) * max(lengths[i] for i in chunk) + chunk_cost for chunk in chunks)


def test_padding_chunks_cover_every_sequence_once_within_the_budget_at_least_cost():
    rng = random.Random(0)
    for trial in range(60):
        lengths = [rng.randint(1, 60) for _ in range(rng.randint(1, 9))]
        budget, cost = rng.choice([60, 100, 250]), rng.choice([0, 10, 64])
        chunks = padding_chunks(lengths, budget, cost)
        assert sorted(i for chunk in chunks for i in chunk) == list(range(len(lengths)))
        assert all(len(c) == 1 or len(c) * max(lengths[i] for i in c) <= budget for c in chunks)
        # Against every way of cutting the sorted order into runs that fit the budget.
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        best = None
        for cuts in itertools.product([False, True], repeat=len(order) - 1):
            runs, run = [], [order[0]]
            for index, cut in zip(order[1:], cuts, strict=True):
                if cut:
                    runs.append(run)
                    run = []
                run.append(index)
            runs.append(run)
            if all(len(r) == 1 or len(r) * lengths[r[0]] <= budget for r in runs):
                value = padded_cost(runs, lengths, cost)
                best = value if best is None else min(best, value)
        assert padded_cost(chunks, lengths, cost) == best, (trial, lengths, budget, cost)


def test_padding_chunks_compute_less_padding_than_filling_the_budget():
    rng = random.Random(1)
    lengths = [rng.randint(40, 250) for _ in range(32)]
    real = sum(lengths)
    greedy = token_budget_batches(lengths, len(lengths), 2048)
    chosen = padding_chunks(lengths, 2048)
    assert padded_cost(chosen, lengths, 0) < padded_cost(greedy, lengths, 0)
    assert padded_cost(chosen, lengths, 0) <= 1.1 * real  # under 10% padding on this spread
