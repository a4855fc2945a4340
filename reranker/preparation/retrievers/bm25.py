"""BM25 first stage over a passage list (``bm25s``), with tokenisations that work for Korean.

Korean attaches particles and endings to words (서울은, 서울에는), so whitespace tokens rarely match
across a question and a passage. Character bigrams inside each word match the shared stem without a
dictionary; ``kiwi`` uses the kiwipiepy morphological analyser (optional dependency).
Rankings break score ties by corpus order, so the same inputs always give the same ranking.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from reranker.core.errors import InputError
from reranker.preparation.retrievers.base import Hits

WORD = re.compile(r"\w+")


def whitespace_tokens(text: str) -> list[str]:
    """Lower-cased word tokens (runs of letters and digits)."""
    return WORD.findall(text.lower())


def bigram_tokens(text: str) -> list[str]:
    """Character bigrams inside each word; a one-character word is kept whole."""
    tokens = []
    for word in whitespace_tokens(text):
        tokens += [word] if len(word) == 1 else [word[i : i + 2] for i in range(len(word) - 1)]
    return tokens


def _kiwi_tokenizer() -> Callable[[str], list[str]]:
    try:
        from kiwipiepy import Kiwi
    except ModuleNotFoundError:
        raise InputError("tokenizer 'kiwi' needs the package kiwipiepy: pip install kiwipiepy") from None
    kiwi = Kiwi()
    # Content morphemes only: nouns (N*), verb/adjective stems (V*), foreign words and numbers (SL, SH, SN).
    keep = ("N", "V", "SL", "SH", "SN", "XR")

    def tokens(text: str) -> list[str]:
        return [t.form.lower() for t in kiwi.tokenize(text) if t.tag.startswith(keep)]

    return tokens


TOKENIZERS = {
    "whitespace": lambda: whitespace_tokens,
    "bigram": lambda: bigram_tokens,
    "kiwi": _kiwi_tokenizer,
}


def get_tokenizer(name: str) -> Callable[[str], list[str]]:
    """A tokeniser by name: ``whitespace``, ``bigram`` or ``kiwi``."""
    if name not in TOKENIZERS:
        raise InputError(f"unknown BM25 tokenizer {name!r}; choose one of {', '.join(TOKENIZERS)}")
    return TOKENIZERS[name]()


class BM25Index:
    """BM25 over ``passages`` (Lucene variant, k1=1.5, b=0.75), searched one query at a time."""

    def __init__(self, passages: Sequence[str], tokenizer: str = "bigram") -> None:
        import bm25s

        if not passages:
            raise InputError("BM25 needs a non-empty corpus")
        self.tokenize = get_tokenizer(tokenizer)
        # An empty token list would break the index; a passage without words matches nothing anyway.
        corpus_tokens = [self.tokenize(text) or ["\u0000"] for text in passages]
        self.retriever = bm25s.BM25()
        self.retriever.index(corpus_tokens, show_progress=False)
        self.size = len(passages)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every passage for ``query``: ``[N]``."""
        ids = self.retriever.get_tokens_ids(self.tokenize(query))
        if not ids:
            return np.zeros(self.size, dtype=np.float32)
        return self.retriever.get_scores_from_ids(ids)

    def search(self, query: str, k: int) -> list[int]:
        """Indices of the ``k`` best passages, best first; ties keep corpus order."""
        return self.search_with_scores(query, k)[0]

    def search_with_scores(self, query: str, k: int) -> tuple[list[int], np.ndarray]:
        """:meth:`search` and the BM25 score of every passage (``[N]``)."""
        scores = self.scores(query)
        order = np.lexsort((np.arange(self.size), -scores))  # last key sorts first
        return order[:k].tolist(), scores


class BM25Retriever:
    """:class:`BM25Index` behind the :class:`~reranker.preparation.retrievers.base.Retriever` interface."""

    name = "bm25"

    def __init__(self, passages: Sequence[str], tokenizer: str = "bigram") -> None:
        self.index = BM25Index(passages, tokenizer)

    def search(self, queries: Sequence[str], k: int) -> list[Hits]:
        hits = []
        for query in queries:
            order, scores = self.index.search_with_scores(query, k)
            hits.append(Hits(order, [float(scores[i]) for i in order]))
        return hits

    def score(self, queries: Sequence[str], passages: Sequence[Sequence[int]]) -> list[list[float]]:
        return [
            [float(value) for value in self.index.scores(query)[list(indices)]] if indices else []
            for query, indices in zip(queries, passages, strict=True)
        ]
