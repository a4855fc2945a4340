"""Fusion with the first stage: hand-computed rankings, the weight search, cross-validation that never
scores a query with a weight tuned on it, the evaluation formats' first-stage scores, and the mix an
export records being the one Reranker applies."""

from __future__ import annotations

import json
import math

import pytest
import torch

from reranker import Reranker
from reranker.core.errors import InputError
from reranker.evaluation import tuning
from reranker.evaluation.evalsets import load_eval_set
from reranker.evaluation.evaluate import FIRST_STAGE, main
from reranker.evaluation.metrics import MRR, first_relevant_rank
from reranker.model.fusion import FUSION_FILE, Fusion, fuse, fuse_one, ranks, read_fusion
from reranker.serving.export import export_checkpoint

RERANKER = torch.tensor([[2.0, 0.0, -2.0]])
FIRST = torch.tensor([[0.0, 3.0, 0.0]])


def order(scores: torch.Tensor) -> list[int]:
    return sorted(range(scores.shape[-1]), key=lambda i: -float(scores.view(-1)[i]))


def test_zscore_mix_by_hand():
    # z(reranker) = [1.2247, 0, -1.2247] (std sqrt(8/3)); z(first) = [-0.7071, 1.4142, -0.7071] (std sqrt 2).
    fused = fuse(RERANKER, FIRST, Fusion("zscore", 0.5))
    assert fused[0].tolist() == pytest.approx([0.258819, 0.707107, -0.965926], abs=1e-6)
    assert order(fused) == [1, 0, 2]
    assert order(fuse(RERANKER, FIRST, Fusion("zscore", 0.9))) == [0, 1, 2]


def test_minmax_mix_by_hand():
    # minmax(reranker) = [1, 0.5, 0]; minmax(first) = [0, 1, 0].
    assert fuse(RERANKER, FIRST, Fusion("minmax", 0.25))[0].tolist() == pytest.approx([0.25, 0.875, 0.0])
    assert fuse(RERANKER, FIRST, Fusion("minmax", 0.9))[0].tolist() == pytest.approx([0.9, 0.55, 0.0])


def test_rrf_by_hand_with_tied_first_stage_scores_sharing_the_better_rank():
    # Reranker ranks [1, 2, 3]; the first stage's tied zeros share rank 2: [2, 1, 2].
    assert ranks(FIRST, torch.ones_like(FIRST, dtype=torch.bool)).tolist() == [[2, 1, 2]]
    fused = fuse(RERANKER, FIRST, Fusion("rrf", None, rrf_k=1))
    assert fused[0].tolist() == pytest.approx([1 / 2 + 1 / 3, 1 / 3 + 1 / 2, 1 / 4 + 1 / 3])


def test_constant_first_stage_scores_leave_the_reranker_order():
    constant = torch.full_like(RERANKER, 5.0)
    for method in ("zscore", "minmax"):
        fused = fuse(RERANKER, constant, Fusion(method, 0.3))
        assert order(fused) == [0, 1, 2]
    assert fuse(RERANKER, constant, Fusion("zscore", 0.3))[0].tolist() == pytest.approx(
        [0.3 * 1.224745, 0.0, -0.3 * 1.224745], abs=1e-6
    )
    # All-equal reranker and first stage: every candidate ties (no division by a zero spread).
    assert fuse(constant, constant, Fusion("zscore", 0.5))[0].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("method", ["zscore", "minmax"])
def test_a_zero_ranks_as_the_first_stage_and_a_one_as_the_reranker_exactly(method):
    generator = torch.Generator().manual_seed(0)
    reranker = torch.randn(50, 8, generator=generator, dtype=torch.float64)
    # Integer first-stage scores: many ties, which a mix must not break differently.
    first_stage = torch.randint(0, 3, (50, 8), generator=generator).double()
    relevance = torch.zeros(50, 8, dtype=torch.bool)
    relevance[torch.arange(50), torch.randint(0, 8, (50,), generator=generator)] = True
    mask = torch.ones_like(relevance)
    for weight, alone in ((0.0, first_stage), (1.0, reranker)):
        fused = fuse(reranker, first_stage, Fusion(method, weight), mask)
        assert torch.equal(ranks(fused, mask), ranks(alone, mask))
        assert torch.equal(first_relevant_rank(fused, relevance), first_relevant_rank(alone, relevance))


