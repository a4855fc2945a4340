"""GroupSampler: the order and shards of an epoch, and resuming it after the items already trained."""

import pytest
from torch.utils.data import Dataset

from reranker.training.datamodule import ResumableDataLoader
from reranker.training.sampling import GroupSampler


def epoch(sampler: GroupSampler, number: int) -> list:
    sampler.set_epoch(number)
    return list(sampler)


@pytest.mark.parametrize("world_size", [1, 2])
@pytest.mark.parametrize("items_done", [0, 1, 4, 5])
def test_resume_continues_the_epoch_after_the_items_done_then_runs_whole_epochs(world_size, items_done):
    for rank in range(world_size):
        uninterrupted = GroupSampler(11, seed=3, rank=rank, world_size=world_size)
        first, second = epoch(uninterrupted, 1), epoch(uninterrupted, 2)
        assert first != second  # a new order (and new group seeds) every epoch

        resumed = GroupSampler(11, seed=3, rank=rank, world_size=world_size)
        resumed.resume(1, items_done)
        assert list(resumed) == first[items_done:]  # the same items with the same group seeds
        assert epoch(resumed, 2) == second  # the skip applies to one iteration only


def test_resume_at_the_end_of_an_epoch_yields_nothing_of_it():
    sampler = GroupSampler(6, seed=0)
    sampler.resume(0, 6)
    assert list(sampler) == [] and len(list(sampler)) == 6


def test_training_shards_are_disjoint_equal_and_leave_out_only_the_remainder():
    shards = [epoch(GroupSampler(11, seed=5, rank=rank, world_size=3), 4) for rank in range(3)]
    indices = [[index for index, _ in shard] for shard in shards]
    assert [len(shard) for shard in indices] == [3, 3, 3]
    assert len(set().union(*indices)) == 9 and set().union(*indices) <= set(range(11))
    seeds = {seed for shard in shards for _, seed in shard}
    assert len(seeds) == 9  # one seed per item, so no two ranks build the same group


class Items(Dataset):
    def __len__(self) -> int:
        return 11

    def __getitem__(self, item):
        return item


def test_loader_state_round_trip_resumes_after_the_batches_done():
    def loader():
        return ResumableDataLoader(Items(), batch_size=3, sampler=GroupSampler(11, seed=1), collate_fn=list)

    sampler_epoch = 2
    full = loader()
    full.sampler.set_epoch(sampler_epoch)
    batches = list(full)
    full.batches_done = lambda: 2
    state = full.state_dict()
    assert state == {"epoch": sampler_epoch, "batches_done": 2}

    resumed = loader()
    resumed.load_state_dict(state)
    assert list(resumed) == batches[2:]
