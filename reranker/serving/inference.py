"""Rerank with a trained reranker: ``Reranker(path).rerank(query, passages)``, and ``.score(pairs)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from reranker.core.errors import InputError
from reranker.core.scores import check_scores
from reranker.model.fusion import Fusion, fuse_one
from reranker.model.pair_scorer import PairScorer

# Without a recorded mix, reciprocal-rank fusion: it has no weight that would need tuning.
DEFAULT_FUSION = Fusion("rrf", None)


class RankedPassage(NamedTuple):
    index: int  # position of the passage in the list given to ``rerank``
    score: float


class Reranker(PairScorer):
    """A reranker for inference, from a Hugging Face folder, a hub name or a Lightning checkpoint: the
    scoring of :class:`~reranker.model.pair_scorer.PairScorer` (same arguments) and :meth:`rerank`,
    which also mixes in first-stage scores with the fusion recorded with the model (:attr:`fusion`).
    """

    def rerank(
        self,
        query: str,
        passages: Sequence[str],
        top_k: int | None = None,
        batch_size: int = 64,
        normalize: str | None = None,
        first_stage_scores: Sequence[float] | None = None,
        fusion: Fusion | str | None = "recorded",
    ) -> list[RankedPassage]:
        """``(index, score)`` of the passages, highest score first; the first ``top_k`` if given.

        With ``first_stage_scores`` (the retriever's score of each passage, higher is better) the ranking
        mixes the reranker's logits with them: ``fusion="recorded"`` uses the mix recorded with the model
        (:attr:`fusion`; reciprocal-rank fusion when none was recorded), a :class:`Fusion` sets one, and
        None ignores the first-stage scores. The returned scores are then the fused ones.
        """
        if not isinstance(query, str):
            raise InputError(f"query must be a string, got {type(query).__name__}")
        if isinstance(passages, str) or len(passages) == 0:
            raise InputError("passages must be a non-empty list of strings")
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise InputError(f"top_k must be None or an integer >= 1, got {top_k!r}")
        mix = self._fusion(fusion) if first_stage_scores is not None else None
        if mix is not None:
            if normalize is not None:
                raise InputError("normalize applies to reranker scores alone; with fusion leave it None")
            first_stage = check_scores(
                list(first_stage_scores), len(passages), "rerank", "first_stage_scores"
            )
        scores = self.score([(query, passage) for passage in passages], batch_size, normalize)
        if mix is not None:
            scores = fuse_one(scores, first_stage, mix)
        ranked = sorted(enumerate(scores), key=lambda item: item[1], reverse=True)
        return [RankedPassage(index, score) for index, score in ranked[:top_k]]

    def _fusion(self, fusion: Fusion | str | None) -> Fusion | None:
        if fusion == "recorded":
            return self.fusion or DEFAULT_FUSION
        if fusion is None or isinstance(fusion, Fusion):
            return fusion
        raise InputError(f"fusion must be 'recorded', a Fusion or None; got {fusion!r}")
