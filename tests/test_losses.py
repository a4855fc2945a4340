import math

import pytest
import torch
from torch.nn import functional as F

from reranker.core.errors import InputError
from reranker.training.losses import (
    BinaryCrossEntropy,
    DistillKL,
    GroupCrossEntropy,
    LambdaLoss,
    ListNet,
    LossMix,
    MarginMSE,
    PListMLE,
    RankNet,
)

NAN = float("nan")


def batch_of(labels, teacher_scores=None, first_stage_scores=None) -> dict:
    batch = {"labels": torch.tensor(labels, dtype=torch.float32)}
    if teacher_scores is not None:
        batch["teacher_scores"] = torch.tensor(teacher_scores, dtype=torch.float32)
    if first_stage_scores is not None:
        batch["first_stage_scores"] = torch.tensor(first_stage_scores, dtype=torch.float32)
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


def test_distill_kl_teacher_temperature_divides_only_the_teachers_scores():
    student = [[2.0, 0.5, -1.0]]
    teacher = [[0.9, 0.8, 0.7]]  # a cosine teacher: margins of a tenth
    alpha, tau, teacher_tau = 0.5, 2.0, 0.05
    ce = -log_softmax(student[0])[0]
    divergence = kl([t / teacher_tau for t in teacher[0]], [s / tau for s in student[0]])
    expected = alpha * ce + (1 - alpha) * tau**2 * divergence
    loss = DistillKL(alpha=alpha, temperature=tau, teacher_temperature=teacher_tau)(
        torch.tensor(student), batch_of(binary_labels(1, 3), teacher)
    )
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    # Left out, the teacher's temperature is the student's.
    same = DistillKL(alpha=alpha, temperature=tau)(
        torch.tensor(student), batch_of(binary_labels(1, 3), teacher)
    )
    assert same.item() == pytest.approx(
        alpha * ce + (1 - alpha) * tau**2 * kl([t / tau for t in teacher[0]], [s / tau for s in student[0]]),
        abs=1e-5,
    )


def test_distill_kl_first_stage_teacher_reads_its_own_column_over_its_scored_members_only():
    student = [[2.0, 0.5, -1.0, 3.0], [0.0, 1.0, 0.5, 0.2]]
    cross_encoder = [[9.0, 7.0, 6.0, 5.0], [4.0, 3.0, 2.0, 1.0]]  # must not be read
    # Query 1's last member is a random top-up negative: no first-stage score; query 2 is fully scored.
    first_stage = [[0.9, 0.8, 0.85, NAN], [0.7, 0.75, 0.6, 0.65]]
    batch = batch_of(binary_labels(2, 4), cross_encoder, first_stage)
    loss = DistillKL(alpha=0.0, teacher="first_stage", teacher_temperature=0.1)(torch.tensor(student), batch)
    expected = (
        kl([9.0, 8.0, 8.5], [2.0, 0.5, -1.0])  # over the three scored members of query 1
        + kl([7.0, 7.5, 6.0, 6.5], [0.0, 1.0, 0.5, 0.2])
    ) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    scores = torch.tensor(student, requires_grad=True)
    DistillKL(alpha=0.0, teacher="first_stage")(scores, batch).backward()
    assert scores.grad[0, 3].item() == 0.0  # the unscored member gets no teacher gradient


def test_distill_kl_refuses_an_unknown_teacher_and_a_missing_teacher_column():
    with pytest.raises(InputError, match="loss.teacher must be one of scores, first_stage, got 'bm25'"):
        DistillKL(teacher="bm25")
    with pytest.raises(InputError, match="loss.teacher_temperature must be a number > 0, got 0"):
        DistillKL(teacher_temperature=0)
    with pytest.raises(ValueError, match="no 'first_stage_scores'.*'pos_first_stage'/'neg_first_stage'"):
        DistillKL(teacher="first_stage")(torch.zeros(1, 2), batch_of(binary_labels(1, 2), [[1.0, 0.0]]))


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


