"""LightningDataModule for triplet files: group sampling for training; validation on the candidate groups of
triplets, or on retrieved candidate lists (the candidates file ``reranker evaluate`` reads)."""

from __future__ import annotations

import math
from collections.abc import Callable

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.data import DataLoader

from reranker.core.errors import InputError
from reranker.core.triplets import expand_paths, has_first_stage_scores, has_teacher_scores, read_triplets
from reranker.model.kinds import ModelKind
from reranker.model.loading import load_tokenizer
from reranker.training.candidate_lists import CandidateLists, is_candidates_file, read_candidate_lists
from reranker.training.collate import TrainCollator, ValidationCollator
from reranker.training.lengths import GroupLengths
from reranker.training.sampling import (
    GroupSampler,
    TrainGroups,
    ValidationGroups,
    build_corpus,
    check_corpus_fills_groups,
)
from reranker.training.truncation import TruncationStats, list_truncation_stats, truncation_stats

TRIPLET_VALIDATION_NOTE = (
    "validation on triplets: first-stage metrics are not logged (mined groups are not retrieved lists); "
    "give data.val_files a candidates file with data.val_corpus for them"
)


@rank_zero_only
def _print(line: str) -> None:
    print(line, flush=True)


class ResumableDataLoader(DataLoader):
    """A training DataLoader whose place in the epoch is saved in checkpoints and restored from them.

    Lightning saves ``state_dict()`` with every checkpoint and, when it resumes mid-epoch, calls
    ``load_state_dict()`` before the first batch, so the resumed run sees the batches it had not yet
    trained on, in the same order, and no batch twice. ``batches_done`` is set by the datamodule.
    """

    batches_done: Callable[[], int] = staticmethod(lambda: 0)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "batches_done": int(self.batches_done())}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.resume(state["epoch"], state["batches_done"] * self.batch_size)


