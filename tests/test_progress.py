"""Progress of long work: plain lines with rate and time left where output is not a terminal, a bar where it
is one, nothing for work that ends before the first line is due; mining and candidates report each stage."""

from __future__ import annotations

import io
import json
import re

from conftest import TOPICS, write_jsonl

from reranker.core import progress as progress_module
from reranker.core.progress import Progress, duration
from reranker.preparation.prepare import main


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


LINE = re.compile(
    r"^encode: (\d+)/10 texts \(\d+\.\d%\)  \d+\.\d texts/s  elapsed \d:\d\d:\d\d(  eta \d:\d\d:\d\d)?$"
)


def test_plain_lines_carry_count_rate_and_time_left_then_a_closing_line():
    log = io.StringIO()
    with Progress(10, "encode", "texts", every_seconds=0, stream=log) as progress:
        for _ in range(5):
            progress.update(2)
    lines = log.getvalue().splitlines()
    assert [int(LINE.match(line).group(1)) for line in lines[:-1]] == [2, 4, 6, 8, 10]
    assert all("eta" in line for line in lines[:4]) and "eta" not in lines[4]
    assert re.fullmatch(r"encode: 10 texts in 0:00:00 \(\d+\.\d texts/s\)", lines[-1])


def test_short_work_prints_nothing_and_a_failed_job_no_closing_line():
    log = io.StringIO()
    with Progress(10, "encode", "texts", every_seconds=60, stream=log) as progress:
        progress.update(10)
    assert log.getvalue() == ""
    log = io.StringIO()
    try:
        with Progress(10, "encode", "texts", every_seconds=0, stream=log) as progress:
            progress.update(3)
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert [line.split(":")[0] for line in log.getvalue().splitlines()] == ["encode"]
    assert "in 0:00" not in log.getvalue()


def test_a_terminal_gets_a_bar_not_lines():
    screen = Terminal()
    with Progress(10, "encode", "texts", every_seconds=0, stream=screen) as progress:
        progress.update(10)
    assert "\r" in screen.getvalue() and "10/10" in screen.getvalue()
    assert not LINE.search(screen.getvalue())
    assert duration(3725.9) == "1:02:05"


def test_mine_and_candidates_report_each_stage_in_a_log(tmp_path, bert_encoder, monkeypatch, capsys):
    monkeypatch.setattr(progress_module, "EVERY_SECONDS", 0.0)
    texts = [text for sentences in TOPICS.values() for text in sentences]
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [{"id": f"p{i}", "text": t} for i, t in enumerate(texts)])
    queries = write_jsonl(
        tmp_path / "q.jsonl",
        [{"qid": f"q{i}", "query": t, "pos_ids": [f"p{i}"]} for i, t in enumerate(texts)],
    )
    dense = [
        "--retriever",
        "dense",
        "--dense-model",
        bert_encoder,
        "--pooling",
        "mean",
        "--dense-batch-size",
        "4",
    ]
    main(["mine", "--queries", str(queries), "--corpus", str(corpus), "--out", str(tmp_path / "m.jsonl"),
          "--window", "1", "10", "--num-hard-negatives", "2", *dense])  # fmt: skip
    captured = capsys.readouterr()
    json.loads(captured.out)  # the summary alone on stdout
    labels = {line.split(":")[0] for line in captured.err.splitlines()}
    assert {"encode passages", "encode queries", "search and first-stage margins"} <= labels
    assert "first-stage scores of the negatives" in labels
    main(["candidates", "--queries", str(queries), "--corpus", str(corpus), "--out", str(tmp_path / "c.jsonl"),
          "--top-k", "3", *dense])  # fmt: skip
    labels = {line.split(":")[0] for line in capsys.readouterr().err.splitlines()}
    assert {"encode passages", "encode queries", "search"} <= labels


def test_the_environment_sets_the_interval_and_a_bad_value_is_one_error(monkeypatch):
    monkeypatch.setenv("RERANKER_PROGRESS_SECONDS", "0")
    log = io.StringIO()
    with Progress(10, "encode", "texts", stream=log) as progress:
        progress.update(10)
    assert LINE.match(log.getvalue().splitlines()[0])
    monkeypatch.setenv("RERANKER_PROGRESS_SECONDS", "soon")
    try:
        Progress(10, "encode", "texts", stream=io.StringIO())
    except ValueError as error:
        assert "RERANKER_PROGRESS_SECONDS" in str(error) and "'soon'" in str(error)
    else:
        raise AssertionError("a bad interval was accepted")
