"""The dense first stage: pooling, prefixes, normalisation, exact search, k clamping, build_retriever."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import TOPICS
from transformers import AutoConfig, AutoModel, AutoTokenizer

from reranker.core.errors import InputError
from reranker.preparation.retrievers import build_retriever
from reranker.preparation.retrievers import embedder as embedder_module
from reranker.preparation.retrievers.dense import DenseRetriever
from reranker.preparation.retrievers.embedder import Embedder

PASSAGES = [sentence for sentences in TOPICS.values() for sentence in sentences]
QUERIES = ["서울의 인구는", "김치는 무엇으로 만드나", "바다에 섬이 많은 곳", "월드컵"]


def one_by_one(folder: str, texts: list[str], pooling: str) -> np.ndarray:
    """Unnormalised embeddings computed text by text, without padding: ``[N, D]``."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    rows = []
    with torch.no_grad():
        for text in texts:
            hidden = model(**tokenizer(text, return_tensors="pt")).last_hidden_state[0]  # [L, D]
            rows.append((hidden[0] if pooling == "cls" else hidden.mean(dim=0)).numpy())
    return np.stack(rows)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
@pytest.mark.slow
def test_pooling_matches_text_by_text_encoding(bi_encoder, pooling):
    # Batched by length with padding, then put back in order: the same as one text at a time.
    texts = ["짧다", *PASSAGES[:7], "아주 " * 20 + "긴 문장"]
    embedder = Embedder(bi_encoder, pooling, normalize=False, batch_size=3)
    expected = one_by_one(bi_encoder, texts, pooling)
    np.testing.assert_allclose(embedder.encode(texts), expected, atol=1e-4, rtol=1e-4)
    other = one_by_one(bi_encoder, texts, "cls" if pooling == "mean" else "mean")
    assert not np.allclose(embedder.encode(texts), other, atol=1e-3)


def test_a_model_without_pooling_is_an_error(bert_encoder):
    with pytest.raises(InputError, match=r"--pooling mean\|cls"):
        Embedder(bert_encoder)


@pytest.mark.slow
def test_normalisation(bert_encoder):
    raw = Embedder(bert_encoder, "mean", normalize=False).encode(PASSAGES)
    unit = Embedder(bert_encoder, "mean", normalize=True).encode(PASSAGES)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-2)
    np.testing.assert_allclose(unit, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-5)


class RecordingTokenizer:
    """A tokenizer that records the texts it is asked to tokenise."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer, self.texts = tokenizer, []

    def __call__(self, texts, **kwargs):
        self.texts += list(texts)
        return self.tokenizer(texts, **kwargs)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)


@pytest.mark.slow
def test_prefixes_reach_the_tokenizer(bert_encoder, monkeypatch):
    recorders = []

    def load(path):
        recorders.append(RecordingTokenizer(AutoTokenizer.from_pretrained(path)))
        return recorders[-1]

    monkeypatch.setattr(embedder_module, "load_tokenizer", load)
    retriever = DenseRetriever(
        PASSAGES, bert_encoder, pooling="mean", query_prefix="query: ", passage_prefix="passage: "
    )
    assert sorted(recorders[0].texts) == sorted(f"passage: {p}" for p in PASSAGES)
    recorders[0].texts.clear()
    retriever.search(QUERIES, 3)
    assert recorders[0].texts == [f"query: {q}" for q in QUERIES]


def brute_force(retriever: DenseRetriever, queries: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every query's full ranking by a plain dot product over the stored (float16) passage embeddings."""
    passages = retriever.embed_passages(PASSAGES).astype(np.float16).astype(np.float32)  # [N, D]
    scores = retriever.embed_queries(queries) @ passages.T  # [Q, N]
    order = np.stack([np.lexsort((np.arange(len(PASSAGES)), -row)) for row in scores])  # [Q, N]
    return order, np.take_along_axis(scores, order, axis=1)