def test_padding_changes_nothing():
    padded_r = torch.tensor([[2.0, 0.0, -2.0, 99.0]])
    padded_f = torch.tensor([[0.0, 3.0, 0.0, -99.0]])
    mask = torch.tensor([[True, True, True, False]])
    fused = fuse(padded_r, padded_f, Fusion("zscore", 0.5), mask)
    assert fused[0, :3].tolist() == pytest.approx(fuse(RERANKER, FIRST, Fusion("zscore", 0.5))[0].tolist())
    assert fused[0, 3] == -math.inf


def test_fusion_checks_its_values():
    with pytest.raises(InputError, match="'weight' \\(a\\) must be a number in \\[0, 1\\], got 1.5"):
        Fusion("zscore", 1.5)
    with pytest.raises(InputError, match="'method' must be one of zscore, minmax, rrf"):
        Fusion("mean", 0.5)


def test_ties_in_the_weight_search_take_the_middle_one():
    assert tuning.choose_weight((0.0, 0.5, 1.0), [0.1, 0.1, 0.1]) == 1
    assert tuning.choose_weight((0.0, 0.25, 0.5, 0.75), [0.2, 0.9, 0.9, 0.1]) == 1
    assert tuning.choose_weight((0.0, 0.5, 1.0), [0.1, 0.2, 0.3]) == 2


def opposite_queries() -> tuple[torch.Tensor, ...]:
    """Query 0: the first stage is right and the reranker wrong (needs a < 0.5); query 1: the reverse."""
    first_stage = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    reranker = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    relevance = torch.tensor([[True, False], [True, False]])
    return reranker, first_stage, relevance, torch.ones_like(relevance)


def test_cross_validation_scores_each_query_with_the_other_folds_weight():
    reranker, first_stage, relevance, mask = opposite_queries()
    # Tuned on query 0 alone, a is 0.20 (middle of 0.00..0.45); on query 1 alone, 0.75 (middle of 0.55..1).
    assert tuning.tune_weight(reranker[:1], first_stage[:1], relevance[:1], mask[:1]) == (0.2, 1.0)
    assert tuning.tune_weight(reranker[1:], first_stage[1:], relevance[1:], mask[1:]) == (0.75, 1.0)
    fused, report = tuning.cross_validate(reranker, first_stage, relevance, mask, folds=2)
    weights = {fold["rows"][0]: fold["weight"] for fold in report}
    assert weights == {0: 0.75, 1: 0.2}  # each query scored with the weight of the other
    # So both are ranked wrongly: a weight tuned on a query itself would have ranked it first.
    per_query = MRR(10).per_query(first_relevant_rank(fused, relevance, mask))
    assert per_query.tolist() == [0.5, 0.5]


def test_cross_validation_never_tunes_on_the_queries_it_scores(monkeypatch):
    generator = torch.Generator().manual_seed(1)
    reranker = torch.randn(23, 5, generator=generator)
    first_stage = torch.randn(23, 5, generator=generator)
    first_stage[:, 0] = torch.arange(23) + 100.0  # column 0 names the query, to see where it went
    relevance = torch.zeros(23, 5, dtype=torch.bool)
    relevance[:, 1] = True
    tuned_on = []
    original = tuning.tune_weight

    def spy(reranker, first_stage, *args):
        tuned_on.append({int(q) - 100 for q in first_stage[:, 0].tolist()})
        return original(reranker, first_stage, *args)

    monkeypatch.setattr(tuning, "tune_weight", spy)
    _, report = tuning.cross_validate(reranker, first_stage, relevance, torch.ones_like(relevance), folds=4)
    assert len(tuned_on) == 4
    held = [set(fold["rows"]) for fold in report]
    assert set().union(*held) == set(range(23)) and sum(map(len, held)) == 23
    for scored, tuned in zip(held, tuned_on, strict=True):
        assert not scored & tuned and scored | tuned == set(range(23))


CORPUS = [{"id": f"p{i}", "text": f"passage {i}"} for i in range(4)]


