"""Tokenise groups into padded batches (runs in the DataLoader workers)."""

from __future__ import annotations

import torch

from reranker.model.encoders import PairEncoder
from reranker.training.sampling import TrainGroup


class TrainCollator:
    """Training groups → the batch a loss reads.

    ``{"features": tokenised pairs [B * G], query-major, "labels": [B, G] float}``, plus
    ``"teacher_scores": [B, G] float`` (NaN where a passage has none) when the groups carry them, and
    ``"first_stage_scores": [B, G] float`` likewise.
    """

    def __init__(self, encoder: PairEncoder) -> None:
        self.encoder = encoder

    def __call__(self, groups: list[TrainGroup]) -> dict[str, object]:
        queries = [group.query for group in groups for _ in group.passages]
        passages = [passage for group in groups for passage in group.passages]
        batch = {
            "features": self.encoder(queries, passages),
            "labels": torch.tensor([group.labels for group in groups], dtype=torch.float32),  # [B, G]
        }
        if groups[0].teacher_scores is not None:
            scores = [group.teacher_scores for group in groups]
            batch["teacher_scores"] = torch.tensor(scores, dtype=torch.float32)  # [B, G]
        if groups[0].first_stage_scores is not None:
            scores = [group.first_stage_scores for group in groups]
            batch["first_stage_scores"] = torch.tensor(scores, dtype=torch.float32)  # [B, G]
        return batch


class ValidationCollator:
    """Ragged groups → flat features plus where each pair sits in a dense ``[Q, C]`` matrix (and the
    first stage's scores of the pairs when every group carries them: retrieved candidate lists do,
    triplet groups do not)."""

    def __init__(self, encoder: PairEncoder) -> None:
        self.encoder = encoder

    def __call__(
        self, groups: list[tuple[str, list[str], list[bool], list[float] | None]]
    ) -> dict[str, object]:
        queries, passages, rows, columns, relevance = [], [], [], [], []
        for row, (query, candidates, relevant, _) in enumerate(groups):
            for column, (passage, is_relevant) in enumerate(zip(candidates, relevant, strict=True)):
                queries.append(query)
                passages.append(passage)
                rows.append(row)
                columns.append(column)
                relevance.append(is_relevant)
        batch = {
            "features": self.encoder(queries, passages),
            "row": torch.tensor(rows),  # [N] query of each pair within the batch
            "column": torch.tensor(columns),  # [N] candidate position within its query
            "relevance": torch.tensor(relevance),  # [N]
            "num_queries": len(groups),
        }
        if all(first_stage is not None for *_, first_stage in groups):
            # [N] the first stage's score of each pair, for the fused validation metrics
            batch["first_stage"] = torch.tensor(
                [score for *_, first_stage in groups for score in first_stage], dtype=torch.float64
            )
        return batch
