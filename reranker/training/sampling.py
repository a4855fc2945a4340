"""Groups for training and validation, and the sampler that orders and shards them.

A training group is one query with one positive sampled from ``pos`` and ``group_size - 1`` negatives:
first from the query's own ``neg``, then random passages from the corpus (every ``pos`` and ``neg`` text
of the training files). A passage equal to one of the query's positives is never a negative, and no
passage is drawn twice for a group while the pool allows. Each group carries its labels (1.0 for the
positive, 0.0 for the negatives) and, when the data gives teacher scores, the score of each chosen
passage in the same order (NaN for a passage without one, such as a random corpus negative), and the same
for the first stage's scores (``pos_first_stage``/``neg_first_stage``) when the data gives those.

Randomness comes from a per-item seed chosen by :class:`GroupSampler` from (seed, epoch, index), so a
group is the same whichever worker builds it, and different on every epoch.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import datasets
from torch.utils.data import Dataset, Sampler

from reranker.core.errors import InputError
from reranker.core.sampling import fill_distinct


def build_corpus(records: datasets.Dataset) -> list[str]:
    """Unique ``pos`` and ``neg`` passages of the records, in first-seen order."""
    seen: dict[str, None] = {}
    for pos, neg in zip(records["pos"], records["neg"], strict=True):
        seen.update(dict.fromkeys(pos))
        seen.update(dict.fromkeys(neg))
    return list(seen)


def check_corpus_fills_groups(
    records: datasets.Dataset, corpus: list[str], group_size: int, name: str
) -> None:
    """Every query must have at least ``group_size - 1`` corpus passages that are not its positives."""
    for number, pos in enumerate(records["pos"], start=1):
        available = len(corpus) - len(set(pos))
        if available < group_size - 1:
            raise InputError(
                f"{name}: record {number}: the corpus has {available} passages that are not this query's "
                f"positives, too few to fill a group of {group_size}; add negatives or lower data.group_size"
            )


def draw_negatives(
    rng: random.Random, own: Sequence[str], corpus: Sequence[str], positives: set[str], count: int
) -> list[str]:
    """``count`` distinct negatives: the query's own first (a random subset), then random corpus passages."""
    own_unique = [text for text in dict.fromkeys(own) if text not in positives]
    chosen = rng.sample(own_unique, min(count, len(own_unique)))
    fill_distinct(rng, corpus, chosen, count, lambda text: text in positives)
    if len(chosen) < count:
        # The pool is exhausted (checked at setup not to happen); repeat rather than shrink the group.
        chosen.extend(rng.choices(chosen or list(corpus), k=count - len(chosen)))
    return chosen


class TrainGroup(NamedTuple):
    """One training query and its sampled passages, positive first, with what the loss needs of each."""

    query: str
    passages: list[str]  # [G] the positive, then G - 1 negatives
    labels: list[float]  # [G] 1.0 for the positive, 0.0 for each negative
    teacher_scores: list[float] | None  # [G] NaN where a passage has none; None when the data has none
    first_stage_scores: list[float] | None = None  # [G] likewise, the first stage's scores


def _teacher_score_of(texts: Sequence[str], scores: Sequence[float] | None) -> dict[str, float]:
    """Text → teacher score; a text listed twice keeps its first score."""
    if scores is None:
        return {}
    found: dict[str, float] = {}
    for text, score in zip(texts, scores, strict=True):
        found.setdefault(text, score)
    return found


class TrainGroups(Dataset):
    """Training groups: item ``(index, seed)`` → a :class:`TrainGroup` of ``group_size`` passages.

    With ``with_teacher_scores`` every group carries ``teacher_scores`` (NaN where the record gives none);
    without, ``teacher_scores`` is None. ``with_first_stage_scores`` does the same for ``first_stage_scores``.
    """

    def __init__(
        self,
        records: datasets.Dataset,
        corpus: list[str],
        group_size: int,
        with_teacher_scores: bool = False,
        with_first_stage_scores: bool = False,
    ) -> None:
        self.records = records
        self.corpus = corpus
        self.group_size = group_size
        self.with_teacher_scores = with_teacher_scores
        self.with_first_stage_scores = with_first_stage_scores

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, item: tuple[int, int]) -> TrainGroup:
        index, seed = item
        record = self.records[index]
        rng = random.Random(seed)
        positive = rng.choice(record["pos"])
        negatives = draw_negatives(rng, record["neg"], self.corpus, set(record["pos"]), self.group_size - 1)
        passages = [positive, *negatives]
        labels = [1.0] + [0.0] * len(negatives)
        teacher_scores = (
            _group_scores(record, "scores", positive, negatives) if self.with_teacher_scores else None
        )
        first_stage_scores = (
            _group_scores(record, "first_stage", positive, negatives)
            if self.with_first_stage_scores
            else None
        )
        return TrainGroup(record["query"], passages, labels, teacher_scores, first_stage_scores)


def _group_scores(record: dict, suffix: str, positive: str, negatives: list[str]) -> list[float]:
    """The ``pos_<suffix>``/``neg_<suffix>`` score of the group's positive and each negative, NaN where none.
    Corpus negatives are never among the query's own (those are all taken first): they get NaN."""
    positive_score = _teacher_score_of(record["pos"], record[f"pos_{suffix}"]).get(positive, math.nan)
    negative_score = _teacher_score_of(record["neg"], record[f"neg_{suffix}"])
    return [positive_score] + [negative_score.get(text, math.nan) for text in negatives]