class TripletDataModule(L.LightningDataModule):
    """Training groups of ``group_size`` pairs per query and validation groups of all candidates per query.

    Training batches are ``{"features", "labels" [B, G], "teacher_scores" [B, G], "first_stage_scores" [B, G]}``,
    the teacher columns only when the training records carry them (see
    :class:`reranker.training.collate.TrainCollator`).

    Args:
        train_files: a JSONL file, a list of files, or a folder of ``*.jsonl`` files.
        tokenizer_name_or_path: a Hugging Face folder or hub name (usually the model's).
        group_size: pairs per training query (one positive, ``group_size - 1`` negatives).
        val_files: validation triplets (candidates = ``pos + neg``), or a candidates file (queries
            ``{qid, query, candidate_ids, candidate_scores, pos_ids}``, told apart by ``candidate_ids``)
            over ``val_corpus``; None holds out ``val_fraction`` of the training queries instead.
        val_corpus: the corpus ``{id, text}`` of a candidates file in ``val_files``. Its lists are
            validated as retrieved (no passage added, read as ``reranker evaluate`` reads them), and the
            first stage's metrics and the fused ones are logged as well (:class:`reranker.training.
            validation.RankingValidation`); on triplets (mined groups) they are not.
        val_fraction: share of training queries held out when ``val_files`` is None.
        min_val_candidates: validation triplets with fewer candidates are topped up with random
            corpus passages (fixed once), so that ranking them is not trivial; a candidates file's lists
            are never topped up.
        batch_size: training queries per step (each brings ``group_size`` pairs).
        val_batch_size: validation queries per step.
        max_length: tokens per (query, passage) pair; longer pairs are truncated.
        query_max_length: with a value, a query is cut to this many tokens first and only the passage
            is cut to fit ``max_length``, so a long passage never truncates the query. None: the longer
            text of the pair is cut first. Pairs without a prompt only: a decoder's prompt already cuts
            the passage first and keeps the query (see :class:`reranker.model.prompts.TemplateEncoder`).
        length_grouping_batches: optimiser steps per window within which queries are grouped by the
            token length of their groups, so little padding is computed (see
            :class:`reranker.training.sampling.GroupSampler`); 0 or 1: no grouping. With gradient
            accumulation the queries of a whole step are grouped, so accumulating k batches of n queries
            trains on the queries one batch of k × n would.
        num_workers: DataLoader worker processes that tokenise batches.
        seed: seed of the held-out split and of group sampling.
        cache_dir: where ``datasets`` keeps its Arrow cache (its default when None).
        kind: the model's kind (``model.kind``): a decoder reranker's pairs are written into its prompt.

    At setup it prints one line per training and validation file: the share of its pairs cut at
    ``max_length``, the share of query tokens lost, and the pairs' length percentiles, measured on a
    sample of at most 2,000 pairs per file (:mod:`reranker.training.truncation`); ``truncation`` holds them.
    """

    def __init__(
        self,
        train_files: str | list[str],
        tokenizer_name_or_path: str,
        group_size: int = 8,
        val_files: str | list[str] | None = None,
        val_corpus: str | None = None,
        val_fraction: float = 0.1,
        min_val_candidates: int = 10,
        batch_size: int = 8,
        val_batch_size: int = 8,
        max_length: int = 512,
        query_max_length: int | None = None,
        length_grouping_batches: int = 16,
        num_workers: int = 2,
        seed: int = 42,
        cache_dir: str | None = None,
        kind: dict | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(group_size, int) or group_size < 2:
            raise InputError(f"data.group_size must be an integer >= 2, got {group_size!r}")
        if val_files is None and not 0.0 < val_fraction < 1.0:
            raise InputError(
                f"data.val_fraction must be between 0 and 1 when no val_files are given, got {val_fraction}"
            )
        if query_max_length is not None and not (
            isinstance(query_max_length, int) and 1 <= query_max_length <= max_length - 8
        ):
            raise InputError(
                f"data.query_max_length must be null or an integer from 1 to max_length - 8 "
                f"({max_length - 8}) so a passage keeps some tokens, got {query_max_length!r}"
            )
        if not isinstance(length_grouping_batches, int) or length_grouping_batches < 0:
            raise InputError(
                f"data.length_grouping_batches must be an integer >= 0, got {length_grouping_batches!r}"
            )
        self.train_files = train_files
        if val_corpus is not None and val_files is None:
            raise InputError(
                f"data.val_corpus {val_corpus} is set without data.val_files (the candidates file)"
            )
        self.val_files = val_files
        self.val_corpus = val_corpus
        self.tokenizer_name_or_path = tokenizer_name_or_path
        self.group_size = group_size
        self.val_fraction = val_fraction
        self.min_val_candidates = min_val_candidates
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size
        self.max_length = max_length
        self.query_max_length = query_max_length
        self.length_grouping_batches = length_grouping_batches
        self.num_workers = num_workers
        self.seed = seed
        self.cache_dir = cache_dir
        self.kind = ModelKind.from_config(kind)
        self.train_groups: TrainGroups | None = None
        # Whether the training records carry teacher scores (pos_scores/neg_scores); known after setup.
        self.has_teacher_scores = False
        # Likewise first-stage scores (pos_first_stage/neg_first_stage), a teacher column of their own.
        self.has_first_stage_scores = False
        self.val_groups: ValidationGroups | CandidateLists | None = None
        # Truncation statistics of each training and validation file, measured at setup.
        self.truncation: list[TruncationStats] = []

    def setup(self, stage: str | None = None) -> None:
        if self.train_groups is not None:
            return
        train = read_triplets(self.train_files, cache_dir=self.cache_dir)
        measured = [(train, self.train_files)]
        val, candidate_lists = None, None
        if self.val_files is None:
            split = train.train_test_split(test_size=self.val_fraction, seed=self.seed)
            train, val = split["train"], split["test"]
        elif self.val_corpus is not None or is_candidates_file(self.val_files):
            candidate_lists = read_candidate_lists(self.val_files, self.val_corpus)
        else:
            val = read_triplets(self.val_files, cache_dir=self.cache_dir)
            measured.append((val, self.val_files))
        corpus = build_corpus(train)
        check_corpus_fills_groups(train, corpus, self.group_size, name=str(self.train_files))
        self.has_teacher_scores = has_teacher_scores(train)
        self.has_first_stage_scores = has_first_stage_scores(train)
        self.train_groups = TrainGroups(
            train, corpus, self.group_size, self.has_teacher_scores, self.has_first_stage_scores
        )
        tokenizer = load_tokenizer(self.tokenizer_name_or_path)
        self.encoder = self.kind.encoder(tokenizer, self.max_length, self.query_max_length)
        for records, files in measured:
            self.truncation += truncation_stats(records, expand_paths(files), self.encoder, self.seed)
        if candidate_lists is not None:
            self.val_groups = CandidateLists(candidate_lists)
            file = str(expand_paths(self.val_files)[0])
            self.truncation.append(
                list_truncation_stats(
                    file, candidate_lists.queries, candidate_lists.candidates, self.encoder, self.seed
                )
            )
        else:
            # Scores a triplet may carry (pos_first_stage/neg_first_stage) are not used: its groups were mined.
            self.val_groups = ValidationGroups(val, corpus, self.min_val_candidates, seed=self.seed)
        for stats in self.truncation:
            _print(stats.line(self.max_length, self.query_max_length))
        if candidate_lists is None:
            _print(TRIPLET_VALIDATION_NOTE)
        self.group_lengths = GroupLengths(self.train_groups, self.encoder)

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _accumulation(self) -> int:
        trainer = self.trainer
        return int(trainer.accumulate_grad_batches) if trainer is not None else 1

    def _loader(self, dataset, sampler, batch_size: int, collate_fn, loader_class=DataLoader) -> DataLoader:
        return loader_class(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=collate_fn,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            # Its own generator: creating an iterator then draws nothing from the global one that dropout
            # uses, so a run resumed mid-epoch continues the same random stream.
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_batches_per_epoch(self) -> int:
        """Training batches of an epoch on this rank (each rank trains an equal share of the queries)."""
        _, world_size = self._rank()
        return math.ceil(len(self.train_groups) // world_size / self.batch_size)

    def train_dataloader(self) -> DataLoader:
        rank, world_size = self._rank()
        sampler = GroupSampler(
            len(self.train_groups),
            self.seed,
            shuffle=True,
            rank=rank,
            world_size=world_size,
            group_lengths=self.group_lengths if self.length_grouping_batches > 1 else None,
            # Grouped by optimiser step: a step trains on the same queries however many batches it is split into.
            batch_size=self.batch_size * self._accumulation(),
            window_batches=self.length_grouping_batches,
        )
        loader = self._loader(
            self.train_groups, sampler, self.batch_size, TrainCollator(self.encoder), ResumableDataLoader
        )
        if self.trainer is not None:
            # The epoch Lightning passes to set_epoch; set now because the first batch is fetched before that.
            sampler.set_epoch(self.trainer.fit_loop.epoch_progress.current.processed)
            # Batches whose update is in the weights: a checkpoint written mid-step counts its batch as not done.
            loader.batches_done = lambda: self.trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return loader

    def val_dataloader(self) -> DataLoader:
        rank, world_size = self._rank()
        sampler = GroupSampler(
            len(self.val_groups), shuffle=False, rank=rank, world_size=world_size, with_seed=False
        )
        return self._loader(self.val_groups, sampler, self.val_batch_size, ValidationCollator(self.encoder))
