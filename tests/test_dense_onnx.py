"""The dense retriever's ONNX backend: the same embeddings and rankings as torch, a fused graph checked
before use, and its bad arguments (``--retriever-backend``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import write_jsonl
from transformers import AutoConfig

from reranker.core.errors import InputError
from reranker.preparation.retrievers import build_retriever
from reranker.preparation.retrievers import onnx_encoder as onnx_encoder_module
from reranker.preparation.retrievers.embedder import Embedder
from reranker.prepare import main
from tests.test_dense import PASSAGES, QUERIES

pytest.importorskip("onnxruntime")
TEXTS = ["짧다", *PASSAGES[:7], "아주 " * 40 + "긴 문장"]


@pytest.mark.parametrize("pooling", ["mean", "cls"])
@pytest.mark.slow
def test_onnx_embeddings_equal_torch_and_the_graph_is_fused(bi_encoder, pooling):
    torch_embedder = Embedder(bi_encoder, pooling, batch_size=3, device="cpu")
    onnx_embedder = Embedder(bi_encoder, pooling, batch_size=3, device="cpu", backend="onnx")
    expected = torch_embedder.encode(TEXTS, "passage: ")
    np.testing.assert_allclose(onnx_embedder.encode(TEXTS, "passage: "), expected, atol=1e-5)
    details = onnx_embedder.onnx.details
    layers = AutoConfig.from_pretrained(bi_encoder).num_hidden_layers
    assert details["exporter"] == "torchscript"
    assert details["fused"]["operators"]["Attention"] == layers
    assert onnx_embedder.model is None  # the graph holds the weights; the torch copy is freed


@pytest.mark.slow
def test_a_fused_graph_that_misses_gives_way_to_the_unfused_one(xlmr_encoder, monkeypatch):
    checked = onnx_encoder_module._check_embeddings

    def refuse_fused(model, features, path):
        if path.parent.name.startswith(".fused-"):
            raise InputError("the ONNX graph of the embedding model does not reproduce its embeddings")
        checked(model, features, path)

    monkeypatch.setattr(onnx_encoder_module, "_check_embeddings", refuse_fused)
    embedder = Embedder(xlmr_encoder, "mean", device="cpu", backend="onnx")
    assert embedder.onnx.details["fused"]["kept"] == "unfused"
    assert "embeddings" in embedder.onnx.details["fused"]["reason"]
    expected = Embedder(xlmr_encoder, "mean", device="cpu").encode(TEXTS)
    np.testing.assert_allclose(embedder.encode(TEXTS), expected, atol=1e-5)


@pytest.mark.slow
def test_prepare_candidates_with_the_onnx_backend_writes_what_torch_does(bert_encoder, tmp_path, capsys):
    corpus = write_jsonl(
        tmp_path / "corpus.jsonl", [{"id": f"p{i}", "text": t} for i, t in enumerate(PASSAGES)]
    )
    queries = write_jsonl(
        tmp_path / "queries.jsonl",
        [{"qid": f"q{i}", "query": q, "pos_ids": ["p0"]} for i, q in enumerate(QUERIES)],
    )
    outputs = {}
    for backend in ("torch", "onnx"):
        out = tmp_path / f"{backend}.jsonl"
        main(["candidates", "--queries", str(queries), "--corpus", str(corpus), "--out", str(out), "--top-k", "5",
              "--retriever", "dense", "--dense-model", bert_encoder, "--pooling", "mean",
              "--retriever-device", "cpu", "--retriever-backend", backend])  # fmt: skip
        outputs[backend] = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    capsys.readouterr()
    for ours, theirs in zip(outputs["torch"], outputs["onnx"], strict=True):
        assert ours["candidate_ids"] == theirs["candidate_ids"]
        # Passage vectors are kept in float16: a last-bit difference can round to a neighbouring half.
        np.testing.assert_allclose(ours["candidate_scores"], theirs["candidate_scores"], atol=1e-4)


@pytest.mark.slow
def test_the_cache_is_shared_by_both_backends(bert_encoder, tmp_path):
    options = {
        "dense_model": bert_encoder,
        "pooling": "mean",
        "cache_dir": str(tmp_path / "cache"),
        "device": "cpu",
    }
    build_retriever("dense", PASSAGES, **options)
    shards = {path: path.stat().st_mtime_ns for path in (tmp_path / "cache").rglob("*") if path.is_file()}
    retriever = build_retriever("dense", PASSAGES, backend="onnx", **options)
    assert {path: path.stat().st_mtime_ns for path in shards} == shards  # read, not encoded again
    assert [hits.indices[0] for hits in retriever.search(PASSAGES[:3], 1)] == [0, 1, 2]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backend": "tensorrt"}, r"--retriever-backend must be one of torch, onnx, got 'tensorrt'"),
        (
            {"backend": "onnx", "dtype": "float16"},
            r"--retriever-backend onnx runs float32; --retriever-dtype float16",
        ),
    ],
)
def test_bad_backend_arguments_are_one_error_before_loading(bert_encoder, options, message):
    with pytest.raises(InputError, match=message):
        Embedder(bert_encoder, "mean", **options)


def test_an_unknown_backend_on_the_command_line_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["candidates", "--queries", "q.jsonl", "--corpus", "c.jsonl", "--out", str(tmp_path / "o.jsonl"),
              "--retriever", "dense", "--dense-model", "m", "--retriever-backend", "tensorrt"])  # fmt: skip
    assert exit_info.value.code == 2
    assert "--retriever-backend: invalid choice: 'tensorrt'" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()
