"""``prepare translate``: the aws backend through a real boto3 client with botocore's Stubber, the hf backend
with a tiny random Marian model (the real ``generate`` path), the cache, and bad input."""

from __future__ import annotations

import json
import sqlite3

import boto3
import pytest
from botocore.stub import Stubber
from conftest import write_jsonl
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import MarianConfig, MarianMTModel, PreTrainedTokenizerFast

from reranker.preparation.translation import aws as translate_aws
from reranker.preparation.translation.driver import split_by_bytes
from reranker.prepare import main

RECORDS = [
    {"query": "what is a cat", "pos": ["A cat is an animal."], "neg": ["Dogs bark.", "Birds fly."]},
    {"query": "what do dogs do", "pos": ["Dogs bark."], "neg": ["A cat is an animal."], "pos_scores": [1.5]},
]
UNIQUE = ["what is a cat", "A cat is an animal.", "Dogs bark.", "Birds fly.", "what do dogs do"]


def fake(text: str) -> str:
    return f"<ko>{text}</ko>"


def ok(stubber: Stubber, text: str) -> None:
    expected = {"Text": text, "SourceLanguageCode": "en", "TargetLanguageCode": "ko"}
    response = {"TranslatedText": fake(text), "SourceLanguageCode": "en", "TargetLanguageCode": "ko"}
    stubber.add_response("translate_text", response, expected)


def error(stubber: Stubber, code: str, text: str) -> None:
    expected = {"Text": text, "SourceLanguageCode": "en", "TargetLanguageCode": "ko"}
    stubber.add_client_error("translate_text", code, "no", http_status_code=400, expected_params=expected)


