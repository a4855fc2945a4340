"""Score and rerank with a trained cross-encoder: ``Reranker(path).score(pairs)`` / ``.rerank(query, passages)``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoTokenizer

from reranker.data.collate import PairEncoder
from reranker.modeling import load_cross_encoder, resolve_model_path, score_features


class Reranker:
    """A cross-encoder for inference, from a Hugging Face folder, a hub name or a Lightning checkpoint.

    Args:
        name_or_path: model folder, hub name, or ``.ckpt`` file written by ``reranker.train``.
        max_length: tokens per pair; longer pairs are truncated.
        device: ``"cpu"``, ``"cuda"``, ... (default: CUDA when available).
    """

    def __init__(self, name_or_path: str | Path, max_length: int = 512, device: str | None = None) -> None:
        name_or_path = str(name_or_path)
        if name_or_path.endswith(".ckpt"):
            from reranker.module import RerankerModule

            module = RerankerModule.load_from_checkpoint(name_or_path, map_location="cpu")
            self.model = module.model
            tokenizer_path = module.hparams.model_name_or_path
        else:
            self.model = load_cross_encoder(name_or_path)
            tokenizer_path = name_or_path
        tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(tokenizer_path), use_fast=True)
        self.encoder = PairEncoder(tokenizer, max_length)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device).eval()

    @torch.inference_mode()
    def score(self, pairs: Sequence[tuple[str, str]], batch_size: int = 32) -> list[float]:
        """Relevance logits of ``(query, passage)`` pairs, in input order.

        Pairs are batched by length so little padding is computed.
        """
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        scores = [0.0] * len(pairs)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            features = self.encoder([pairs[i][0] for i in batch], [pairs[i][1] for i in batch])
            logits = score_features(self.model, {k: v.to(self.device) for k, v in features.items()})
            for index, value in zip(batch, logits.float().cpu().tolist(), strict=True):
                scores[index] = value
        return scores

    def rerank(
        self, query: str, passages: Sequence[str], top_k: int | None = None
    ) -> list[tuple[int, float]]:
        """``(index, score)`` of the passages, highest score first; the first ``top_k`` if given."""
        scores = self.score([(query, passage) for passage in passages])
        ranked = sorted(enumerate(scores), key=lambda item: item[1], reverse=True)
        return ranked[:top_k] if top_k is not None else ranked