@pytest.mark.parametrize("index", ["exact", "hnsw"])
@pytest.mark.slow
def test_search_equals_a_brute_force_dot_product(bi_encoder, index):
    retriever = DenseRetriever(PASSAGES, bi_encoder, pooling="mean", index=index)
    order, scores = brute_force(retriever, QUERIES)
    for hits, row_order, row_scores in zip(retriever.search(QUERIES, 5), order, scores, strict=True):
        assert hits.indices == row_order[:5].tolist()
        np.testing.assert_allclose(hits.scores, row_scores[:5], rtol=1e-5, atol=1e-6)
    chosen = [[3, 0, 17], [], [5], [1, 2]]
    expected = retriever.embed_queries(QUERIES) @ retriever.embed_passages(PASSAGES).astype(np.float16).T
    for row, (values, indices) in enumerate(zip(retriever.score(QUERIES, chosen), chosen, strict=True)):
        np.testing.assert_allclose(values, expected[row, indices].astype(np.float32), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_k_larger_than_the_corpus_is_clamped_and_said_once(bert_encoder, capsys):
    retriever = DenseRetriever(PASSAGES, bert_encoder, pooling="cls")
    capsys.readouterr()
    first = retriever.search(QUERIES, 1000)
    second = retriever.search(QUERIES[:1], 500)
    assert [len(h.indices) for h in first + second] == [len(PASSAGES)] * 5
    assert sorted(first[0].indices) == list(range(len(PASSAGES)))
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"k=1000 is more than the corpus's {len(PASSAGES)} passages; returning 18 per query"]


@pytest.mark.slow
def test_build_retriever_dense_end_to_end(xlmr_encoder, tmp_path):
    # Query and passage prefixes equal: a query that repeats a passage finds that passage first.
    retriever = build_retriever(
        "dense",
        PASSAGES,
        dense_model=xlmr_encoder,
        pooling="mean",
        query_prefix="text: ",
        passage_prefix="text: ",
        batch_size=4,
        max_length=64,
        cache_dir=str(tmp_path / "cache"),
        device="cpu",
        dtype="float32",
    )
    assert retriever.name == "dense"
    hits = retriever.search(PASSAGES, 2)
    assert [h.indices[0] for h in hits] == list(range(len(PASSAGES)))
    assert all(h.scores[0] == pytest.approx(1.0, abs=2e-3) and h.scores[0] > h.scores[1] for h in hits)
    assert (tmp_path / "cache" / "manifest.json").is_file()


def test_build_retriever_dense_needs_a_model():
    with pytest.raises(InputError, match="--dense-model"):
        build_retriever("dense", PASSAGES)


def sentence_transformers_folder(model_dir: str, path, pooling_config: dict) -> str:
    """The encoder as a sentence-transformers folder: modules.json and 1_Pooling/config.json."""
    shutil.copytree(model_dir, path)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (path / "modules.json").write_text(json.dumps(modules))
    (path / "1_Pooling").mkdir()
    (path / "1_Pooling" / "config.json").write_text(json.dumps(pooling_config))
    (path / "2_Normalize").mkdir()
    return str(path)


@pytest.mark.parametrize(
    ("config", "stated"),
    [
        ({"pooling_mode": "cls"}, "cls"),
        ({"pooling_mode": ["mean"]}, "mean"),
        ({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}, "cls"),
        ({"pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True}, "mean"),
    ],
)
@pytest.mark.slow
def test_pooling_read_from_a_sentence_transformers_folder(bert_encoder, tmp_path, config, stated):
    folder = sentence_transformers_folder(bert_encoder, tmp_path / "st", config)
    embedder = Embedder(folder, normalize=False)
    assert embedder.pooling == stated
    np.testing.assert_allclose(
        embedder.encode(PASSAGES[:4]), one_by_one(bert_encoder, PASSAGES[:4], stated), atol=1e-4, rtol=1e-4
    )


def test_unsupported_pooling_or_module_is_an_error(bert_encoder, tmp_path):
    folder = sentence_transformers_folder(bert_encoder, tmp_path / "st", {"pooling_mode": "max"})
    with pytest.raises(InputError, match="pooling_mode"):
        Embedder(folder)
    (tmp_path / "st" / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "mean"}))
    modules = json.loads((tmp_path / "st" / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"})
    (tmp_path / "st" / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(InputError, match="'Dense' is not supported"):
        Embedder(folder, pooling="mean")


@pytest.mark.slow
def test_embeddings_equal_sentence_transformers(bert_encoder, tmp_path):
    models = pytest.importorskip("sentence_transformers.models")
    from sentence_transformers import SentenceTransformer

    transformer = models.Transformer(bert_encoder, max_seq_length=64)
    pooling = models.Pooling(AutoConfig.from_pretrained(bert_encoder).hidden_size, "cls")
    folder = tmp_path / "st"
    SentenceTransformer(modules=[transformer, pooling]).save(str(folder))
    expected = SentenceTransformer(str(folder), device="cpu").encode(PASSAGES, normalize_embeddings=True)
    embedder = Embedder(str(folder), max_length=64)
    assert embedder.pooling == "cls"
    np.testing.assert_allclose(embedder.encode(PASSAGES), expected, atol=1e-5)
