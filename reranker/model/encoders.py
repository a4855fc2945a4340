"""Tokenise (query, passage) pairs for a cross-encoder without a prompt."""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerBase


class PairEncoder:
    """Tokenises (query, passage) pairs with dynamic padding to the longest pair of the batch.

    Pairs longer than ``max_length`` are truncated, the longer text first; with ``query_max_length``, a
    query is first cut to that many tokens and then only the passage is cut, so a long passage never
    truncates the query.
    """

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, max_length: int, query_max_length: int | None = None
    ) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.query_max_length = query_max_length
        # Tokens a pair adds to its two texts ([CLS] ... [SEP] ... [SEP]): for length estimates.
        self.extra_tokens = tokenizer.num_special_tokens_to_add(pair=True)

    def _cut_queries(self, queries: list[str]) -> list[str]:
        """Each query cut after its ``query_max_length``-th token (at that token's end in the text)."""
        encoded = self.tokenizer(
            queries,
            add_special_tokens=False,
            truncation=True,
            max_length=self.query_max_length,
            return_offsets_mapping=True,
        )
        return [
            query[: offsets[-1][1]] if len(offsets) == self.query_max_length else query
            for query, offsets in zip(queries, encoded["offset_mapping"], strict=True)
        ]

    def encode(self, queries: list[str], passages: list[str]) -> dict[str, list[list[int]]]:
        """Token ids (and masks) of each pair, truncated but not padded."""
        return dict(self._tokenize(queries, passages, padding=False, return_tensors=None))

    def pad(self, encoded: dict[str, list[list[int]]]) -> dict[str, torch.Tensor]:
        """Pad encoded pairs to the longest of them: ``[N, L]`` tensors."""
        return dict(self.tokenizer.pad(encoded, padding=True, return_tensors="pt"))

    def _tokenize(self, queries: list[str], passages: list[str], **kwargs):
        truncation = True
        if self.query_max_length is not None:
            queries, truncation = self._cut_queries(queries), "only_second"
        return self.tokenizer(queries, passages, truncation=truncation, max_length=self.max_length, **kwargs)

    def __call__(self, queries: list[str], passages: list[str]) -> dict[str, torch.Tensor]:
        return dict(self._tokenize(queries, passages, padding=True, return_tensors="pt"))
