"""Token length of training groups, for the length-grouping sampler.

A group is padded to its longest pair, so its cost is ``group_size`` times the token count of that pair:
query tokens (at most ``query_max_length``) + passage tokens + the tokens the pair encoder adds (special
tokens, or a decoder's prompt template), capped at ``max_length``. Counts come from the tokenizer itself and are cached per text, so each text of the
training data is tokenised once however many epochs see it.
"""

from __future__ import annotations

from reranker.training.sampling import TrainGroups


class GroupLengths:
    """``(index, seed)`` items → token count of each group's longest pair."""

    def __init__(self, groups: TrainGroups, encoder) -> None:
        """``encoder``: the pair encoder of the batches (``PairEncoder`` or ``TemplateEncoder``)."""
        self.groups = groups
        self.tokenizer = encoder.tokenizer
        self.max_length = encoder.max_length
        self.query_max_length = encoder.query_max_length
        self.special_tokens = encoder.extra_tokens
        self.counts: dict[str, int] = {}

    def _count(self, texts: set[str]) -> None:
        missing = [text for text in texts if text not in self.counts]
        if missing:
            ids = self.tokenizer(missing, add_special_tokens=False)["input_ids"]
            self.counts.update(zip(missing, map(len, ids), strict=True))

    def __call__(self, items: list[tuple[int, int]]) -> list[int]:
        groups = [self.groups[item] for item in items]
        self._count({text for group in groups for text in (group.query, *group.passages)})
        lengths = []
        for group in groups:
            query = self.counts[group.query]
            if self.query_max_length is not None:
                query = min(query, self.query_max_length)
            longest = max(self.counts[passage] for passage in group.passages)
            lengths.append(min(self.max_length, self.special_tokens + query + longest))
        return lengths
