"""The scoring contract: a model trained at ``data.max_length=32``, ``data.query_max_length=8`` is scored
alike by validation and by every client of its checkpoint and export, none of them given a length.

sentence-transformers' ``CrossEncoder`` and the ``text-classification`` pipeline have no setting for
``query_max_length`` (they cut the longer text of a pair first): they are compared on queries of at most
8 tokens, where that rule cuts only the passage, as ours does.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import make_records, run_train_cli, spread_copy, write_jsonl
from omegaconf import OmegaConf
from sentence_transformers import CrossEncoder
from transformers import pipeline

from reranker import Reranker
from reranker.model.checkpoint import load_checkpoint
from reranker.model.kinds import ModelKind, Scorer
from reranker.model.loading import load_tokenizer
from reranker.preparation.prepare import main as prepare_main
from reranker.scoring.pairs import score_pairs
from reranker.serving.export import export_checkpoint
from reranker.serving.model_card import render_model_card

MAX_LENGTH, QUERY_MAX_LENGTH = 32, 8
OLD_CHECKPOINT = Path(__file__).parent / "fixtures" / "old_checkpoint.ckpt"
PASSAGES = [
    "서울은 대한민국의 수도이다 서울에는 한강이 흐른다 " * 10,
    "김치는 배추로 만든다 김치는 발효 음식이다 " * 10,
    "부산은 항구 도시이다 부산에는 해운대 해수욕장이 있다 " * 10,
]
SHORT_QUERY = "서울은 어디"
LONG_QUERY = "대한민국의 수도 서울에 대한 질문 김치와 부산과 해운대에 대한 질문 " * 3


def long_records() -> list[dict]:
    """The fixture records with passages (and every other query) far longer than the recorded lengths."""
    records = []
    for index, record in enumerate(make_records()):
        query = record["query"] + (" 그리고 " + record["query"]) * 4 if index % 2 else record["query"]
        records.append(
            {
                "query": query,
                "pos": [(text + " ") * 8 for text in record["pos"]],
                "neg": [(text + " ") * 8 for text in record["neg"]],
            }
        )
    return records


def train_long_run(model_dir: str, root: Path) -> Path:
    base = spread_copy(model_dir, root / "base")
    records = long_records()
    train = write_jsonl(root / "train.jsonl", records[::2])
    val = write_jsonl(root / "val.jsonl", records[1::2])
    run_dir = root / "run"
    result = run_train_cli(
        f"model.model_name_or_path={base}",
        f"data.train_files={train}",
        f"data.val_files={val}",
        f"hydra.run.dir={run_dir}",
        "data.group_size=3",
        "data.batch_size=4",
        f"data.max_length={MAX_LENGTH}",
        f"data.query_max_length={QUERY_MAX_LENGTH}",
        "data.num_workers=0",
        "model.lr=1e-3",
        "trainer.max_epochs=1",
        "callbacks.progress_bar=null",
        "logger=none",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module", params=["tiny_bert", "tiny_xlmr"])
def long_run(request, tmp_path_factory) -> Path:
    return train_long_run(request.getfixturevalue(request.param), tmp_path_factory.mktemp(request.param))


def pairs(query: str) -> list[tuple[str, str]]:
    return [(query, passage) for passage in PASSAGES]


def validation_scores(run_dir: Path, checkpoint: Path, scored: list[tuple[str, str]]) -> list[float]:
    """Scores as validation computes them: the run's configured lengths, its encoder and the module's Scorer."""
    config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    loaded = load_checkpoint(checkpoint)
    tokenizer = load_tokenizer(config.model.model_name_or_path)
    encoder = loaded.kind.encoder(tokenizer, config.data.max_length, config.data.query_max_length)
    features = encoder([query for query, _ in scored], [passage for _, passage in scored])
    with torch.no_grad():
        return Scorer(loaded.kind, tokenizer, config.model.forward_max_tokens)(
            loaded.model, features
        ).tolist()


def teacher_scores(model: Path, scored: list[tuple[str, str]], tmp_path: Path) -> list[float]:
    """``reranker prepare teacher``'s scores (the scorer ``prepare mine --filter-model`` uses too)."""
    records = [{"query": query, "pos": [passage], "neg": []} for query, passage in scored]
    source, out = write_jsonl(tmp_path / "pairs.jsonl", records), tmp_path / "scored.jsonl"
    prepare_main(["teacher", str(source), "--model", str(model), "--out", str(out), "--device", "cpu"])
    return [json.loads(line)["pos_scores"][0] for line in out.read_text(encoding="utf-8").splitlines()]


def assert_close(client: list[float], expected: list[float]) -> None:
    assert client == pytest.approx(expected, abs=1e-5)


