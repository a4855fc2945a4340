import pytest
import torch

from reranker.evaluation.metrics import MRR, HitRate, first_relevant_rank, ranking_metrics, update_all


def t(rows):
    return torch.tensor(rows)


def test_rank_of_first_relevant_with_negative_logits():
    scores = t([[-3.0, -1.0, -2.0], [-0.5, -7.0, -9.0]])
    relevance = t([[True, False, False], [False, False, True]])
    assert first_relevant_rank(scores, relevance).tolist() == [3, 3]
    mrr = MRR(10)
    mrr.update(scores, relevance)
    assert mrr.compute().item() == pytest.approx(1 / 3)


def test_several_positives_take_the_best_one():
    scores = t([[0.1, 0.9, 0.5, 0.7]])
    relevance = t([[True, False, False, True]])  # best positive 0.7 has one negative (0.9) above it
    assert first_relevant_rank(scores, relevance).tolist() == [2]


def test_ties_count_against_the_positive():
    scores = t([[1.0, 1.0, 1.0, 0.0]])
    relevance = t([[True, False, False, False]])
    assert first_relevant_rank(scores, relevance).tolist() == [3]
    constant = torch.zeros(2, 5)
    relevant_first = torch.zeros(2, 5, dtype=torch.bool)
    relevant_first[:, 0] = True
    hit = HitRate(1)
    hit.update(constant, relevant_first)
    assert hit.compute().item() == 0.0


@pytest.mark.parametrize("candidates, expected_mrr", [(5, 1 / 5), (10, 1 / 10), (12, 0.0)])
def test_a_constant_scorer_ranks_the_positive_last(candidates, expected_mrr):
    relevance = torch.zeros(3, candidates, dtype=torch.bool)
    relevance[:, 1] = True
    mrr, hit = MRR(10), HitRate(1)
    mrr.update(torch.full((3, candidates), 0.5), relevance)
    hit.update(torch.full((3, candidates), 0.5), relevance)
    assert mrr.compute().item() == pytest.approx(expected_mrr) and hit.compute().item() == 0.0


def test_query_without_positive_counts_as_zero():
    scores = t([[3.0, 2.0], [1.0, 2.0]])
    relevance = t([[True, False], [False, False]])
    mrr, hit = MRR(10), HitRate(1)
    mrr.update(scores, relevance)
    hit.update(scores, relevance)
    assert mrr.compute().item() == pytest.approx(0.5)  # (1 + 0) / 2
    assert hit.compute().item() == pytest.approx(0.5)


def test_ragged_groups_ignore_padding():
    # The second query has 2 candidates; its padded cells hold higher scores that must be ignored.
    scores = t([[0.2, 0.9, 0.1], [0.5, 0.4, 99.0]])
    relevance = t([[True, False, False], [True, False, True]])
    mask = t([[True, True, True], [True, True, False]])
    assert first_relevant_rank(scores, relevance, mask).tolist() == [2, 1]
    mrr = MRR(10)
    mrr.update(scores, relevance, mask)
    assert mrr.compute().item() == pytest.approx((0.5 + 1.0) / 2)


def test_cutoff_k():
    scores = torch.arange(12, dtype=torch.float).flip(0).unsqueeze(0)  # candidate j has rank j + 1
    for position, expected_mrr, expected_hit3 in [
        (0, 1.0, 1.0),
        (2, 1 / 3, 1.0),
        (3, 1 / 4, 0.0),
        (10, 0.0, 0.0),
    ]:
        relevance = torch.zeros(1, 12, dtype=torch.bool)
        relevance[0, position] = True
        mrr, hit3 = MRR(10), HitRate(3)
        mrr.update(scores, relevance)
        hit3.update(scores, relevance)
        assert mrr.compute().item() == pytest.approx(expected_mrr)
        assert hit3.compute().item() == expected_hit3


def test_merged_states_equal_one_pass_as_ddp_would_reduce():
    torch.manual_seed(0)
    scores = torch.randn(10, 6)
    relevance = torch.rand(10, 6) > 0.7
    whole = ranking_metrics()
    for metric in whole.values():
        metric.update(scores, relevance)
    first, second = ranking_metrics(), ranking_metrics()
    for name in whole:
        first[name].update(scores[:4], relevance[:4])
        second[name].update(scores[4:], relevance[4:])
        first[name].merge_state(second[name])  # sums the states, as dist_reduce_fx="sum" does across ranks
        assert first[name].compute().item() == pytest.approx(whole[name].compute().item(), abs=1e-12)
        assert int(first[name].count) == 10


def test_hand_computed_batch():
    scores = t([[0.3, 0.8, 0.1, 0.5], [2.0, 1.0, 0.0, -1.0], [-1.0, -2.0, -3.0, -0.5], [0.0, 0.0, 0.0, 0.0]])
    relevance = t(
        [
            [True, False, False, False],
            [True, False, False, False],
            [False, False, True, False],
            [True] + [False] * 3,
        ]
    )
    # ranks: 3, 1, 4, 4 (tie) → MRR@10 = (1/3 + 1 + 1/4 + 1/4) / 4; hit@3 = 2/4
    metrics = ranking_metrics(10, (1, 3))
    for metric in metrics.values():
        metric.update(scores, relevance)
    assert metrics["mrr@10"].compute().item() == pytest.approx((1 / 3 + 1 + 0.25 + 0.25) / 4)
    assert metrics["hit@1"].compute().item() == pytest.approx(0.25)
    assert metrics["hit@3"].compute().item() == pytest.approx(0.5)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r"\[Q, C\]"):
        first_relevant_rank(torch.zeros(2, 3), torch.zeros(2, 4, dtype=torch.bool))


def test_k_must_be_positive():
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        MRR(0)


def test_one_shared_rank_computation_gives_each_metric_its_own_value():
    torch.manual_seed(1)
    scores = torch.randn(50, 7).round(decimals=1)  # rounding makes ties
    relevance = torch.rand(50, 7) > 0.8  # none, one or several positives per query
    mask = torch.rand(50, 7) > 0.1
    separate, shared = ranking_metrics(10, (1, 3, 5)), ranking_metrics(10, (1, 3, 5))
    for metric in separate.values():
        metric.update(scores, relevance, mask)
    update_all(shared, scores, relevance, mask)
    for name in separate:
        assert torch.equal(shared[name].rank_counts, separate[name].rank_counts), name


def test_rank_matches_the_dense_definition_with_ties_infinities_and_padding():
    torch.manual_seed(2)
    scores = torch.randn(200, 9).round(decimals=0)
    scores[::7, 2] = float("inf")
    scores[::5, 3] = float("-inf")
    relevance = torch.rand(200, 9) > 0.75
    mask = torch.rand(200, 9) > 0.15
    relevant = relevance & mask
    best = scores.masked_fill(~relevant, float("-inf")).amax(dim=1, keepdim=True)
    expected = 1 + (mask & ~relevant & (scores >= best)).sum(dim=1)
    expected = torch.where(relevant.any(dim=1), expected, 0)
    assert torch.equal(first_relevant_rank(scores, relevance, mask), expected)