class ValidationGroups(Dataset):
    """Validation groups of triplets: item → ``(query, candidates, relevance, None)`` with candidates
    ``pos + neg`` (a ``neg`` equal to a ``pos`` dropped).

    A query with fewer than ``min_candidates`` candidates is topped up with random corpus passages,
    chosen once with a fixed seed so every validation pass sees the same candidates. Records that carry
    first-stage scores (``pos_first_stage``/``neg_first_stage``) are not topped up; either every record
    carries them or none does. The scores themselves are not used: a triplet's group was mined, not
    retrieved, so a first stage ranked by them would measure the mining (see
    :mod:`reranker.training.candidate_lists` for validation on retrieved lists). The last field of an
    item, None, stands where a retrieved list has its first-stage scores.
    """

    def __init__(
        self, records: datasets.Dataset, corpus: list[str], min_candidates: int = 0, seed: int = 0
    ) -> None:
        self.items: list[tuple[str, list[str], list[bool], None]] = []
        scored = 0
        for index, record in enumerate(records):
            has_scores = record.get("pos_first_stage") is not None
            scored += has_scores
            candidates = list(dict.fromkeys([*record["pos"], *record["neg"]]))
            missing = min_candidates - len(candidates)
            if missing > 0 and not has_scores:
                rng = random.Random(f"validation-{seed}-{index}")
                candidates += draw_negatives(rng, [], corpus, set(candidates), missing)
            positive_set = set(record["pos"])
            self.items.append(
                (record["query"], candidates, [text in positive_set for text in candidates], None)
            )
        if 0 < scored < len(self.items):
            raise InputError(
                f"validation data: {scored} of {len(self.items)} records carry first-stage scores "
                "(pos_first_stage/neg_first_stage); give them for every record or for none"
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[str, list[str], list[bool], None]:
        return self.items[index]


class GroupSampler(Sampler):
    """Orders item indices, shards them across ranks, and gives each item a seed for its group.

    Training (``shuffle=True``): a new permutation every epoch (call :meth:`set_epoch`, as Lightning
    does), cut to an equal share per rank with no item on two ranks; the few items past the last whole
    share are left out of that epoch. Validation (``shuffle=False``): rank ``r`` takes items
    ``r, r + W, ...`` with no padding, so metrics reduced over ranks count each query once.

    Yields ``(index, seed)`` for :class:`TrainGroups`, or plain indices when ``with_seed`` is False.
    Resuming mid-epoch, :meth:`resume` makes the next iteration leave out the items already trained on.

    Length grouping (training, with ``group_lengths``): the rank's items are cut into windows of
    ``window_batches * batch_size``; within a window they are sorted by the token length of their group
    (as :class:`~reranker.training.lengths.GroupLengths` counts it) and cut into batches of
    ``batch_size``, and the order of the window's full batches is shuffled. Each batch then holds queries
    of similar length, so little padding is computed. The set of items per epoch and rank, the number of
    queries per batch and so the weight of each query in the loss are unchanged; only which queries share
    a batch changes. The order is a function of (seed, epoch, rank), so a resumed run skips exactly the
    items it trained on.
    """

    def __init__(
        self,
        num_items: int,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        with_seed: bool = True,
        group_lengths: Callable[[list[tuple[int, int]]], list[int]] | None = None,
        batch_size: int = 1,
        window_batches: int = 16,
    ) -> None:
        self.num_items = num_items
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.with_seed = with_seed
        self.group_lengths = group_lengths
        self.batch_size = batch_size
        self.window_batches = window_batches
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume(self, epoch: int, items_done: int) -> None:
        """Continue ``epoch`` after its first ``items_done`` items (of this rank); applies to one iteration."""
        self.epoch = epoch
        self.skip = items_done

    def _indices(self) -> list[int]:
        indices = list(range(self.num_items))
        if not self.shuffle:
            return indices[self.rank :: self.world_size]
        random.Random(f"order-{self.seed}-{self.epoch}").shuffle(indices)
        share = self.num_items // self.world_size
        return indices[self.rank * share : (self.rank + 1) * share]

    def __iter__(self) -> Iterator[int | tuple[int, int]]:
        skip, self.skip = self.skip, 0
        indices = self._indices()
        if not self.with_seed:
            yield from indices[skip:]
            return
        items = [(index, self._group_seed(index)) for index in indices]
        if self.group_lengths is None or not self.shuffle or self.window_batches < 2:
            yield from items[skip:]
            return
        window = self.batch_size * self.window_batches
        for start in range(0, len(items), window):
            if start + window <= skip:
                continue  # trained on before the resume: its lengths are not needed
            ordered = self._by_length(items[start : start + window], start)
            yield from ordered[max(0, skip - start) :]

    def _group_seed(self, index: int) -> int:
        return random.Random(f"group-{self.seed}-{self.epoch}-{index}").getrandbits(63)

    def _by_length(self, items: list[tuple[int, int]], start: int) -> list[tuple[int, int]]:
        """The window's items sorted by group length, cut into batches, full batches in a seeded order."""
        lengths = self.group_lengths(items)
        order = sorted(range(len(items)), key=lambda position: lengths[position])
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        # A partial batch (only in the epoch's last window) stays last so later batches stay aligned.
        partial = [batches.pop()] if len(batches[-1]) < self.batch_size else []
        random.Random(f"length-{self.seed}-{self.epoch}-{self.rank}-{start}").shuffle(batches)
        return [items[position] for batch in batches + partial for position in batch]

    def __len__(self) -> int:
        if not self.shuffle:
            return len(range(self.rank, self.num_items, self.world_size))
        return self.num_items // self.world_size
