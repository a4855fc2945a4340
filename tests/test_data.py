import json
import random

import pytest
from conftest import make_records, write_jsonl

from reranker.core.errors import InputError
from reranker.core.triplets import read_triplets
from reranker.training.datamodule import TripletDataModule
from reranker.training.sampling import (
    GroupSampler,
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
        query, passages = groups[(index, index * 7 + 1)]
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
    for (query, candidates, relevance), repeated in zip(once, again, strict=True):
        assert len(candidates) == 6 and relevance == [True] + [False] * 5
        assert (query, candidates, relevance) == repeated
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
    assert json.dumps(val_batch["num_queries"])  # a plain int
