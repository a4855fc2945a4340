"""The passage-embedding cache: reused while unchanged, rebuilt (saying why) when the corpus, model or an
option changes, resumed from whole shards after a killed encoding, filled by several workers."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from test_dense import PASSAGES, QUERIES
from transformers import AutoConfig, AutoModel

from reranker.preparation.retrievers import dense as dense_module
from reranker.preparation.retrievers.dense import DenseRetriever, encode_share
from reranker.preparation.retrievers.embedder import Embedder

pytest.importorskip("faiss")

# Its tests encode corpora with tiny models, some in worker processes.
pytestmark = pytest.mark.slow

OPTIONS = dict(pooling="mean", passage_prefix="passage: ", shard_size=4)  # 18 passages: 5 shards


class Calls:
    """Counts the encoder's calls (while a retriever is built: one per shard) and the texts encoded."""

    def __init__(self, monkeypatch, fail_after: int | None = None) -> None:
        self.calls, self.passages, self.fail_after = 0, 0, fail_after
        original = Embedder.encode

        def encode(embedder, texts, prefix="", progress=None):
            if self.fail_after is not None and self.calls == self.fail_after:
                raise KeyboardInterrupt  # the process killed while encoding this shard
            self.calls += 1
            self.passages += len(texts)
            return original(embedder, texts, prefix, progress)

        monkeypatch.setattr(Embedder, "encode", encode)


def rankings(retriever: DenseRetriever) -> list[tuple[list[int], list[float]]]:
    return [(h.indices, h.scores) for h in retriever.search(QUERIES, 6)]


def test_an_unchanged_cache_is_reused(bert_encoder, tmp_path, monkeypatch, capsys):
    uncached = rankings(DenseRetriever(PASSAGES, bert_encoder, **OPTIONS))
    calls = Calls(monkeypatch)
    first = DenseRetriever(PASSAGES, bert_encoder, cache_dir=str(tmp_path), **OPTIONS)
    assert (calls.calls, calls.passages) == (5, len(PASSAGES))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"] + [
        f"shard-{n:05d}.npy" for n in range(5)
    ]
    assert np.load(tmp_path / "shard-00000.npy").dtype == np.float16
    second = DenseRetriever(PASSAGES, bert_encoder, cache_dir=str(tmp_path), **OPTIONS)
    assert calls.calls == 5  # nothing encoded again
    assert rankings(first) == rankings(second) == uncached
    assert "embedding cache" not in capsys.readouterr().err


def changed_weights(model_dir: str) -> None:
    """Overwrite the model's weights in place with other random weights (same files, same config)."""
    torch.manual_seed(1)
    config = AutoConfig.from_pretrained(model_dir)
    AutoModel.from_config(config).save_pretrained(model_dir)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("one passage", "corpus changed"),
        ("passage order", "corpus changed"),
        ("passage prefix", "options changed"),
        ("pooling", "options changed"),
        ("max length", "options changed"),
        ("weights", "model changed"),
    ],
)
def test_a_change_is_detected_and_the_cache_rebuilt(
    bert_encoder, tmp_path, monkeypatch, capsys, change, reason
):
    model = shutil.copytree(bert_encoder, tmp_path / "model")
    cache = str(tmp_path / "cache")
    DenseRetriever(PASSAGES, str(model), cache_dir=cache, **OPTIONS)
    passages, options = list(PASSAGES), dict(OPTIONS)
    if change == "one passage":
        passages[9] = "김치는 무로 만든다"
    elif change == "passage order":
        passages[0], passages[1] = passages[1], passages[0]
    elif change == "passage prefix":
        options["passage_prefix"] = "text: "
    elif change == "pooling":
        options["pooling"] = "cls"
    elif change == "max length":
        options["max_length"] = 5
    else:
        changed_weights(str(model))
    capsys.readouterr()
    calls = Calls(monkeypatch)
    rebuilt = DenseRetriever(passages, str(model), cache_dir=cache, **options)
    assert capsys.readouterr().err.splitlines() == [
        f"embedding cache {cache}: {reason}; encoding the corpus again"
    ]
    assert calls.calls == 5
    assert rankings(rebuilt) == rankings(DenseRetriever(passages, str(model), **options))


def test_a_killed_encoding_resumes_from_its_finished_shards(bert_encoder, tmp_path, monkeypatch, capsys):
    Calls(monkeypatch, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        DenseRetriever(PASSAGES, bert_encoder, cache_dir=str(tmp_path), **OPTIONS)
    assert sorted(p.name for p in tmp_path.glob("shard-*")) == ["shard-00000.npy", "shard-00001.npy"]
    # Left by other mishaps, all encoded again: a shard of the wrong length, a file cut short, a temp file.
    np.save(tmp_path / "shard-00003.npy", np.zeros((2, 32), dtype=np.float16))
    (tmp_path / "shard-00004.npy").write_bytes(b"\x93NUMPY cut short")
    (tmp_path / "shard-00004.npy.tmp-123").write_bytes(b"a temp file of a killed writer")
    capsys.readouterr()
    monkeypatch.undo()
    calls = Calls(monkeypatch)
    resumed = DenseRetriever(PASSAGES, bert_encoder, cache_dir=str(tmp_path), **OPTIONS)
    assert (calls.calls, calls.passages) == (3, len(PASSAGES) - 8)  # shards 2, 3 and 4
    assert "resuming" in capsys.readouterr().err
    assert rankings(resumed) == rankings(DenseRetriever(PASSAGES, bert_encoder, **OPTIONS))


def test_workers_fill_one_cache(bert_encoder, tmp_path, monkeypatch):
    options = {key: value for key, value in OPTIONS.items()}
    assert [encode_share(PASSAGES, bert_encoder, str(tmp_path), w, 2, **options) for w in (0, 1)] == [3, 2]
    calls = Calls(monkeypatch)
    retriever = DenseRetriever(PASSAGES, bert_encoder, cache_dir=str(tmp_path), **OPTIONS)
    assert calls.calls == 0
    assert rankings(retriever) == rankings(DenseRetriever(PASSAGES, bert_encoder, **OPTIONS))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["corpus"]["rows"] == len(PASSAGES) and manifest["options"]["pooling"] == "mean"
    assert set(manifest["model"]["files"]) >= {"config.json", "model.safetensors"}


def test_the_encode_command_fills_a_cache(bert_encoder, tmp_path, monkeypatch):
    from reranker.preparation.prepare import main

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"p{i}", "text": t}) + "\n" for i, t in enumerate(PASSAGES)))
    arguments = ["encode", "--corpus", str(corpus), "--dense-model", bert_encoder, "--pooling", "mean"]
    arguments += ["--passage-prefix", "passage: ", "--embedding-cache", str(tmp_path / "cache")]
    main(arguments)
    calls = Calls(monkeypatch)
    DenseRetriever(
        PASSAGES, bert_encoder, cache_dir=str(tmp_path / "cache"), pooling="mean", passage_prefix="passage: "
    )
    assert calls.calls == 0
    assert dense_module.SHARD_SIZE > len(PASSAGES)