def test_margin_mse_scales_the_first_stage_teachers_margins():
    student = [[2.0, 0.5, -1.0]]
    first_stage = [[0.9, 0.85, NAN]]  # the last member is unscored: its pair is left out
    loss = MarginMSE(teacher="first_stage", teacher_scale=50.0)(
        torch.tensor(student), batch_of(binary_labels(1, 3), [[0.0, 0.0, 0.0]], first_stage)
    )
    assert loss.item() == pytest.approx(((2.0 - 0.5) - 50.0 * (0.9 - 0.85)) ** 2, abs=1e-4)
    with pytest.raises(InputError, match="loss.teacher_scale must be a number > 0, got -1"):
        MarginMSE(teacher_scale=-1)


# mix


def test_mix_is_the_weighted_sum_of_its_components_and_keeps_each_value():
    student = [[2.0, 0.5, -1.0], [0.0, 1.0, 0.5]]
    first_stage = [[0.9, 0.8, NAN], [0.7, 0.75, 0.6]]
    mix = LossMix(
        components={
            "label": GroupCrossEntropy(),
            "teacher": DistillKL(alpha=0.0, teacher="first_stage", teacher_temperature=0.1),
        },
        weights={"label": 1.0, "teacher": 0.5},
    )
    loss = mix(torch.tensor(student), batch_of(binary_labels(2, 3), first_stage_scores=first_stage))
    label = (-log_softmax(student[0])[0] - log_softmax(student[1])[0]) / 2
    teacher = (kl([9.0, 8.0], [2.0, 0.5]) + kl([7.0, 7.5, 6.0], [0.0, 1.0, 0.5])) / 2
    assert loss.item() == pytest.approx(label + 0.5 * teacher, abs=1e-5)
    assert mix.last_values["label"].item() == pytest.approx(label, abs=1e-5)
    assert mix.last_values["teacher"].item() == pytest.approx(teacher, abs=1e-5)
    assert mix.teachers == {"loss.components.teacher.teacher": "first_stage"}


def test_mix_builds_component_configs_and_their_errors_name_the_components_field():
    config = {"_target_": "reranker.training.losses.DistillKL", "alpha": 0.0, "teacher": "first_stage"}
    mix = LossMix(
        {"label": {"_target_": "reranker.training.losses.GroupCrossEntropy"}, "t": config},
        {"label": 1, "t": 0},
    )
    assert isinstance(mix.components["t"], DistillKL) and mix.weights == {"label": 1.0, "t": 0.0}
    with pytest.raises(InputError, match=r"^loss.components.t.alpha must be a number in \[0, 1\], got 2$"):
        LossMix({"t": {**config, "alpha": 2}}, {"t": 1.0})
    with pytest.raises(InputError, match=r"^loss.components.t: .*unexpected keyword argument 'alpha'"):
        LossMix({"t": {"_target_": "reranker.training.losses.MarginMSE", "alpha": 0.5}}, {"t": 1.0})


@pytest.mark.parametrize(
    "components, weights, message",
    [
        ({}, {}, "loss.components must name at least one loss, got {}"),
        (
            {"label": GroupCrossEntropy()},
            {"label": -0.5},
            "loss.weights.label must be a number >= 0, got -0.5",
        ),
        (
            {"label": GroupCrossEntropy(), "t": MarginMSE()},
            {"label": 0, "t": 0.0},
            "loss.weights must give at least one component a weight > 0",
        ),
        (
            {"label": GroupCrossEntropy()},
            {"label": 1.0, "teacher": 0.5},
            r"loss.weights.teacher names no component of loss.components \(label\)",
        ),
        ({"label": GroupCrossEntropy(), "t": MarginMSE()}, {"label": 1.0}, "loss.weights.t is missing"),
        (
            {"label": {"temperature": 1.0}},
            {"label": 1.0},
            "loss.components.label must be a loss config with a _target_",
        ),
    ],
)
def test_mix_refuses_bad_components_and_weights(components, weights, message):
    with pytest.raises(InputError, match=message):
        LossMix(components, weights)


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


