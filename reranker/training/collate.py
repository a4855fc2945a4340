"""Tokenise groups into padded batches (runs in the DataLoader workers)."""

from __future__ import annotations

import torch

from reranker.serving.models import PairEncoder


class TrainCollator:
    """``[(query, [pos, neg, ...]), ...]`` → ``{"features": ...}`` with pairs ordered query by query."""

    def __init__(self, encoder: PairEncoder) -> None:
        self.encoder = encoder

    def __call__(self, groups: list[tuple[str, list[str]]]) -> dict[str, object]:
        queries = [query for query, passages in groups for _ in passages]
        passages = [passage for _, group in groups for passage in group]
        return {"features": self.encoder(queries, passages)}


class ValidationCollator:
    """Ragged groups → flat features plus where each pair sits in a dense ``[Q, C]`` matrix."""

    def __init__(self, encoder: PairEncoder) -> None:
        self.encoder = encoder

    def __call__(self, groups: list[tuple[str, list[str], list[bool]]]) -> dict[str, object]:
        queries, passages, rows, columns, relevance = [], [], [], [], []
        for row, (query, candidates, relevant) in enumerate(groups):
            for column, (passage, is_relevant) in enumerate(zip(candidates, relevant, strict=True)):
                queries.append(query)
                passages.append(passage)
                rows.append(row)
                columns.append(column)
                relevance.append(is_relevant)
        return {
            "features": self.encoder(queries, passages),
            "row": torch.tensor(rows),  # [N] query of each pair within the batch
            "column": torch.tensor(columns),  # [N] candidate position within its query
            "relevance": torch.tensor(relevance),  # [N]
            "num_queries": len(groups),
        }
