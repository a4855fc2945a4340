"""The one checker of id and text fields in queries, corpus and candidate records (evaluation and
preparation read the same ``qid``/``query``/``id``/``text``/``pos_ids``/``candidate_ids`` fields).

Each check names the location (``FILE, line N``) and the field, and says what would be right.
"""

from __future__ import annotations

from collections.abc import Iterable

from reranker.core.errors import InputError


def text_field(record: dict, name: str, where: str) -> str:
    """A string field that is not empty once surrounding whitespace is removed (an id, a query, a text)."""
    value = record.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: field '{name}' must be a non-empty string, got {value!r:.60}")
    return value


def id_list_field(record: dict, name: str, where: str) -> list[str]:
    """A list of string ids (``pos_ids``, ``candidate_ids``); emptiness is the caller's to judge."""
    value = record.get(name)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InputError(f"{where}: field '{name}' must be a list of strings, got {value!r:.60}")
    return value


def known_ids(ids: Iterable[str], known: dict | set, name: str, where: str, corpus: object) -> None:
    """Every id of field ``name`` is a passage of ``corpus`` (named in the error); when none is, the error
    says so, as a corpus other than the one the ids come from gives."""
    ids = list(ids)
    unknown = [i for i in ids if i not in known]
    if len(unknown) == len(ids) > 1:
        raise InputError(
            f"{where}: field '{name}': none of its {len(ids)} ids is in the corpus {corpus} "
            f"(first: {unknown[0]!r}); is it the corpus these ids come from?"
        )
    if unknown:
        raise InputError(f"{where}: field '{name}': {unknown[0]!r} is not in the corpus {corpus}")
