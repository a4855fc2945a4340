"""Prompt templates for decoder rerankers: a (query, passage) pair written into the model's instruction and
chat markup, tokenised so that truncation shortens the passage and never the template's closing tokens."""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from reranker.core.errors import InputError


@dataclass(frozen=True)
class PromptTemplate:
    """Two texts, one per side of the pair, joined without a separator.

    The split sits where the model card of the seq-cls conversions splits a pair for sentence-transformers'
    ``CrossEncoder`` (query side, then passage side), at a point where the tokenizer would split the
    whole text anyway, so tokenising the two sides apart gives the tokens of the whole prompt.

    Args:
        query: text with a ``{query}`` slot (and optionally ``{instruction}``): system prompt, instruction,
            query.
        passage: text with a ``{passage}`` slot: the passage and the closing markup after which the model
            answers (for Qwen3-Reranker ``<|im_end|>`` … ``<think>\\n\\n</think>\\n\\n``).
        instruction: what fills ``{instruction}``.
    """

    query: str
    passage: str
    instruction: str = ""

    def __post_init__(self) -> None:
        for side, slot in (("query", "{query}"), ("passage", "{passage}")):
            text = getattr(self, side)
            if not isinstance(text, str) or text.count(slot) != 1:
                raise InputError(
                    f"model.kind.{side}_template must contain the slot {slot} exactly once, got {text!r}"[
                        :300
                    ]
                )
        for side, other in (("query", "{passage}"), ("passage", "{query}")):
            if other in getattr(self, side):
                raise InputError(
                    f"model.kind.{side}_template must not contain {other}: each side holds its own"
                )

    def sides(self, query: str, passage: str) -> list[tuple[str, tuple[int, int]]]:
        """The query side and the passage side, each with the character span of its text within it."""
        sides = []
        for template, slot, text in ((self.query, "{query}", query), (self.passage, "{passage}", passage)):
            # str.replace, not str.format: texts may hold braces of their own.
            before, after = template.replace("{instruction}", self.instruction).split(slot)
            sides.append((before + text + after, (len(before), len(before) + len(text))))
        return sides


# Chat-template reads of sentence-transformers' pair messages: one message with role "query", one "document".
_ROLE_CONTENT = '(messages | selectattr("role", "eq", "{role}") | map(attribute="content") | first)'


def chat_template(template: PromptTemplate) -> str:
    """A Jinja chat template that renders a ``query`` and a ``document`` message into ``template``'s text.

    Written into exports so that sentence-transformers' ``CrossEncoder``, which turns a pair into those
    two messages and renders the tokenizer's chat template, scores raw (query, passage) pairs as we do.
    """
    parts = []
    for side, slot, role in (
        (template.query, "{query}", "query"),
        (template.passage, "{passage}", "document"),
    ):
        before, after = side.replace("{instruction}", template.instruction).split(slot)
        # Literal text as Jinja string literals: safe whatever braces or newlines it holds.
        parts += [_literal(before), "{{ " + _ROLE_CONTENT.format(role=role) + " }}", _literal(after)]
    return "".join(parts)


def _literal(text: str) -> str:
    return "{{ " + json.dumps(text, ensure_ascii=False) + " }}" if text else ""


class TemplateEncoder:
    """Tokenises pairs through a :class:`PromptTemplate`, padded on the left.

    Left padding puts every prompt's last token at the last position, where a yes/no reranker reads its
    answer and where a sequence-classification head pools (as the clients of such models pad).
    A pair longer than ``max_length`` loses tokens from the end of its passage, then from the end of its
    query; the template's own tokens are kept whole.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, template: PromptTemplate, max_length: int) -> None:
        if tokenizer.pad_token_id is None:
            raise InputError("the tokenizer has no padding token (set_padding_token gives it one)")
        self.tokenizer = tokenizer
        self.template = template
        self.max_length = max_length
        fixed = sum(len(self._ids(side)) for side, _ in template.sides("", ""))
        # Tokens the template adds to a pair's two texts: for length estimates.
        self.extra_tokens = fixed
        self.query_max_length = None  # the template's own rule spares the query (see above)
        if fixed >= max_length:
            raise InputError(
                f"data.max_length {max_length} leaves no room for text: the prompt template alone is {fixed} tokens"
            )

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode_pairs(self, queries: list[str], passages: list[str]) -> list[list[int]]:
        """Token ids of each pair's prompt, cut to ``max_length`` as the class describes."""
        sides = [
            self.template.sides(query, passage) for query, passage in zip(queries, passages, strict=True)
        ]
        query_sides = self._tokens_with_slots([pair[0] for pair in sides])
        passage_sides = self._tokens_with_slots([pair[1] for pair in sides])
        rows = []
        for (query_ids, query_slot), (passage_ids, passage_slot) in zip(
            query_sides, passage_sides, strict=True
        ):
            excess = len(query_ids) + len(passage_ids) - self.max_length
            passage_ids, excess = _cut(passage_ids, passage_slot, excess)
            query_ids, _ = _cut(query_ids, query_slot, excess)
            rows.append(query_ids + passage_ids)
        return rows

    def _tokens_with_slots(self, sides: list[tuple[str, tuple[int, int]]]) -> list[tuple[list[int], range]]:
        """Token ids of each text and the token positions that overlap its slot's character span."""
        encodings = self.tokenizer(
            [text for text, _ in sides], add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        result = []
        for ids, offsets, (_, span) in zip(
            encodings["input_ids"], encodings["offset_mapping"], sides, strict=True
        ):
            inside = [
                index for index, (start, end) in enumerate(offsets) if start < span[1] and end > span[0]
            ]
            result.append((ids, range(inside[0], inside[-1] + 1) if inside else range(0)))
        return result

    def encode(self, queries: list[str], passages: list[str]) -> dict[str, list[list[int]]]:
        """Token ids of each pair's prompt, truncated but not padded."""
        return {"input_ids": self.encode_pairs(queries, passages)}

    def pad(self, encoded: dict[str, list[list[int]]]) -> dict[str, torch.Tensor]:
        """Pad encoded prompts on the left to the longest of them: ``[N, T]`` tensors."""
        rows = encoded["input_ids"]
        width = max(len(row) for row in rows)
        input_ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)  # [N, T]
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)  # [N, T]
        for index, row in enumerate(rows):
            input_ids[index, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            attention_mask[index, width - len(row) :] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def __call__(self, queries: list[str], passages: list[str]) -> dict[str, torch.Tensor]:
        return self.pad(self.encode(queries, passages))


def _cut(ids: list[int], slot: range, excess: int) -> tuple[list[int], int]:
    """Drop up to ``excess`` tokens from the end of ``slot``; the ids left and the excess still to cut."""
    if excess <= 0 or len(slot) == 0:
        return ids, excess
    dropped = min(excess, len(slot))
    return ids[: slot.stop - dropped] + ids[slot.stop :], excess - dropped
