import math
import random

import pytest
import torch
from conftest import make_records, teacher_score, with_teacher_scores, write_jsonl

from reranker.core.errors import InputError
from reranker.core.triplets import has_teacher_scores, read_triplets
from reranker.training.collate import TrainCollator
from reranker.training.datamodule import TripletDataModule
from reranker.training.sampling import (
    GroupSampler,
    TrainGroup,
    TrainGroups,
    ValidationGroups,
    build_corpus,
    draw_negatives,
)


def test_reads_file_folder_and_list(tmp_path):
    records = make_records()
    write_jsonl(tmp_path / "a.jsonl", records[:5])
    write_jsonl(tmp_path / "b.jsonl", records[5:])
    assert len(read_triplets(tmp_path)) == len(records)
    assert len(read_triplets([tmp_path / "a.jsonl", tmp_path / "b.jsonl"])) == len(records)
    assert read_triplets(tmp_path / "a.jsonl")[0]["query"] == records[0]["query"]


def test_missing_neg_reads_as_empty(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"query": "q", "pos": ["p"]}\n{"query": "r", "pos": ["s"], "neg": null}\n')
    assert read_triplets(path)["neg"] == [[], []]


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "line 2: not valid JSON"),
        ('["a list"]', "line 2: expected a JSON object"),
        ('{"pos": ["p"]}', "line 2: field 'query' must be a non-empty string"),
        ('{"query": 3, "pos": ["p"]}', "line 2: field 'query' must be a non-empty string"),
        ('{"query": "q"}', "line 2: field 'pos' must be a non-empty list of strings"),
        ('{"query": "q", "pos": []}', "line 2: field 'pos' must be a non-empty list of strings"),
        ('{"query": "q", "pos": "p"}', "line 2: field 'pos' must be a non-empty list of strings"),
        ('{"query": "q", "pos": ["p", 1]}', "line 2: field 'pos' must be a non-empty list of strings"),
        ('{"query": "q", "pos": ["p"], "neg": "n"}', "line 2: field 'neg' must be a list of strings"),
        (
            '{"query": "q", "pos": ["p"], "neg": ["n"], "pos_scores": [1.0, 2.0]}',
            "line 2: field 'pos_scores' has 2 scores for 1 passages in 'pos'",
        ),
        (
            '{"query": "q", "pos": ["p"], "neg": ["n", "m"], "neg_scores": [1.0]}',
            "line 2: field 'neg_scores' has 1 scores for 2 passages in 'neg'",
        ),
        (
            '{"query": "q", "pos": ["p"], "neg_scores": [1.0]}',
            "line 2: field 'neg_scores' has 1 scores for 0",
        ),
        (
            '{"query": "q", "pos": ["p"], "pos_scores": 1.0}',
            "line 2: field 'pos_scores' must be a list of finite",
        ),
        (
            '{"query": "q", "pos": ["p"], "pos_scores": ["1"]}',
            "line 2: field 'pos_scores' must be a list of finite",
        ),
        (
            '{"query": "q", "pos": ["p"], "pos_scores": [true]}',
            "line 2: field 'pos_scores' must be a list of finite",
        ),
        (
            '{"query": "q", "pos": ["p"], "pos_scores": [NaN]}',
            "line 2: field 'pos_scores' must be a list of finite",
        ),
        (
            '{"query": "q", "pos": ["p"], "neg": ["n"], "neg_scores": [Infinity]}',
            "line 2: field 'neg_scores' must be a list of finite",
        ),
    ],
)
def test_bad_lines_name_file_line_and_field(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"query": "q", "pos": ["p"], "neg": ["n"]}\n' + line + "\n")
    with pytest.raises(InputError) as info:
        read_triplets(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(InputError, match="file is empty"):
        read_triplets(empty)
    with pytest.raises(InputError, match="no such file or folder"):
        read_triplets(tmp_path / "missing.jsonl")


def test_negatives_never_equal_a_positive():
    positives = {"p1", "p2"}
    corpus = ["p1", "p2", *(f"n{i}" for i in range(6))]
    for seed in range(300):
        rng = random.Random(seed)
        negatives = draw_negatives(rng, ["p1", "n0"], corpus, positives, count=5)
        assert len(negatives) == 5
        assert not positives & set(negatives)
        assert len(set(negatives)) == 5  # without replacement while the pool allows
        assert "n0" in negatives  # the query's own negatives come first


def test_groups_use_own_negatives_then_corpus(tmp_path):
    records = read_triplets(write_jsonl(tmp_path / "t.jsonl", make_records()))
    corpus = build_corpus(records)
    groups = TrainGroups(records, corpus, group_size=5)
    for index in range(len(records)):
        passages = groups[(index, index * 7 + 1)].passages
        assert passages[0] in records[index]["pos"]
        assert records[index]["neg"][0] in passages[1:]
        assert not set(passages[1:]) & set(records[index]["pos"])
        assert len(set(passages)) == 5


def test_sampler_is_seeded_differs_by_epoch_and_shards_without_overlap():
    sampler = GroupSampler(10, seed=3)
    first = list(sampler)
    assert first == list(GroupSampler(10, seed=3))
    sampler.set_epoch(1)
    assert list(sampler) != first
    shards = [list(GroupSampler(10, seed=3, rank=r, world_size=3)) for r in range(3)]
    indices = [index for shard in shards for index, _ in shard]
    assert len(indices) == len(set(indices)) == 9  # equal shares, nothing duplicated
    val = [list(GroupSampler(10, shuffle=False, rank=r, world_size=3, with_seed=False)) for r in range(3)]
    assert sorted(i for shard in val for i in shard) == list(range(10))  # every query exactly once


def test_validation_groups_top_up_with_fixed_random_candidates(tmp_path):
    records = read_triplets(write_jsonl(tmp_path / "t.jsonl", make_records()))
    corpus = build_corpus(records)
    once = ValidationGroups(records, corpus, min_candidates=6, seed=1)
    again = ValidationGroups(records, corpus, min_candidates=6, seed=1)
    for (query, candidates, relevance, first_stage), repeated in zip(once, again, strict=True):
        assert len(candidates) == 6 and relevance == [True] + [False] * 5 and first_stage is None
        assert (query, candidates, relevance, first_stage) == repeated
        assert candidates[0] not in candidates[1:]


def test_group_size_below_two_and_corpus_too_small(tmp_path, tiny_bert):
    path = write_jsonl(tmp_path / "t.jsonl", [{"query": "q", "pos": ["a"], "neg": ["b"]}] * 3)
    with pytest.raises(InputError, match="group_size must be an integer >= 2"):
        TripletDataModule(str(path), tiny_bert, group_size=1)
    module = TripletDataModule(str(path), tiny_bert, group_size=4, val_files=str(path))
    with pytest.raises(
        InputError, match="record 1: the corpus has 1 passages .* too few to fill a group of 4"
    ):
        module.setup("fit")


def test_datamodule_batches_have_configured_group_shape(triplet_files, tiny_xlmr):
    train, val = triplet_files
    module = TripletDataModule(train, tiny_xlmr, group_size=3, val_files=val, batch_size=4, num_workers=0)
    module.setup("fit")
    batches = list(module.train_dataloader())
    sizes = [batch["features"]["input_ids"].shape[0] for batch in batches]
    assert all(size % 3 == 0 for size in sizes) and sum(sizes) == 3 * len(module.train_groups)
    assert "token_type_ids" not in batches[0]["features"]
    val_batch = next(iter(module.val_dataloader()))
    assert val_batch["relevance"].shape == val_batch["row"].shape == val_batch["column"].shape
    assert type(val_batch["num_queries"]) is int and val_batch["num_queries"] == 4  # a plain int, all 4


def test_teacher_scores_are_kept_through_the_cache_and_may_be_absent(tmp_path):
    scored = with_teacher_scores(make_records()[:2])
    plain = make_records()[2:3]
    path = write_jsonl(tmp_path / "t.jsonl", [*scored, {**plain[0], "pos_scores": [7]}])
    records = read_triplets(path)
    assert records[0]["pos_scores"] == scored[0]["pos_scores"]
    assert records[1]["neg_scores"] == scored[1]["neg_scores"]
    assert records[2]["pos_scores"] == [7.0] and records[2]["neg_scores"] is None
    assert has_teacher_scores(records)
    assert not has_teacher_scores(read_triplets(write_jsonl(tmp_path / "p.jsonl", make_records())))


def _own_scores(record: dict) -> dict[str, float]:
    return {
        **dict(zip(record["neg"], record["neg_scores"] or [], strict=False)),
        **dict(zip(record["pos"], record["pos_scores"] or [], strict=False)),
    }


def test_sampled_groups_carry_the_teacher_score_of_each_passage_and_nan_for_corpus_fill(tmp_path):
    """Groups of 4 from records with one own negative: two corpus negatives fill each group."""
    raw = with_teacher_scores(make_records())
    raw[1] = {key: value for key, value in raw[1].items() if key != "neg_scores"}  # its negative: unscored
    records = read_triplets(write_jsonl(tmp_path / "t.jsonl", raw))
    groups = TrainGroups(records, build_corpus(records), group_size=4, with_teacher_scores=True)
    corpus_filled = 0
    for index in range(len(records)):
        group = groups[(index, 1000 + index)]
        own = _own_scores(records[index])
        assert group.passages[0] in records[index]["pos"] and group.labels == [1.0, 0.0, 0.0, 0.0]
        for passage, score in zip(group.passages, group.teacher_scores, strict=True):
            if passage in own:
                assert score == own[passage] == teacher_score(passage)
            else:
                assert math.isnan(score)
                corpus_filled += 1
    assert corpus_filled == 2 * len(records) + 1  # two per group, and record 1's own unscored negative


def test_groups_without_teacher_scores_carry_none(tmp_path):
    records = read_triplets(write_jsonl(tmp_path / "t.jsonl", make_records()))
    group = TrainGroups(records, build_corpus(records), group_size=3)[(0, 5)]
    assert group.teacher_scores is None and group.labels == [1.0, 0.0, 0.0]


class RecordingEncoder:
    """Stands in for PairEncoder: returns the pairs it was given."""

    def __call__(self, queries: list[str], passages: list[str]) -> dict:
        return {"queries": queries, "passages": passages}


def test_collator_aligns_labels_and_teacher_scores_with_the_pairs():
    groups = [
        TrainGroup("q1", ["a", "b", "c"], [1.0, 0.0, 0.0], [3.0, math.nan, 1.0]),
        TrainGroup("q2", ["d", "e", "f"], [1.0, 0.0, 0.0], [5.0, 4.0, math.nan]),
    ]
    batch = TrainCollator(RecordingEncoder())(groups)
    assert batch["features"]["passages"] == ["a", "b", "c", "d", "e", "f"]
    assert batch["features"]["queries"] == ["q1"] * 3 + ["q2"] * 3
    assert batch["labels"].dtype == torch.float32
    assert torch.equal(batch["labels"], torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
    expected = torch.tensor([[3.0, math.nan, 1.0], [5.0, 4.0, math.nan]])
    assert torch.equal(batch["teacher_scores"].isnan(), expected.isnan())
    assert torch.equal(batch["teacher_scores"].nan_to_num(), expected.nan_to_num())
    plain = [TrainGroup("q", ["a", "b"], [1.0, 0.0], None)]
    assert "teacher_scores" not in TrainCollator(RecordingEncoder())(plain)


@pytest.mark.parametrize("scored", [True, False])
def test_datamodule_batches_carry_labels_and_teacher_scores_when_the_data_has_them(
    scored, tmp_path, tiny_bert
):
    records = make_records()[:7]
    path = write_jsonl(tmp_path / "t.jsonl", with_teacher_scores(records) if scored else records)
    module = TripletDataModule(
        str(path), tiny_bert, group_size=3, val_files=str(path), batch_size=2, num_workers=0
    )
    module.setup("fit")
    assert module.has_teacher_scores is scored
    module.encoder = RecordingEncoder()
    batches = list(module.train_dataloader())
    assert [batch["labels"].shape for batch in batches] == [(2, 3)] * 3 + [(1, 3)]  # a ragged last batch
    for batch in batches:
        assert torch.equal(batch["labels"][:, 0], torch.ones(len(batch["labels"])))
        assert batch["labels"][:, 1:].sum() == 0
        if not scored:
            assert "teacher_scores" not in batch
            continue
        passages = batch["features"]["passages"]
        scores = batch["teacher_scores"].reshape(-1).tolist()
        own = {text: teacher_score(text) for r in records for text in r["pos"] + r["neg"]}
        assert len(scores) == len(passages)
        # Each record has one own negative: the third passage of every group is a corpus negative (NaN).
        for position, (passage, score) in enumerate(zip(passages, scores, strict=True)):
            if position % 3 == 2:
                assert math.isnan(score)
            else:
                assert score == own[passage]


def test_datamodule_batches_carry_first_stage_scores_as_a_teacher_column_of_their_own(tmp_path, tiny_bert):
    """Records with first-stage scores only: batches get ``first_stage_scores`` (NaN for the corpus negative
    that fills each group of 3) and no ``teacher_scores``."""
    records = [
        {
            **r,
            "pos_first_stage": [teacher_score(t) for t in r["pos"]],
            "neg_first_stage": [teacher_score(t) for t in r["neg"]],
        }
        for r in make_records()[:7]
    ]
    path = write_jsonl(tmp_path / "t.jsonl", records)
    module = TripletDataModule(
        str(path), tiny_bert, group_size=3, val_files=str(path), batch_size=2, num_workers=0
    )
    module.setup("fit")
    assert module.has_first_stage_scores and not module.has_teacher_scores
    module.encoder = RecordingEncoder()
    own = {text: teacher_score(text) for r in records for text in r["pos"] + r["neg"]}
    for batch in module.train_dataloader():
        assert "teacher_scores" not in batch
        scores = batch["first_stage_scores"].reshape(-1).tolist()
        for position, (passage, score) in enumerate(zip(batch["features"]["passages"], scores, strict=True)):
            assert math.isnan(score) if position % 3 == 2 else score == own[passage]
