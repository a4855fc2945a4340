import math

import pytest
import torch
from torch.nn import functional as F

from reranker.core.errors import InputError
from reranker.training.losses import BinaryCrossEntropy, DistillKL, GroupCrossEntropy, MarginMSE

NAN = float("nan")


def batch_of(labels, teacher_scores=None) -> dict:
    batch = {"labels": torch.tensor(labels, dtype=torch.float32)}
    if teacher_scores is not None:
        batch["teacher_scores"] = torch.tensor(teacher_scores, dtype=torch.float32)
    return batch


def binary_labels(queries: int, group_size: int) -> list[list[float]]:
    return [[1.0] + [0.0] * (group_size - 1) for _ in range(queries)]


def log_softmax(values: list[float]) -> list[float]:
    total = math.log(sum(math.exp(v) for v in values))
    return [v - total for v in values]


def kl(teacher: list[float], student: list[float]) -> float:
    """KL(softmax(teacher) || softmax(student)), by hand."""
    log_t, log_s = log_softmax(teacher), log_softmax(student)
    return sum(math.exp(t) * (t - s) for t, s in zip(log_t, log_s, strict=True))


# group_ce


def test_group_ce_matches_hand_computed_value():
    scores = torch.tensor([[2.0, 1.0, 0.0], [-1.0, 0.0, 1.0]])  # two queries, positive first
    first = -math.log(math.exp(2) / (math.exp(2) + math.exp(1) + 1))
    second = -math.log(math.exp(-1) / (math.exp(-1) + 1 + math.exp(1)))
    loss = GroupCrossEntropy()(scores, batch_of(binary_labels(2, 3)))
    assert loss.item() == pytest.approx((first + second) / 2, abs=1e-6)


def test_group_ce_keeps_the_value_of_the_flat_positive_first_form():
    """Binary labels give exactly what the loss computed before labels travelled with the batch."""
    scores = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    before = F.cross_entropy(scores.reshape(-1).reshape(-1, 4), torch.zeros(5, dtype=torch.long))
    assert torch.equal(GroupCrossEntropy()(scores, batch_of(binary_labels(5, 4))), before)


def test_group_ce_takes_the_positive_from_the_labels():
    scores = torch.tensor([[0.0, 3.0, 1.0]])
    loss = GroupCrossEntropy()(scores, batch_of([[0.0, 1.0, 0.0]]))
    assert loss.item() == pytest.approx(-log_softmax([0.0, 3.0, 1.0])[1], abs=1e-6)


def test_group_ce_equal_scores_give_log_group_size():
    loss = GroupCrossEntropy()(torch.zeros(2, 4), batch_of(binary_labels(2, 4)))
    assert loss.item() == pytest.approx(math.log(4), abs=1e-6)


def test_group_ce_ragged_last_batch():
    # One query of 4 where a batch size of 2 was configured: the shape comes from the labels.
    loss = GroupCrossEntropy()(torch.tensor([[5.0, 0.0, 0.0, 0.0]]), batch_of(binary_labels(1, 4)))
    assert loss.item() == pytest.approx(-log_softmax([5.0, 0.0, 0.0, 0.0])[0], abs=1e-6)


def test_scores_that_do_not_match_the_labels_are_refused():
    with pytest.raises(ValueError, match=r"scores of shape \(7,\) do not match labels of shape \(2, 3\)"):
        GroupCrossEntropy()(torch.zeros(7), batch_of(binary_labels(2, 3)))


def test_group_ce_gradient_pushes_positive_up():
    scores = torch.zeros(1, 3, requires_grad=True)
    GroupCrossEntropy()(scores, batch_of(binary_labels(1, 3))).backward()
    assert scores.grad[0, 0] < 0 and (scores.grad[0, 1:] > 0).all()


# distill_kl


def test_distill_kl_matches_hand_computed_value_with_temperature_and_alpha():
    student = [[2.0, 0.5, -1.0], [0.0, 1.0, 0.5]]
    teacher = [[9.0, 7.0, 6.0], [4.0, 5.0, 1.0]]
    alpha, tau = 0.3, 2.0
    ce = (-log_softmax(student[0])[0] - log_softmax(student[1])[0]) / 2
    divergence = sum(
        kl([t / tau for t in tq], [s / tau for s in sq]) for tq, sq in zip(teacher, student, strict=True)
    )
    expected = alpha * ce + (1 - alpha) * tau**2 * divergence / 2
    loss = DistillKL(alpha=alpha, temperature=tau)(
        torch.tensor(student), batch_of(binary_labels(2, 3), teacher)
    )
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_distill_kl_masks_passages_without_teacher_scores():
    student = [[2.0, 0.5, -1.0, 3.0], [0.0, 1.0, 0.5, 0.2], [1.0, 2.0, 3.0, 4.0]]
    # Query 1: its last passage is unscored; query 2: only one scored passage (no KL); query 3: none.
    teacher = [[9.0, 7.0, 6.0, NAN], [4.0, NAN, NAN, NAN], [NAN, NAN, NAN, NAN]]
    loss = DistillKL(alpha=0.0, temperature=1.0)(
        torch.tensor(student), batch_of(binary_labels(3, 4), teacher)
    )
    # Only query 1 counts, over its three scored passages.
    assert loss.item() == pytest.approx(kl([9.0, 7.0, 6.0], [2.0, 0.5, -1.0]), abs=1e-5)


