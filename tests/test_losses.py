import math

import pytest
import torch

from reranker.training.losses import GroupCrossEntropy


def test_matches_hand_computed_value():
    loss = GroupCrossEntropy(group_size=3)
    scores = torch.tensor([2.0, 1.0, 0.0, -1.0, 0.0, 1.0])  # two queries, positive first
    first = -math.log(math.exp(2) / (math.exp(2) + math.exp(1) + 1))
    second = -math.log(math.exp(-1) / (math.exp(-1) + 1 + math.exp(1)))
    assert loss(scores).item() == pytest.approx((first + second) / 2, abs=1e-6)


def test_equal_scores_give_log_group_size():
    assert GroupCrossEntropy(4)(torch.zeros(8)).item() == pytest.approx(math.log(4), abs=1e-6)


def test_partial_last_batch_uses_configured_group_size():
    # One query of 4 where a batch size of 2 was configured: the shape comes from group_size alone.
    loss = GroupCrossEntropy(4)
    assert loss(torch.tensor([5.0, 0.0, 0.0, 0.0])).item() < 0.03


def test_rejects_scores_that_are_not_whole_groups():
    with pytest.raises(ValueError, match="not a whole number of groups of 3"):
        GroupCrossEntropy(3)(torch.zeros(7))


@pytest.mark.parametrize("bad", [1, 0, -2, 2.5])
def test_rejects_group_size_below_two(bad):
    with pytest.raises(ValueError, match="group_size must be an integer >= 2"):
        GroupCrossEntropy(bad)


def test_gradient_pushes_positive_up():
    scores = torch.zeros(3, requires_grad=True)
    GroupCrossEntropy(3)(scores).backward()
    assert scores.grad[0] < 0 and (scores.grad[1:] > 0).all()