def write_jsonl(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_formats_read_first_stage_scores_and_fall_back_to_the_order(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", CORPUS)
    queries = [
        {
            "qid": "a",
            "query": "q",
            "candidate_ids": ["p0", "p1"],
            "pos_ids": ["p1"],
            "candidate_scores": [7, 2.5],
        },
        {"qid": "b", "query": "r", "candidate_ids": ["p2", "p3", "p0"], "pos_ids": ["p2"]},
    ]
    eval_set = load_eval_set(write_jsonl(tmp_path / "q.jsonl", queries), corpus)
    assert eval_set.first_stage == [[7.0, 2.5], None]
    assert eval_set.first_stage_fusion_scores() == [7.0, 2.5, 0.0, -1.0, -2.0]
    assert eval_set.queries_with_first_stage_scores() == 1

    rows = 'question,contexts,gold_index,scores\nq,"[""x"", ""y""]",1,"[0.5, 0.25]"\nr,"[""z""]",0,\n'
    (tmp_path / "r.csv").write_text(rows)
    assert load_eval_set(tmp_path / "r.csv").first_stage == [[0.5, 0.25], None]

    triplets = [
        {
            "query": "q",
            "pos": ["x"],
            "neg": ["y", "x", "z"],
            "pos_first_stage": [3],
            "neg_first_stage": [2, 9, 1],
        },
        {"query": "r", "pos": ["u"], "neg": ["v"]},
    ]
    triplet_set = load_eval_set(write_jsonl(tmp_path / "t.jsonl", triplets))
    # The neg equal to the pos is dropped with its score.
    assert triplet_set.candidates[0] == ["x", "y", "z"] and triplet_set.first_stage == [[3.0, 2.0, 1.0], None]


@pytest.mark.parametrize(
    "record, message",
    [
        ({"candidate_scores": [1.0]}, "line 2: field 'candidate_scores' has 1 scores for 2 candidates"),
        ({"candidate_scores": [1.0, float("nan")]}, "line 2: field 'candidate_scores': score 1 is nan"),
        ({"candidate_scores": [1.0, float("inf")]}, "line 2: field 'candidate_scores': score 1 is inf"),
        ({"candidate_scores": ["1", 2]}, "line 2: field 'candidate_scores' must be a list of numbers"),
    ],
)
def test_bad_first_stage_scores_name_file_and_line(tmp_path, record, message):
    corpus = write_jsonl(tmp_path / "c.jsonl", CORPUS)
    good = {"qid": "a", "query": "q", "candidate_ids": ["p0", "p1"], "pos_ids": ["p1"]}
    path = write_jsonl(tmp_path / "q.jsonl", [good, {**good, "qid": "b", **record}])
    with pytest.raises(InputError, match=f"^{path}, {message}"):
        load_eval_set(path, corpus)


def test_bad_triplet_and_csv_scores_name_file_and_line(tmp_path):
    path = write_jsonl(
        tmp_path / "t.jsonl",
        [{"query": "q", "pos": ["x"], "neg": ["y"], "pos_first_stage": [1], "neg_first_stage": []}],
    )
    with pytest.raises(InputError, match=f"^{path}, line 1: field 'neg_first_stage' has 0 scores for 1"):
        load_eval_set(path)
    (tmp_path / "r.csv").write_text('question,contexts,gold_index,scores\nq,"[""x""]",0,"[NaN]"\n')
    with pytest.raises(InputError, match="r.csv, row 2: field 'scores': score 0 is nan"):
        load_eval_set(tmp_path / "r.csv")


@pytest.fixture
def scored_set(tmp_path) -> list[str]:
    corpus = [{"id": f"p{i}", "text": f"passage number {i}"} for i in range(6)]
    queries = [
        {
            "qid": str(q),
            "query": f"question {q}",
            "candidate_ids": [f"p{(q + j) % 6}" for j in range(4)],
            "pos_ids": [f"p{(q + q % 3) % 6}"],
            "candidate_scores": [4.0 - j + 0.1 * ((q * 7 + j) % 3) for j in range(4)],
        }
        for q in range(8)
    ]
    return [write_jsonl(tmp_path / "q.jsonl", queries), "--corpus", write_jsonl(tmp_path / "c.jsonl", corpus)]


@pytest.mark.slow
def test_evaluate_adds_a_fused_row_with_its_weights_folds_and_tests(tiny_bert, scored_set, tmp_path):
    common = [*scored_set, "--model", f"tiny={tiny_bert}", "--max-length", "32", "--samples", "100"]
    results = main([*common, "--fusion-folds", "3", "--out", str(tmp_path / "out")])
    assert list(results["table"]) == [FIRST_STAGE, "tiny", "tiny fused"]
    info = results["fusion"]["tiny"]
    assert info["method"] == "zscore" and info["chosen_by"] == "3-fold cross-validation"
    assert sorted(q for fold in info["folds"] for q in fold["qids"]) == sorted(map(str, range(8)))
    pairs = {(t["a"], t["b"]) for t in results["tests"]}
    assert {(FIRST_STAGE, "tiny fused"), ("tiny", "tiny fused")} <= pairs
    report = (tmp_path / "out" / "results.md").read_text()
    assert "fusion with the first stage" in report and "tiny fused: zscore, 3-fold cross-validation" in report
    assert "fusion" in json.loads((tmp_path / "out" / "results.json").read_text())

    # A fixed a of 1 ranks as the model alone; a of 0 as the first-stage scores.
    alone = main([*common, "--fusion-weight", "1"])
    assert alone["per_query"]["tiny fused"]["rank"] == alone["per_query"]["tiny"]["rank"]
    # Tuned on a validation file: the same set here, so a is the best weight of the grid on it.
    tuned = main([*common, "--fusion-val", scored_set[0], "--fusion-val-corpus", scored_set[2]])
    assert tuned["fusion"]["tiny"]["chosen_by"] == "validation"
    with pytest.raises(SystemExit, match="^error: --fusion-weight/--rrf-k: field 'weight' \\(a\\) must be"):
        main([*common, "--fusion-weight", "1.5"])
    assert list(main([*common, "--fusion", "none"])["table"]) == [FIRST_STAGE, "tiny"]


@pytest.mark.slow
def test_the_exported_weight_is_the_one_reranker_applies(bert_run, tmp_path):
    checkpoint_file = next((bert_run / "checkpoints").glob("step*.ckpt"))
    checkpoint = torch.load(checkpoint_file, map_location="cpu", weights_only=False)
    checkpoint["fusion"] = {"method": "minmax", "weight": 0.35, "chosen_by": "test", "val/fused_mrr@10": 0.9}
    torch.save(checkpoint, tmp_path / "fused.ckpt")
    folder = export_checkpoint(tmp_path / "fused.ckpt", tmp_path / "export")
    assert read_fusion(folder) == Fusion("minmax", 0.35)
    assert json.loads((folder / FUSION_FILE).read_text())["val/fused_mrr@10"] == 0.9
    assert "a = 0.35" in (folder / "README.md").read_text()

    reranker = Reranker(folder)
    assert reranker.fusion == Fusion("minmax", 0.35)
    query = "서울에 대한 질문"
    passages = [
        "서울은 대한민국의 수도이다",
        "김치는 배추로 만든다",
        "태양은 항성이다",
        "부산은 항구 도시이다",
    ]
    first_stage = [0.0, 3.0, 1.0, 2.0]
    logits = reranker.score([(query, p) for p in passages])
    expected = fuse_one(logits, first_stage, Fusion("minmax", 0.35))
    ranked = reranker.rerank(query, passages, first_stage_scores=first_stage)
    assert [r.score for r in sorted(ranked, key=lambda r: r.index)] == pytest.approx(expected)
    assert [r.index for r in ranked] == order(torch.tensor(expected))
    assert [r.score for r in reranker.rerank(query, passages)] == sorted(logits, reverse=True)
    assert Reranker(tmp_path / "fused.ckpt").fusion == Fusion("minmax", 0.35)
    with pytest.raises(InputError, match="field 'first_stage_scores' has 3 scores for 4 candidates"):
        reranker.rerank(query, passages, first_stage_scores=[1.0, 2.0, 3.0])
    with pytest.raises(InputError, match="score 2 is nan"):
        reranker.rerank(query, passages, first_stage_scores=[1.0, 2.0, float("nan"), 0.0])


@pytest.mark.slow
def test_a_recorded_weight_outside_the_unit_interval_names_the_file(bert_run, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / FUSION_FILE).write_text(json.dumps({"method": "zscore", "weight": 1.2}))
    with pytest.raises(InputError, match=f"^{folder / FUSION_FILE}: field 'weight' \\(a\\) must be"):
        read_fusion(folder)


@pytest.mark.slow
def test_without_a_recorded_fusion_first_stage_scores_are_mixed_by_reciprocal_rank(bert_run):
    reranker = Reranker(bert_run / "export")
    assert reranker.fusion is None
    query = "서울에 대한 질문"
    passages = [
        "서울은 대한민국의 수도이다",
        "김치는 배추로 만든다",
        "태양은 항성이다",
        "부산은 항구 도시이다",
    ]
    first_stage = [0.5, 3.0, 1.0, 2.0]
    logits = reranker.score([(query, p) for p in passages])
    # 1 / (60 + rank by the reranker) + 1 / (60 + rank by the first stage), ranks 1-based.
    by_reranker = sorted(range(4), key=lambda i: -logits[i])
    by_first_stage = sorted(range(4), key=lambda i: -first_stage[i])
    expected = [1 / (61 + by_reranker.index(i)) + 1 / (61 + by_first_stage.index(i)) for i in range(4)]
    ranked = reranker.rerank(query, passages, first_stage_scores=first_stage)
    assert [r.score for r in sorted(ranked, key=lambda r: r.index)] == pytest.approx(expected)
