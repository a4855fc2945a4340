"""Where a distillation loss finds its teacher: a column of the training batch, chosen by name in the config.

``scores`` is FlagEmbedding's convention, a teacher cross-encoder's ``pos_scores``/``neg_scores`` (written by
``prepare teacher``); ``first_stage`` is the retriever's own ``pos_first_stage``/``neg_first_stage`` (written by
``prepare mine`` and ``prepare squad --first-stage-scores``), so the first stage can teach the reranker that
reranks its lists. Either reaches a loss as a ``[B, G]`` batch column with NaN where a passage has no score.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from reranker.core.errors import InputError


class Teacher(NamedTuple):
    """One teacher column: its batch key, the record fields it is read from, and how to get them."""

    batch_key: str
    fields: tuple[str, str]
    what: str
    hint: str


TEACHERS = {
    "scores": Teacher(
        "teacher_scores",
        ("pos_scores", "neg_scores"),
        "teacher scores",
        "add them with prepare teacher, or choose a loss such as loss=group_ce",
    ),
    "first_stage": Teacher(
        "first_stage_scores",
        ("pos_first_stage", "neg_first_stage"),
        "first-stage scores",
        "mine the triplets with prepare mine or prepare squad --first-stage-scores, or choose teacher: scores",
    ),
}


def check_teacher(key: str, value: object) -> str:
    """``value`` when it names a teacher column; else an InputError naming ``key`` (e.g. ``loss.teacher``)."""
    if value not in TEACHERS:
        raise InputError(f"{key} must be one of {', '.join(TEACHERS)}, got {value!r}")
    return str(value)


def teacher_column(batch: dict, teacher: str) -> torch.Tensor:
    """The batch's ``[B, G]`` scores of ``teacher`` (NaN where a passage has none), as float32."""
    column = TEACHERS[teacher]
    if column.batch_key not in batch:
        raise ValueError(
            f"the batch has no {column.batch_key!r} (the records carry no "
            f"'{column.fields[0]}'/'{column.fields[1]}'), which teacher {teacher!r} reads"
        )
    return batch[column.batch_key].float()


def missing_teacher_message(files: object, key: str, teacher: str) -> str:
    """The error of a loss whose teacher column no training record carries; ``key`` is the config field."""
    column = TEACHERS[teacher]
    return (
        f"{files}: {key} asks for {column.what} ('{column.fields[0]}'/'{column.fields[1]}' per record), "
        f"and no training record carries them ({column.hint})"
    )
