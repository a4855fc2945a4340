import json

import pytest

from reranker.core.errors import InputError
from reranker.core.jsonl import read_jsonl
from reranker.core.triplets import read_triplets
from reranker.evaluation.evalsets import read_corpus, read_queries
from reranker.preparation.prepare import prepare_candidates

GOOD_TRIPLET = json.dumps({"query": "q", "pos": ["p"], "neg": ["n"]}, ensure_ascii=False)


def broken_utf8(path, first_line: str) -> int:
    """``first_line``, then a line with one byte that is not UTF-8; returns that byte's offset in the file."""
    head = (first_line + "\n").encode("utf-8")
    second = '{"query": "서울'.encode() + b"\xff" + b'", "pos": ["p"]}\n'
    path.write_bytes(head + second)
    return len(head) + second.index(b"\xff")


def test_yields_line_numbers_past_blank_lines_and_a_byte_order_mark(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('\ufeff{"a": 1}\n\n  \n{"a": 2}\n', encoding="utf-8")
    assert list(read_jsonl(path)) == [(1, {"a": 1}), (4, {"a": 2})]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"a": 1}\n{"a": \n', "line 2: not valid JSON (Expecting value at column 7)"),
        ('{"a": 1}\n[1, 2]\n', "line 2: expected a JSON object, got list"),
        ("\n\n", "file is empty"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "a.jsonl"
    path.write_text(content)
    with pytest.raises(InputError, match=r"^" + str(path)) as info:
        list(read_jsonl(path))
    assert message in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        list(read_jsonl(tmp_path / "none.jsonl"))


def test_broken_utf8_names_file_line_and_byte_offset(tmp_path):
    path = tmp_path / "train.jsonl"
    offset = broken_utf8(path, GOOD_TRIPLET)
    with pytest.raises(InputError) as info:
        read_triplets(path, cache_dir=str(tmp_path / "cache"))
    assert str(info.value).startswith(f"{path}, line 2: not valid UTF-8 (byte 0xff at byte offset {offset}")


def test_every_command_reader_reports_broken_utf8(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    broken_utf8(corpus, '{"id": "a", "text": "t"}')
    queries = tmp_path / "queries.jsonl"
    broken_utf8(queries, '{"qid": "1", "query": "q", "pos_ids": ["a"], "candidate_ids": ["a"]}')
    good_corpus = tmp_path / "good.jsonl"
    good_corpus.write_text('{"id": "a", "text": "t"}\n')
    calls = [
        (corpus, lambda: read_corpus(corpus)),
        (queries, lambda: read_queries(queries, good_corpus)),
        (corpus, lambda: prepare_candidates(queries=queries, corpus=corpus, out=tmp_path / "o.jsonl")),
    ]
    for path, call in calls:
        with pytest.raises(InputError, match=rf"^{path}, line 2: not valid UTF-8"):
            call()
    assert not (tmp_path / "o.jsonl").exists()
