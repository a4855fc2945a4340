"""The dense retriever's encoder through ONNX Runtime: ``Embedder(..., backend="onnx")``.

The encoder, its pooling and its normalisation are traced into one float32 graph (batch and sequence axes
dynamic) and fused by ONNX Runtime's transformer optimizer, as a reranker's ONNX export is
(:mod:`reranker.model.onnx_graph`); each graph is checked against the torch embeddings before it is used
(within 1e-4; a fused graph that misses gives way to the unfused one). The graph is built for the run, in a
temporary folder that is removed once ONNX Runtime has loaded it: seconds for a small encoder.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reranker.core.errors import InputError

OUTPUT = "embeddings"
# Texts of different lengths: the traced batch and sequence sizes must be at least 2 and differ, so the
# exporter keeps both axes dynamic.
EXAMPLE_TEXTS = ["a short text", "a somewhat longer text with a few more words in it"]


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str, normalize: bool) -> torch.Tensor:
    """One vector a text from its token vectors ``[B, L, D]`` and attention mask ``[B, L]``: ``[B, D]``."""
    if pooling == "cls":
        pooled = hidden[:, 0]
    else:
        weights = mask.unsqueeze(-1).to(hidden.dtype)  # [B, L, 1]
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
    return nn.functional.normalize(pooled, dim=-1) if normalize else pooled


class PooledEncoder(nn.Module):
    """A Hugging Face encoder with its pooling and normalisation: token ids in, ``[B, D]`` embeddings out."""

    def __init__(self, model: nn.Module, pooling: str, normalize: bool) -> None:
        super().__init__()
        self.model, self.pooling, self.normalize = model, pooling, normalize
        self.config = model.config

    def set_attn_implementation(self, name: str) -> None:
        self.model.set_attn_implementation(name)

    def forward(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        features = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            features["token_type_ids"] = token_type_ids
        hidden = self.model(**features).last_hidden_state.float()
        return pool(hidden, attention_mask, self.pooling, self.normalize)


def _check_embeddings(model: nn.Module, features: dict[str, torch.Tensor], path: Path) -> None:
    from reranker.model.onnx_graph import MAX_EXPORT_ERROR, graph_difference

    error = graph_difference(model, features, path, OUTPUT)
    if not error <= MAX_EXPORT_ERROR:
        raise InputError(
            f"the ONNX graph of the embedding model does not reproduce its embeddings (largest difference "
            f"{error:.2g}); encode with --retriever-backend torch"
        )


class OnnxEncoder:
    """``encoder(batch)``: the embeddings ``[B, D]`` (float32 tensor) of a padded batch, through ONNX Runtime.

    ``details`` says how the graph was made (exporter, fused operators or why the unfused graph was kept).
    """

    def __init__(
        self, model: nn.Module, tokenizer, pooling: str, normalize: bool, device: str = "cpu"
    ) -> None:
        try:
            import onnxruntime  # noqa: F401
        except ModuleNotFoundError:
            raise InputError(
                "--retriever-backend onnx needs onnxruntime: pip install 'reranker[onnx]'"
            ) from None
        from reranker.model.onnx_backend import onnx_session
        from reranker.model.onnx_graph import EXTERNAL_DATA_BYTES, fuse_graph, trace_graph

        # In eval mode as a whole: the exporter puts the module back into the mode it found it in.
        module = PooledEncoder(model.to("cpu", torch.float32), pooling, normalize).eval()
        features = dict(tokenizer(EXAMPLE_TEXTS, padding=True, return_tensors="pt"))
        folder = Path(tempfile.mkdtemp(prefix="reranker-encoder-onnx-"))
        try:
            path = folder / "encoder.onnx"
            large = sum(p.numel() * p.element_size() for p in model.parameters()) > EXTERNAL_DATA_BYTES
            self.details = trace_graph(module, features, path, large, output=OUTPUT)
            _check_embeddings(module, features, path)
            self.details["fused"] = fuse_graph(module, features, path, large, check=_check_embeddings)
            self.session = onnx_session(path, device)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.input_names = [node.name for node in self.session.get_inputs()]

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {name: batch[name].cpu().numpy().astype(np.int64) for name in self.input_names}
        (embeddings,) = self.session.run([OUTPUT], inputs)
        return torch.from_numpy(embeddings)