class FakeTime:
    """A clock that moves only when the backend sleeps (no real waiting in tests)."""

    def __init__(self) -> None:
        self.now, self.sleeps = 0.0, []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def aws(monkeypatch):
    """A real boto3 Translate client behind a Stubber; the command's ``boto3.client`` returns it."""
    client = boto3.client(
        "translate", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    stubber = Stubber(client)
    stubber.activate()
    monkeypatch.setattr(boto3, "client", lambda *args, **kwargs: client)
    clock = FakeTime()
    monkeypatch.setattr(translate_aws, "time", clock)
    yield stubber, clock
    stubber.deactivate()


def run(tmp_path, *extra: str, name: str = "out.jsonl") -> str:
    source = write_jsonl(tmp_path / "in.jsonl", RECORDS)
    out = tmp_path / name
    main(["translate", str(source), "--out", str(out), "--cache", str(tmp_path / "cache.sqlite"),
          "--concurrency", "1", *extra])  # fmt: skip
    return out.read_text(encoding="utf-8")


def test_aws_translates_each_unique_text_once_and_keeps_other_fields(tmp_path, aws):
    stubber, _ = aws
    for text in UNIQUE:
        ok(stubber, text)
    records = [json.loads(line) for line in run(tmp_path).splitlines()]
    stubber.assert_no_pending_responses()
    assert records[0] == {
        k: ([fake(t) for t in v] if isinstance(v, list) else fake(v)) for k, v in RECORDS[0].items()
    }
    assert records[1]["neg"] == [fake("A cat is an animal.")] and records[1]["pos_scores"] == [1.5]


def test_aws_retries_throttling_then_succeeds(tmp_path, aws, monkeypatch):
    stubber, clock = aws
    # Jitter at its top: each wait is the whole back-off delay, which doubles from 1 s.
    monkeypatch.setattr(translate_aws.random, "uniform", lambda low, high: high)
    error(stubber, "ThrottlingException", UNIQUE[0])
    error(stubber, "ServiceUnavailableException", UNIQUE[0])
    error(stubber, "ThrottlingException", UNIQUE[0])
    for text in UNIQUE:
        ok(stubber, text)
    records = [json.loads(line) for line in run(tmp_path).splitlines()]
    stubber.assert_no_pending_responses()
    assert records[0]["query"] == fake(UNIQUE[0])
    assert clock.sleeps == [1.0, 2.0, 4.0]  # backed off, then grew


def test_aws_splits_a_passage_over_the_size_limit_and_joins_the_parts(tmp_path, aws):
    stubber, _ = aws
    long = "First sentence here. Second sentence is here! Third one, 한국어 글자."
    parts = split_by_bytes(long, 40)
    assert parts == ["First sentence here.", "Second sentence is here!", "Third one, 한국어 글자."]
    assert all(len(p.encode()) <= 40 for p in parts)
    source = write_jsonl(tmp_path / "in.jsonl", [{"query": "q", "pos": [long]}])
    ok(stubber, "q")
    for part in parts:
        ok(stubber, part)
    out = tmp_path / "out.jsonl"
    main(["translate", str(source), "--out", str(out), "--concurrency", "1", "--max-request-bytes", "40"])
    stubber.assert_no_pending_responses()
    assert json.loads(out.read_text())["pos"] == [" ".join(fake(p) for p in parts)]


def test_an_interrupted_run_resumes_without_sending_a_text_twice(tmp_path, aws, capsys):
    stubber, _ = aws
    ok(stubber, UNIQUE[0])
    ok(stubber, UNIQUE[1])
    error(stubber, "AccessDeniedException", UNIQUE[2])  # not retryable: the run stops here
    with pytest.raises(SystemExit, match="^error: Amazon Translate refused a request: AccessDeniedException"):
        run(tmp_path, "--chunk-size", "1")
    assert not (tmp_path / "out.jsonl").exists()
    for text in UNIQUE[2:]:
        ok(stubber, text)  # only the texts the stopped run had not finished; a repeat fails the stub
    capsys.readouterr()
    first = run(tmp_path, "--chunk-size", "1")
    assert "5 unique texts, 2 already in the cache" in capsys.readouterr().err
    stubber.assert_no_pending_responses()
    assert first == run(tmp_path, name="again.jsonl")  # all from the cache: no request, the same bytes


def test_throttling_that_never_ends_gives_up_in_bounded_time_and_keeps_the_cache(tmp_path, aws):
    stubber, clock = aws
    ok(stubber, UNIQUE[0])
    for _ in range(20):
        error(stubber, "ThrottlingException", UNIQUE[1])
    with pytest.raises(SystemExit, match="kept failing \\(ThrottlingException\\) for 10 s; gave up"):
        run(tmp_path, "--max-retry-seconds", "10", "--chunk-size", "1")
    assert clock.now <= 10
    with sqlite3.connect(tmp_path / "cache.sqlite") as db:
        assert [v for (v,) in db.execute("SELECT value FROM cache")] == [fake(UNIQUE[0])]


def test_an_empty_translation_is_an_error(tmp_path, aws):
    stubber, _ = aws
    stubber.add_response("translate_text", {"TranslatedText": " ", "SourceLanguageCode": "en",
                                            "TargetLanguageCode": "ko"})  # fmt: skip
    with pytest.raises(
        SystemExit, match="^error: backend aws returned an empty translation for 'what is a cat'"
    ):
        run(tmp_path, "--chunk-size", "1")
    assert not (tmp_path / "out.jsonl").exists()


def test_dry_run_prints_the_characters_and_sends_nothing(tmp_path, aws, capsys):
    source = write_jsonl(tmp_path / "in.jsonl", RECORDS)
    main(["translate", str(source), "--out", str(tmp_path / "o.jsonl"), "--dry-run"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["characters_to_send"] == sum(map(len, UNIQUE)) and summary["unique_texts"] == 5
    assert not (tmp_path / "o.jsonl").exists()


def test_ms_marco_files_and_their_errors(tmp_path, aws, capsys):
    triples = tmp_path / "triples.tsv"
    triples.write_text(
        "what is a cat\tA cat is an animal.\tDogs bark.\nwhat is a cat\tA cat is an animal.\tBirds fly.\n"
    )
    main(["translate", str(triples), "--out", str(tmp_path / "t.jsonl"), "--dry-run"])
    assert json.loads(capsys.readouterr().out)["unique_texts"] == 4  # one triplet, two negatives
    (tmp_path / "bad.tsv").write_text("q\tp\tn\nq\tp\n")
    with pytest.raises(SystemExit, match="bad.tsv, line 2: expected 3 tab-separated fields"):
        main(["translate", str(tmp_path / "bad.tsv"), "--out", str(tmp_path / "b.jsonl")])
    (tmp_path / "queries.tsv").write_text("1\twhat is a cat\n2\twhat do dogs do\n")
    (tmp_path / "collection.tsv").write_text("10\tA cat is an animal.\n11\tDogs bark.\n")
    (tmp_path / "qrels.tsv").write_text("1\t0\t10\t1\n2\t0\t12\t1\n")
    args = ["--queries", str(tmp_path / "queries.tsv"), "--collection", str(tmp_path / "collection.tsv"),
            "--qrels", str(tmp_path / "qrels.tsv"), "--out", str(tmp_path / "m.jsonl"), "--dry-run"]  # fmt: skip
    with pytest.raises(SystemExit, match="qrels.tsv, line 2: passage id '12' is not in the corpus"):
        main(["translate", *args])
    (tmp_path / "qrels.tsv").write_text("1\t0\t10\t1\n2\t0\t11\t1\n")
    main(["translate", *args])
    characters = len("what is a catA cat is an animal.what do dogs doDogs bark.")
    assert json.loads(capsys.readouterr().out) == {
        "characters_to_send": characters,
        "triplets": 2,
        "unique_texts": 4,
    }


def _marian(path) -> str:
    """A tiny random Marian translation model whose decoder can only emit word tokens."""
    words = "what is a cat an animal dogs bark birds fly do . ? 고양이 개 새 무엇".split()
    specials = ["<pad>", "</s>", "<unk>"]
    vocab = {token: i for i, token in enumerate(specials + words)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    config = MarianConfig(
        vocab_size=len(vocab), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, forced_eos_token_id=None,
    )  # fmt: skip
    model = MarianMTModel(config)
    model.final_logits_bias[0, :3] = -1e4  # never <pad>, </s> or <unk>: every output is non-empty text
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return str(path)


def test_hf_backend_generates_with_a_tiny_marian_model(tmp_path, capsys):
    model = _marian(tmp_path / "marian")
    source = write_jsonl(tmp_path / "in.jsonl", RECORDS)
    args = ["translate", str(source), "--backend", "hf", "--model", model, "--max-length", "5", "--batch-size", "2",
            "--cache", str(tmp_path / "c.sqlite")]  # fmt: skip
    main([*args, "--out", str(tmp_path / "a.jsonl")])
    records = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    texts = [records[0]["query"], *records[0]["pos"], *records[0]["neg"]]
    assert all(len(t.split()) == 5 for t in texts)  # max_length new tokens, all words
    assert records[1]["neg"] == records[0]["pos"]  # the same text, the same translation
    capsys.readouterr()
    main([*args, "--out", str(tmp_path / "b.jsonl")])
    assert "5 already in the cache" in capsys.readouterr().err
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