def test_distill_kl_gradients_stay_finite_with_masked_passages():
    scores = torch.tensor([[2.0, 0.5, -1.0], [1.0, 1.0, 1.0]], requires_grad=True)
    batch = batch_of(binary_labels(2, 3), [[3.0, NAN, 1.0], [NAN, NAN, NAN]])
    DistillKL(alpha=0.5, temperature=0.5)(scores, batch).backward()
    assert torch.isfinite(scores.grad).all()
    # The masked passage of query 1 gets only the CE gradient.
    assert scores.grad[0, 1].item() == pytest.approx(0.5 * math.exp(log_softmax([2.0, 0.5, -1.0])[1]) / 2)


def test_distill_kl_with_no_scored_pair_is_alpha_times_ce():
    scores = torch.tensor([[2.0, 0.5, -1.0]])
    batch = batch_of(binary_labels(1, 3), [[NAN, NAN, NAN]])
    loss = DistillKL(alpha=0.25, temperature=3.0)(scores, batch)
    assert loss.item() == pytest.approx(0.25 * -log_softmax([2.0, 0.5, -1.0])[0], abs=1e-6)


def test_distill_kl_is_zero_kl_when_student_matches_teacher():
    scores = torch.tensor([[3.0, 1.0, 2.0]])
    batch = batch_of(binary_labels(1, 3), [[3.0, 1.0, 2.0]])
    assert DistillKL(alpha=0.0, temperature=1.5)(scores, batch).item() == pytest.approx(0.0, abs=1e-6)


def test_distill_kl_ragged_last_batch():
    student, teacher = [[1.0, 0.0]], [[0.0, 2.0]]
    loss = DistillKL(alpha=0.0, temperature=1.0)(
        torch.tensor(student), batch_of(binary_labels(1, 2), teacher)
    )
    assert loss.item() == pytest.approx(kl(teacher[0], student[0]), abs=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"temperature": 0.0}, "loss.temperature must be a number > 0, got 0.0"),
        ({"temperature": -1.0}, "loss.temperature must be a number > 0, got -1.0"),
        ({"alpha": 1.5}, r"loss.alpha must be a number in \[0, 1\], got 1.5"),
        ({"alpha": -0.1}, r"loss.alpha must be a number in \[0, 1\], got -0.1"),
    ],
)
def test_distill_kl_refuses_bad_arguments(kwargs, message):
    with pytest.raises(InputError, match=message):
        DistillKL(**kwargs)


# margin_mse


def test_margin_mse_matches_hand_computed_value_over_scored_pairs():
    student = [[2.0, 0.5, -1.0], [0.0, 1.0, 0.5], [1.0, 0.0, 0.0]]
    teacher = [[9.0, 7.0, NAN], [4.0, 5.0, 1.0], [NAN, 1.0, 2.0]]  # query 3: positive unscored
    pairs = [
        ((2.0 - 0.5) - (9.0 - 7.0)) ** 2,
        ((0.0 - 1.0) - (4.0 - 5.0)) ** 2,
        ((0.0 - 0.5) - (4.0 - 1.0)) ** 2,
    ]
    loss = MarginMSE()(torch.tensor(student), batch_of(binary_labels(3, 3), teacher))
    assert loss.item() == pytest.approx(sum(pairs) / 3, abs=1e-5)


def test_margin_mse_ignores_the_teachers_offset_and_gives_zero_without_pairs():
    scores = torch.tensor([[2.0, 0.5]])
    assert MarginMSE()(scores, batch_of(binary_labels(1, 2), [[101.5, 100.0]])).item() == pytest.approx(0.0)
    scores = torch.tensor([[2.0, 0.5]], requires_grad=True)
    loss = MarginMSE()(scores, batch_of(binary_labels(1, 2), [[NAN, 100.0]]))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(scores.grad, torch.zeros_like(scores))


# bce


def test_bce_matches_hand_computed_value_with_graded_labels_and_pos_weight():
    scores = [[2.0, -1.0], [0.5, 0.0]]
    labels = [[1.0, 0.0], [0.7, 0.2]]

    def term(s: float, y: float, w: float) -> float:
        sigmoid = 1 / (1 + math.exp(-s))
        return -(w * y * math.log(sigmoid) + (1 - y) * math.log(1 - sigmoid))

    for weight in (1.0, 3.0):
        pairs = zip(sum(scores, []), sum(labels, []), strict=True)
        expected = sum(term(s, y, weight) for s, y in pairs) / 4
        loss = BinaryCrossEntropy(pos_weight=weight)(torch.tensor(scores), batch_of(labels))
        assert loss.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("weight", [0.0, -1.0])
def test_bce_refuses_a_pos_weight_that_is_not_positive(weight):
    with pytest.raises(InputError, match="loss.pos_weight must be a number > 0"):
        BinaryCrossEntropy(pos_weight=weight)


def test_which_losses_need_teacher_scores():
    assert not GroupCrossEntropy.needs_teacher and not BinaryCrossEntropy.needs_teacher
    assert DistillKL.needs_teacher and MarginMSE.needs_teacher