def test_which_losses_read_a_teacher_column_and_by_which_field():
    assert GroupCrossEntropy().teachers == {} and BinaryCrossEntropy().teachers == {}
    assert DistillKL().teachers == {"loss.teacher": "scores"} == MarginMSE().teachers
    assert DistillKL(teacher="first_stage").teachers == {"loss.teacher": "first_stage"}
    assert MarginMSE(teacher="first_stage").teachers == {"loss.teacher": "first_stage"}
    assert not any(loss().teachers for loss in (LambdaLoss, RankNet, PListMLE, ListNet))
    assert ListNet(targets="teacher").teachers == {"loss.targets": "scores"}


# group_ce temperature


def test_group_ce_temperature_divides_the_scores():
    scores = [[2.0, 1.0, 0.0], [-1.0, 0.0, 1.0]]
    expected = sum(-log_softmax([v / 0.5 for v in row])[0] for row in scores) / 2
    loss = GroupCrossEntropy(temperature=0.5)(torch.tensor(scores), batch_of(binary_labels(2, 3)))
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_group_ce_default_temperature_is_bit_identical_to_plain_cross_entropy():
    scores = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    plain = F.cross_entropy(scores, torch.zeros(5, dtype=torch.long))
    assert torch.equal(GroupCrossEntropy(temperature=1.0)(scores, batch_of(binary_labels(5, 4))), plain)


@pytest.mark.parametrize(
    "loss_class, kwargs, message",
    [
        (GroupCrossEntropy, {"temperature": 0.0}, "loss.temperature must be a number > 0, got 0.0"),
        (GroupCrossEntropy, {"temperature": float("inf")}, "loss.temperature must be a number > 0, got inf"),
        (ListNet, {"temperature": -1}, "loss.temperature must be a number > 0, got -1"),
        (ListNet, {"targets": "scores"}, "loss.targets must be one of labels, teacher, got 'scores'"),
        (RankNet, {"sigma": 0}, "loss.sigma must be a number > 0, got 0"),
        (LambdaLoss, {"sigma": -2.0}, "loss.sigma must be a number > 0, got -2.0"),
        (LambdaLoss, {"mu": -1.0}, "loss.mu must be a number >= 0, got -1.0"),
        (LambdaLoss, {"mu": "10"}, "loss.mu must be a number >= 0, got '10'"),
    ],
)
def test_new_losses_refuse_bad_arguments(loss_class, kwargs, message):
    with pytest.raises(InputError, match=message):
        loss_class(**kwargs)


# listnet


def softmax(values: list[float]) -> list[float]:
    return [math.exp(v) for v in log_softmax(values)]


def listnet_by_hand(scores: list[float], targets: list[float]) -> float:
    return -sum(p * s for p, s in zip(softmax(targets), log_softmax(scores), strict=True))


def test_listnet_matches_hand_computed_value_on_binary_and_graded_labels():
    scores = [[2.0, 1.0, 0.0], [0.5, 0.5, 3.0]]  # query 2: tied scores on two passages
    labels = [[1.0, 0.0, 0.0], [2.0, 1.0, 0.0]]
    expected = (listnet_by_hand(scores[0], [2.0, 0.0, 0.0]) + listnet_by_hand(scores[1], [4.0, 2.0, 0.0])) / 2
    loss = ListNet(temperature=0.5)(torch.tensor(scores), batch_of(labels))
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_listnet_equal_scores_give_log_group_size():
    loss = ListNet()(torch.zeros(3, 5), batch_of(binary_labels(3, 5)))
    assert loss.item() == pytest.approx(math.log(5), abs=1e-6)


