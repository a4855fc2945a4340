"""prepare squad / candidates on a small SQuAD-format fixture: split, negatives, forcing, determinism, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_jsonl

from reranker.core.errors import InputError
from reranker.preparation.retrievers import open_retriever
from reranker.preparation.retrievers.bm25 import BM25Index, bigram_tokens, whitespace_tokens
from reranker.preparation.squad_reader import chunk_paragraph, read_squad, split_by_title
from reranker.prepare import main

CITIES = ["서울", "부산", "대구", "인천", "광주", "대전", "울산", "수원"]


def make_squad() -> dict:
    """Eight articles, each two paragraphs of four sentences; one question per paragraph."""
    data = []
    for a, city in enumerate(CITIES):
        paragraphs = []
        for p in range(2):
            sentences = [
                f"{city}의 인구는 {100 + a}{p}만 명이다.",
                f"{city}에는 {city}역{p}이 있다.",
                f"{city} 시장은 {city}시청{p}에서 일한다.",
                f"{city}의 명물은 음식{a}{p}이다.",
            ]
            context = " ".join(sentences)
            answer = f"음식{a}{p}"
            paragraphs.append(
                {
                    "context": context,
                    "qas": [
                        {
                            "id": f"q{a}-{p}",
                            "question": f"{city}의 명물 {p}번은 무엇인가?",
                            "answers": [{"text": answer, "answer_start": context.index(answer)}],
                        }
                    ],
                }
            )
        data.append({"title": f"{city} 문서", "paragraphs": paragraphs})
    return {"version": "test", "data": data}


@pytest.fixture
def squad_file(tmp_path) -> Path:
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(make_squad(), ensure_ascii=False), encoding="utf-8")
    return path


def run_squad(squad_file: Path, out: Path, *extra: str) -> None:
    main(
        ["squad", str(squad_file), "--out", str(out), "--sentences-per-passage", "2", "--eval-fraction", "0.25",
         "--val-fraction", "0.25", "--val-candidates", "3", "--num-random-negatives", "2",
         "--num-hard-negatives", "2", "--hard-negative-window", "1", "10", *extra]
    )  # fmt: skip


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_chunking_and_gold_passage(squad_file):
    context = make_squad()["data"][0]["paragraphs"][0]["context"]
    spans = chunk_paragraph(context, 2)
    assert [context[s:e].count(".") for s, e in spans] == [2, 2]
    article = read_squad(squad_file, sentences_per_passage=2)[0]
    assert [p.id for p in article.passages] == ["0-0-0", "0-0-1", "0-1-0", "0-1-1"]
    # The answer is in the fourth sentence, so the gold is the second 2-sentence passage.
    assert article.questions[0].pos_ids == ["0-0-1"]
    assert "음식00" in article.passages[1].text


def test_split_is_title_disjoint_and_negatives_bear_no_answer(squad_file, tmp_path):
    run_squad(squad_file, tmp_path / "out")
    train = read_jsonl(tmp_path / "out" / "train.jsonl")
    val = read_jsonl(tmp_path / "out" / "val.jsonl")
    corpus = read_jsonl(tmp_path / "out" / "eval" / "corpus.jsonl")
    queries = read_jsonl(tmp_path / "out" / "eval" / "queries.jsonl")
    city_of = {text: city for city in CITIES for text in [city]}
    sides = {
        "train": {c for r in train for c in CITIES if r["query"].startswith(c)},
        "val": {c for r in val for c in CITIES if r["query"].startswith(c)},
        "eval": {p["title"].split()[0] for p in corpus},
    }
    assert len(city_of) == 8 and sum(len(s) for s in sides.values()) == 8
    assert not (
        sides["train"] & sides["eval"] or sides["train"] & sides["val"] or sides["val"] & sides["eval"]
    )
    train_texts = {t for r in train for t in r["pos"] + r["neg"]}
    assert not train_texts & {p["text"] for p in corpus}
    assert len(queries) == 2 * len(sides["eval"])
    answers = {q["question"]: q["answers"][0]["text"] for a in make_squad()["data"] for p in a["paragraphs"] for q in p["qas"]}  # fmt: skip
    for record in train + val:
        answer = answers[record["query"]]
        assert all(answer in pos for pos in record["pos"])
        assert record["neg"] and not any(answer in neg for neg in record["neg"])
        assert len(set(record["neg"])) == len(record["neg"])


def test_first_stage_scores_give_each_training_text_its_bm25_score_and_change_nothing_else(
    squad_file, tmp_path
):
    run_squad(squad_file, tmp_path / "plain")
    run_squad(squad_file, tmp_path / "scored", "--first-stage-scores")
    plain, scored = (read_jsonl(tmp_path / name / "train.jsonl") for name in ("plain", "scored"))
    assert [{k: r[k] for k in ("query", "pos", "neg")} for r in scored] == plain
    assert all("pos_first_stage" not in r for r in plain)
    # The scores are BM25's over the training side's passages (bigram tokens, the default).
    sides = split_by_title(read_squad(squad_file, 2), {"eval": 0.25, "val": 0.25}, 42)
    passages = [p.text for article in sides["train"] for p in article.passages]
    bm25 = open_retriever("bm25", passages, {"bm25_tokenizer": "bigram"})
    for record in scored:
        texts = record["pos"] + record["neg"]
        (expected,) = bm25.score([record["query"]], [[passages.index(t) for t in texts]])
        assert record["pos_first_stage"] + record["neg_first_stage"] == pytest.approx(expected)
    for name in ("val.jsonl", "eval/queries.jsonl", "eval/corpus.jsonl"):
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "scored" / name).read_bytes()
    for record in scored:
        assert len(record["pos_first_stage"]) == len(record["pos"])
        assert len(record["neg_first_stage"]) == len(record["neg"])
        # Hard negatives come first, from the first stage's top ranks: they score above the random ones.
        assert record["neg_first_stage"][0] >= record["neg_first_stage"][-1]
    with pytest.raises(SystemExit, match="--first-stage-scores needs a first stage"):
        main(["squad", str(squad_file), "--out", str(tmp_path / "x"), "--first-stage-scores"])


def test_outputs_are_byte_identical_for_the_same_seed(squad_file, tmp_path):
    run_squad(squad_file, tmp_path / "a")
    run_squad(squad_file, tmp_path / "b")
    run_squad(squad_file, tmp_path / "c", "--seed", "7")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.jsonl"))
    assert len(files) == 4
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    assert any((tmp_path / "a" / f).read_bytes() != (tmp_path / "c" / f).read_bytes() for f in files)
    for name in ("a", "b"):
        eval_dir = tmp_path / name / "eval"
        main(["candidates", "--queries", str(eval_dir / "queries.jsonl"), "--corpus", str(eval_dir / "corpus.jsonl"),
              "--out", str(eval_dir / "candidates.jsonl"), "--top-k", "3"])  # fmt: skip
    first, second = (tmp_path / n / "eval" / "candidates.jsonl" for n in ("a", "b"))
    assert first.read_bytes() == second.read_bytes()


def test_candidates_keep_a_miss_as_retrieved_and_force_the_gold_in_only_when_asked(tmp_path):
    corpus = [
        {"id": f"p{i}", "text": text}
        for i, text in enumerate(["사과 는 빨갛다", "바나나 는 노랗다", "포도 는 보라색"])
    ]
    queries = [
        {"qid": "hit", "query": "사과 색", "pos_ids": ["p0"]},
        {"qid": "miss", "query": "바나나 색", "pos_ids": ["p2"]},
    ]
    for name, records in (("corpus", corpus), ("queries", queries)):
        (tmp_path / f"{name}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        )
    command = ["candidates", "--queries", str(tmp_path / "queries.jsonl"), "--corpus",
               str(tmp_path / "corpus.jsonl"), "--out", str(tmp_path / "out.jsonl"), "--top-k", "2"]  # fmt: skip
    main(command)
    hit, miss = read_jsonl(tmp_path / "out.jsonl")
    assert hit["candidate_ids"][0] == "p0" and hit["forced"] is False
    # The first stage's own list: the gold p2 is not in it, and evaluate counts the query as a miss.
    assert "p2" not in miss["candidate_ids"] and miss["forced"] is False
    main([*command, "--force-gold"])
    hit, miss = read_jsonl(tmp_path / "out.jsonl")
    assert hit["candidate_ids"][0] == "p0" and hit["forced"] is False
    assert miss["candidate_ids"][-1] == "p2" and miss["forced"] is True


def test_validation_leaves_out_questions_whose_gold_the_first_stage_missed(squad_file, tmp_path, capsys):
    # One validation candidate: a question stays only where the first stage ranks its gold first.
    run_squad(squad_file, tmp_path / "kept", "--val-candidates", "1", "--force-gold")
    forced = json.loads(capsys.readouterr().out)
    run_squad(squad_file, tmp_path / "default", "--val-candidates", "1")
    default = json.loads(capsys.readouterr().out)
    kept, left = (read_jsonl(tmp_path / name / "val.jsonl") for name in ("kept", "default"))
    assert (
        forced["val"] == len(kept)
        and default["val"] == len(left)
        and forced["val_missed_by_first_stage"] == 0
    )
    assert 0 < len(left) < len(kept) and default["val_missed_by_first_stage"] == len(kept) - len(left)
    # Left out, not changed: the other groups, the training triplets and the evaluation side are the same.
    assert all(group in kept for group in left)
    for name in ("train.jsonl", "eval/queries.jsonl", "eval/corpus.jsonl"):
        assert (tmp_path / "kept" / name).read_bytes() == (tmp_path / "default" / name).read_bytes()


def test_bm25_tokenizers_and_tie_order():
    assert whitespace_tokens("서울에는 한강이, 흐른다!") == ["서울에는", "한강이", "흐른다"]
    assert bigram_tokens("서울에는 강") == ["서울", "울에", "에는", "강"]
    index = BM25Index(["서울 한강", "서울 한강", "부산 바다"], "bigram")
    assert index.search("서울의 한강", 3) == [0, 1, 2]


@pytest.mark.slow
def test_candidates_with_the_kiwi_tokenizer_match_morphemes(tmp_path):
    # "먹었다" shares the stem 먹 with p0 and only the ending 었다 with p1: kiwi's morphemes find p0, bigrams p1.
    corpus = [{"id": "p0", "text": "먹는 음식은 맛있다"}, {"id": "p1", "text": "갔었다 왔었다 있었다"}]
    queries = [{"qid": "q", "query": "먹었다", "pos_ids": ["p0"]}]
    write_jsonl(tmp_path / "corpus.jsonl", corpus)
    write_jsonl(tmp_path / "queries.jsonl", queries)
    for tokenizer, first in (("kiwi", "p0"), ("bigram", "p1")):
        out = tmp_path / f"{tokenizer}.jsonl"
        main(["candidates", "--queries", str(tmp_path / "queries.jsonl"), "--corpus", str(tmp_path / "corpus.jsonl"),
              "--out", str(out), "--top-k", "2", "--bm25-tokenizer", tokenizer])  # fmt: skip
        (record,) = read_jsonl(out)
        assert record["candidate_ids"] == [first, *({"p0", "p1"} - {first})], tokenizer


def one_paragraph(context: str, qas: list[dict]) -> dict:
    """A SQuAD document with one article of one paragraph."""
    return {"data": [{"title": "A", "paragraphs": [{"context": context, "qas": qas}]}]}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"version": 1}, "field 'data' must be a list"),
        ({"data": [{"title": "A"}]}, "data[0]: field 'paragraphs' must be a list"),
        (
            one_paragraph("x", [{"id": "1", "question": "q", "answers": [{"text": "y", "answer_start": 0}]}]),
            "qas[0].answers[0]: 'answer_start' 0 does not point at 'y'",
        ),
        (
            one_paragraph(
                "x", [{"id": "1", "question": "q", "answers": [{"text": "x", "answer_start": 0}]}] * 2
            ),
            "qas[1]: duplicate question id '1'",
        ),
    ],
)
def test_bad_squad_files_name_the_field(tmp_path, document, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_squad(path)
    with pytest.raises(SystemExit, match="^error: .*bad.json"):
        main(["squad", str(path), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
