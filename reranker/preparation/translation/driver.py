"""The translation driver: unique texts, the plan against the cache, chunked runs, translated records.

A backend translates a list of texts from a source to a target language; the driver around it sends each
unique text once, keeps every translation in a persistent cache (keyed by backend, model, language pair and
text) and writes the translated records in input order, so a killed run resumes where it stopped and the same
input and cache give a byte-identical output. The backends are in this package
(``aws``, ``hf``) behind the interface of ``base.py``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence

from reranker.core.cache import Cache, cache_key
from reranker.preparation.translation.base import Backend, TranslationError

SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")


def split_by_bytes(text: str, max_bytes: int) -> list[str]:
    """Parts of ``text``, each at most ``max_bytes`` in UTF-8, cut at sentence ends where possible.

    Whole sentences are packed into parts; a sentence longer than the limit is cut at spaces, and a word
    longer than the limit at character boundaries. Joining the parts with single spaces restores the text up
    to the whitespace between parts.
    """
    if len(text.encode("utf-8")) <= max_bytes:
        return [text]
    pieces: list[str] = []
    for sentence in SENTENCE_END.split(text):
        if len(sentence.encode("utf-8")) <= max_bytes:
            pieces.append(sentence)
            continue
        for word in sentence.split():
            while len(word.encode("utf-8")) > max_bytes:
                cut = len(word.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore"))
                pieces.append(word[:cut])
                word = word[cut:]
            pieces.append(word)
    parts: list[str] = []
    for piece in pieces:
        joined = f"{parts[-1]} {piece}" if parts else piece
        if parts and len(joined.encode("utf-8")) <= max_bytes:
            parts[-1] = joined
        else:
            parts.append(piece)
    return parts


def unique_texts(records: Sequence[dict]) -> list[str]:
    """Every query and passage text of triplet records, each once, in first-seen order."""
    seen: dict[str, None] = {}
    for record in records:
        seen[record["query"]] = None
        for text in (*record["pos"], *record.get("neg", [])):
            seen[text] = None
    return list(seen)


class Plan:
    """Which texts a run still has to send, given the cache: ``pending`` and the number of characters."""

    def __init__(self, texts: Sequence[str], keys: Sequence[str], cached: dict[str, str]) -> None:
        self.texts, self.keys, self.cached = list(texts), list(keys), cached
        self.pending = [i for i, key in enumerate(keys) if key not in cached]
        self.characters = sum(len(self.texts[i]) for i in self.pending)

    def summary(self) -> str:
        cached = len(self.texts) - len(self.pending)
        return (
            f"{len(self.texts)} unique texts, {cached} already in the cache; "
            f"{len(self.pending)} texts, {self.characters} characters to translate"
        )


def plan(texts: Sequence[str], backend_name: str, model: str, source: str, target: str, cache: Cache) -> Plan:
    keys = [cache_key(backend_name, model, source, target, text) for text in texts]
    return Plan(texts, keys, cache.get_many(keys))


def run_plan(
    job: Plan,
    backend: Backend,
    cache: Cache,
    progress: Callable[[int], None] | None = None,
) -> dict[str, str]:
    """Translate the pending texts chunk by chunk, committing each chunk; returns ``text → translation``."""
    done = dict(job.cached)
    for start in range(0, len(job.pending), backend.chunk_size):
        chunk = job.pending[start : start + backend.chunk_size]
        parts = [split_by_bytes(job.texts[i], backend.max_segment_bytes) for i in chunk]
        segments = list(dict.fromkeys(segment for text_parts in parts for segment in text_parts))
        translated = backend.translate(segments)
        if len(translated) != len(segments):
            raise TranslationError(
                f"backend {backend.name} returned {len(translated)} texts for {len(segments)}"
            )
        for segment, translation in zip(segments, translated, strict=True):
            if not translation.strip():
                raise TranslationError(
                    f"backend {backend.name} returned an empty translation for {segment!r:.80}; "
                    "the translations finished before it are kept in the cache"
                )
        by_segment = dict(zip(segments, translated, strict=True))
        items = [
            (job.keys[i], " ".join(by_segment[s] for s in text_parts))
            for i, text_parts in zip(chunk, parts, strict=True)
        ]
        cache.put_many(items)
        done.update(items)
        if progress is not None:
            progress(len(chunk))
    return {text: done[key] for text, key in zip(job.texts, job.keys, strict=True)}


def translate_records(records: Sequence[dict], translation: dict[str, str]) -> list[dict]:
    """Records with query and passages replaced by their translations (other fields kept as they are)."""
    out = []
    for record in records:
        new = dict(record)
        new["query"] = translation[record["query"]]
        new["pos"] = [translation[t] for t in record["pos"]]
        if "neg" in record:
            new["neg"] = [translation[t] for t in record["neg"]]
        out.append(new)
    return out


def progress_bar(total: int) -> tuple[Callable[[int], None], Callable[[], None]]:
    """A tqdm bar on stderr counting texts (its rate is texts/s): ``(advance, close)``."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="texts", file=sys.stderr, dynamic_ncols=True, mininterval=1.0)
    return bar.update, bar.close