def test_listnet_teacher_targets_mask_unscored_passages_and_ignore_labels():
    scores = [[2.0, 0.5, -1.0, 3.0], [0.0, 1.0, 0.5, 0.2], [1.0, 2.0, 3.0, 4.0]]
    teacher = [[9.0, 7.0, 6.0, NAN], [4.0, NAN, NAN, NAN], [NAN, NAN, NAN, NAN]]
    batch = batch_of(binary_labels(3, 4), teacher)
    loss = ListNet(targets="teacher")(torch.tensor(scores), batch)
    # Only query 1 has two scored passages; its unscored fourth passage is out of both softmaxes.
    assert loss.item() == pytest.approx(listnet_by_hand([2.0, 0.5, -1.0], [9.0, 7.0, 6.0]), abs=1e-5)
    # With both present, targets=labels reads the labels and nothing of the teacher.
    by_labels = ListNet(targets="labels")(torch.tensor(scores), batch)
    expected = sum(listnet_by_hand(row, [1.0, 0.0, 0.0, 0.0]) for row in scores) / 3
    assert by_labels.item() == pytest.approx(expected, abs=1e-6)


def test_listnet_gradients_stay_finite_when_no_passage_is_scored():
    scores = torch.tensor([[1.0, 2.0]], requires_grad=True)
    loss = ListNet(targets="teacher")(scores, batch_of(binary_labels(1, 2), [[NAN, NAN]]))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(scores.grad, torch.zeros_like(scores))


# ranknet


def test_ranknet_matches_hand_computed_value_over_pairs_with_different_labels():
    scores = [[2.0, 1.0, 1.0], [0.0, 3.0, 1.0]]
    labels = [[2.0, 1.0, 1.0], [1.0, 0.0, 0.0]]  # query 1: a label tie (no pair between its last two)

    def term(difference: float, sigma: float) -> float:
        return math.log(1 + math.exp(-sigma * difference))

    for sigma in (1.0, 0.5):
        pairs = [2.0 - 1.0, 2.0 - 1.0, 0.0 - 3.0, 0.0 - 1.0]
        expected = sum(term(d, sigma) for d in pairs) / 4
        loss = RankNet(sigma=sigma)(torch.tensor(scores), batch_of(labels))
        assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_ranknet_tied_scores_give_log_two_and_equal_labels_give_zero():
    assert RankNet()(torch.zeros(2, 4), batch_of(binary_labels(2, 4))).item() == pytest.approx(math.log(2))
    scores = torch.tensor([[1.0, 2.0]], requires_grad=True)
    loss = RankNet()(scores, batch_of([[0.0, 0.0]]))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(scores.grad, torch.zeros_like(scores))


# lambdaloss


def lambdaloss_by_hand(scores: list[float], labels: list[float], mu: float, sigma: float) -> float:
    """NDCG-Loss2++ of one query, straight from the paper's formulas (ties ranked in column order)."""
    size = len(scores)
    order = sorted(range(size), key=lambda column: (-scores[column], column))
    rank = {column: position + 1 for position, column in enumerate(order)}

    def inverse_discount(r: int) -> float:
        return 1 / math.log2(1 + r)

    max_dcg = sum((2**g - 1) * inverse_discount(r + 1) for r, g in enumerate(sorted(labels, reverse=True)))
    gain = [(2**g - 1) / max_dcg for g in labels]
    total = 0.0
    for i in range(size):
        for j in range(size):
            if labels[i] <= labels[j]:
                continue
            gap = abs(rank[i] - rank[j])
            delta = abs(inverse_discount(gap) - inverse_discount(gap + 1))
            lambda_rank = abs(inverse_discount(rank[i]) - inverse_discount(rank[j]))
            weight = abs(gain[i] - gain[j]) * (mu * delta + lambda_rank)
            total -= weight * math.log2(1 / (1 + math.exp(-sigma * (scores[i] - scores[j]))))
    return total


