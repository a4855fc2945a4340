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
from reranker.preparation.retrievers.base import Hits, score, search

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

    def token_ids(self, query: str) -> np.ndarray:
        """The query's tokens that the index knows, as vocabulary ids in query order (repeats kept)."""
        return np.asarray(self.retriever.get_tokens_ids(self.tokenize(query)), dtype=np.int64)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every passage for ``query``: ``[N]``."""
        return self.scores_from_ids(self.token_ids(query))

    def scores_from_ids(self, token_ids: np.ndarray) -> np.ndarray:
        """BM25 score of every passage for a query's token ids: ``[N]``."""
        if not len(token_ids):
            return np.zeros(self.size, dtype=np.float32)
        return self.retriever.get_scores_from_ids(token_ids.tolist())

    def passage_scores(self, token_ids: np.ndarray, passages: Sequence[int]) -> np.ndarray:
        """BM25 score of chosen passages ``[n]``, equal to :meth:`scores_from_ids` at their indices.

        bm25s keeps, for each token, the passages holding it (sorted) and the token's score in each; a
        passage's score is the sum over the query's tokens, added in the same order and precision as bm25s
        adds them for the whole corpus, so the sums are the same floats. The cost is a binary search per
        token and passage, not a pass over the corpus.
        """
        index = self.retriever.scores
        data, holders, starts = index["data"], index["indices"], index["indptr"]
        chosen = np.asarray(passages, dtype=np.int64)  # [n]
        total = np.zeros(len(chosen), dtype=data.dtype)  # [n]
        for token in token_ids:
            column = holders[starts[token] : starts[token + 1]]  # passages holding the token, sorted
            at = np.minimum(np.searchsorted(column, chosen), max(len(column) - 1, 0))  # [n]
            found = column[at] == chosen if len(column) else np.zeros(len(chosen), dtype=bool)  # [n]
            total[found] += data[starts[token] + at[found]]
        if len(token_ids) and self.retriever.nonoccurrence_array is not None:
            total += self.retriever.nonoccurrence_array[token_ids].sum()
        return total

    def search(self, query: str, k: int) -> list[int]:
        """Indices of the ``k`` best passages, best first; ties keep corpus order."""
        return self.search_with_scores(query, k)[0]

    def search_with_scores(self, query: str, k: int) -> tuple[list[int], np.ndarray]:
        """:meth:`search` and the BM25 score of every passage (``[N]``)."""
        scores = self.scores(query)
        return top(scores, k), scores


def top(scores: np.ndarray, k: int) -> list[int]:
    """Indices of the ``k`` highest of ``scores`` ``[N]``, best first, ties in index order.

    The same as a full sort by (score descending, index) cut at ``k``, without sorting all N: every index
    scoring at least the k-th best score is sorted, and only those.
    """
    if k < len(scores):
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]  # the k-th highest score
        candidates = np.flatnonzero(scores >= kth)
    else:
        candidates = np.arange(len(scores))
    order = np.lexsort((candidates, -scores[candidates]))  # last key sorts first
    return candidates[order[:k]].tolist()


class BM25Queries:
    """Queries as BM25 token ids (tokenised once), searched and scored against a :class:`BM25Index`."""

    block = 256

    def __init__(self, index: BM25Index, queries: Sequence[str]) -> None:
        self.index = index
        self.token_ids = [index.token_ids(query) for query in queries]

    def __len__(self) -> int:
        return len(self.token_ids)

    def hits(self, start: int, end: int, k: int) -> list[Hits]:
        hits = []
        for token_ids in self.token_ids[start:end]:
            scores = self.index.scores_from_ids(token_ids)  # [N]
            order = top(scores, k)
            hits.append(Hits(order, [float(scores[i]) for i in order]))
        return hits

    def scores(self, start: int, end: int, passages: Sequence[Sequence[int]]) -> list[list[float]]:
        return [
            self.index.passage_scores(token_ids, list(indices)).astype(float).tolist() if indices else []
            for token_ids, indices in zip(self.token_ids[start:end], passages, strict=True)
        ]


class BM25Retriever:
    """:class:`BM25Index` behind the :class:`~reranker.preparation.retrievers.base.Retriever` interface."""

    name = "bm25"

    def __init__(self, passages: Sequence[str], tokenizer: str = "bigram") -> None:
        self.index = BM25Index(passages, tokenizer)

    def encode(self, queries: Sequence[str]) -> BM25Queries:
        return BM25Queries(self.index, queries)

    def search(self, queries: Sequence[str], k: int) -> list[Hits]:
        return list(search(self.encode(queries), k))

    def score(self, queries: Sequence[str], passages: Sequence[Sequence[int]]) -> list[list[float]]:
        return score(self.encode(queries), passages)