@pytest.mark.slow
def test_every_client_scores_as_validation_without_being_given_a_length(long_run, tmp_path, capsys):
    checkpoint = next((long_run / "checkpoints").glob("step*.ckpt"))
    export = long_run / "export"
    tokenizer = load_tokenizer(export)
    assert len(tokenizer(SHORT_QUERY, add_special_tokens=False)["input_ids"]) <= QUERY_MAX_LENGTH
    assert len(tokenizer(LONG_QUERY, add_special_tokens=False)["input_ids"]) > 3 * QUERY_MAX_LENGTH
    assert all(len(tokenizer(text)["input_ids"]) > MAX_LENGTH + 8 for text in PASSAGES)
    assert json.loads((export / "reranker.json").read_text()) == {
        "format": 1,
        "kind": ModelKind().to_config(),
        "max_length": MAX_LENGTH,
        "query_max_length": QUERY_MAX_LENGTH,
        "truncation": f"the query to {QUERY_MAX_LENGTH} tokens, then only the passage",
        "truncation_side": "right",
        "model_max_length": 128,
        "normalization": "none",
        "fusion": None,
    }
    for query in (SHORT_QUERY, LONG_QUERY):
        scored = pairs(query)
        expected = validation_scores(long_run, checkpoint, scored)
        assert_close(Reranker(checkpoint, device="cpu").score(scored), expected)
        assert_close(Reranker(export, device="cpu").score(scored), expected)
        assert_close(score_pairs(export, scored, device="cpu"), expected)
        assert_close(teacher_scores(export, scored, tmp_path), expected)
        assert_close(teacher_scores(checkpoint, scored, tmp_path), expected)
    assert "max_length" not in capsys.readouterr().err  # nothing overridden, nothing missing

    scored = pairs(SHORT_QUERY)
    expected = validation_scores(long_run, checkpoint, scored)
    cross_encoder = CrossEncoder(str(export), device="cpu")
    assert_close(cross_encoder.predict(scored).tolist(), expected)
    classifier = pipeline("text-classification", model=str(export), device="cpu")
    results = classifier(
        [{"text": query, "text_pair": passage} for query, passage in scored], truncation=True
    )
    assert_close([result["score"] for result in results], expected)


@pytest.mark.slow
def test_a_given_length_overrides_the_record_and_says_so(long_run, capsys):
    export = long_run / "export"
    reranker = Reranker(export, max_length=64, device="cpu")
    assert (reranker.max_length, reranker.query_max_length) == (64, QUERY_MAX_LENGTH)
    assert capsys.readouterr().err.strip().splitlines() == [
        f"{export}: scoring with max_length 64 (recorded: {MAX_LENGTH})"
    ]
    assert Reranker(export, device="cpu").score(pairs(SHORT_QUERY)) != pytest.approx(
        reranker.score(pairs(SHORT_QUERY)), abs=1e-5
    )


@pytest.mark.slow
def test_a_checkpoint_written_before_the_record_loads_with_the_old_defaults(tmp_path, capsys):
    # Its model has 64 positions: pairs that fit them.
    scored = [(SHORT_QUERY, passage.split("다 ")[0]) for passage in PASSAGES]
    reranker = Reranker(OLD_CHECKPOINT, device="cpu")
    # As before the record: 512 capped at the tokenizer's limit (128), no query_max_length.
    assert (reranker.max_length, reranker.query_max_length) == (128, None)
    assert capsys.readouterr().err.strip().splitlines() == [
        f"{OLD_CHECKPOINT} records no scoring lengths (written before they were recorded): "
        "max_length 512, query_max_length None"
    ]
    loaded = load_checkpoint(OLD_CHECKPOINT)
    encoder = loaded.kind.encoder(loaded.tokenizer, 128)
    features = encoder(*zip(*scored, strict=True))
    assert features["input_ids"].shape[1] <= 64
    with torch.no_grad():
        expected = loaded.model(**features).logits.view(-1).tolist()
    assert_close(reranker.score(scored), expected)

    export = export_checkpoint(OLD_CHECKPOINT, tmp_path / "export")
    assert json.loads((export / "reranker.json").read_text())["max_length"] is None
    assert_close(Reranker(export, device="cpu").score(scored), expected)
    # An export written before reranker.json held the lengths: the kind alone.
    (export / "reranker.json").write_text(json.dumps({"kind": ModelKind().to_config()}))
    assert_close(Reranker(export, device="cpu").score(scored), expected)
    shutil.rmtree(export)


def test_a_yes_no_decoder_card_is_not_text_classification():
    kind = {"form": "yes_no", "query_template": "Q: {query}", "passage_template": "\nP: {passage}\nA:"}
    card = render_model_card("me/model", "Qwen/Qwen3-0.6B", {"kind": kind}, 10)
    assert card.startswith("---\nlibrary_name: transformers\npipeline_tag: text-ranking\n")
    assert "text-classification" not in card
    assert "logit(yes) - logit(no)" in card