def test_lambdaloss_matches_hand_computed_value_with_graded_labels_and_ties():
    scores = [[0.5, 2.0, 1.0, -1.0], [1.0, 1.0, 1.0, 0.0], [3.0, 0.0, 1.0, 2.0]]
    labels = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [2.0, 1.0, 0.0, 1.0]]  # query 2: tied scores
    for mu, sigma in ((10.0, 1.0), (0.0, 2.0), (3.0, 0.5)):
        expected = sum(lambdaloss_by_hand(s, y, mu, sigma) for s, y in zip(scores, labels, strict=True)) / 3
        loss = LambdaLoss(mu=mu, sigma=sigma)(torch.tensor(scores), batch_of(labels))
        assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_lambdaloss_ragged_last_batch_and_equal_labels():
    loss = LambdaLoss()(torch.tensor([[0.0, 1.0, 2.0]]), batch_of(binary_labels(1, 3)))
    assert loss.item() == pytest.approx(lambdaloss_by_hand([0.0, 1.0, 2.0], [1.0, 0.0, 0.0], 10.0, 1.0))
    assert LambdaLoss()(torch.tensor([[0.0, 1.0]]), batch_of([[1.0, 1.0]])).item() == 0.0


# plistmle


def plistmle_by_hand(scores: list[float], labels: list[float]) -> float:
    size = len(scores)
    order = sorted(range(size), key=lambda column: (-labels[column], column))
    weights = [2 ** (size - position) - 1 for position in range(1, size + 1)]
    total = 0.0
    for position, weight in enumerate(weights):
        remaining = [scores[column] for column in order[position:]]
        total += weight * (math.log(sum(math.exp(v) for v in remaining)) - scores[order[position]])
    return total / sum(weights)


def test_plistmle_matches_hand_computed_value_with_label_ties_in_column_order():
    scores = [[2.0, 1.0, 0.0, -1.0], [0.0, 3.0, 3.0, 1.0], [1.0, 0.5, 2.0, 0.0]]
    labels = [[1.0, 0.0, 0.0, 0.0], [0.0, 2.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0]]
    expected = sum(plistmle_by_hand(s, y) for s, y in zip(scores, labels, strict=True)) / 3
    assert PListMLE()(torch.tensor(scores), batch_of(labels)).item() == pytest.approx(expected, abs=1e-6)


def test_plistmle_ragged_last_batch_and_a_group_of_two_is_group_ce():
    scores = torch.tensor([[0.3, 1.2]])
    # G = 2: weights (1, 0), so the loss is the positive's cross-entropy against the one negative.
    expected = -log_softmax([0.3, 1.2])[0]
    assert PListMLE()(scores, batch_of(binary_labels(1, 2))).item() == pytest.approx(expected, abs=1e-6)


# every loss


@pytest.mark.parametrize(
    "loss",
    # ListNet's target with binary labels is soft (e / (e + G - 1) on the positive): a low negative is
    # pushed up towards its share; a temperature of 0.1 makes the target nearly one-hot.
    [GroupCrossEntropy(temperature=0.5), ListNet(temperature=0.1), RankNet(), LambdaLoss(), PListMLE()],
    ids=lambda loss: type(loss).__name__,
)
def test_each_ranking_loss_pushes_the_positive_up_and_the_negatives_down(loss):
    scores = torch.tensor([[0.0, 0.5, -0.5, 0.2], [-1.0, 0.0, 0.0, 0.0]], requires_grad=True)
    loss(scores, batch_of(binary_labels(2, 4))).backward()
    assert (scores.grad[:, 0] < 0).all() and (scores.grad[:, 1:] >= 0).all()
    assert (scores.grad[:, 1:] > 0).any()


@pytest.mark.parametrize(
    "loss",
    [GroupCrossEntropy(temperature=2.0), ListNet(), RankNet(), LambdaLoss(), PListMLE()],
    ids=lambda loss: type(loss).__name__,
)
def test_each_ranking_loss_is_lower_for_the_right_order(loss):
    batch = batch_of(binary_labels(1, 3))
    right = loss(torch.tensor([[3.0, 0.0, -1.0]]), batch)
    wrong = loss(torch.tensor([[-1.0, 0.0, 3.0]]), batch)
    assert right.item() < wrong.item()
