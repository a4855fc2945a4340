"""The helpers every stage shares: the negative sampler's stream, the score cache in evaluate, the
``[Q, C]`` grid and the field checker that evaluation and preparation both use."""

from __future__ import annotations

import json
import random

import pytest
import torch
from conftest import write_jsonl

from reranker.core.errors import InputError
from reranker.core.grid import grid_positions, to_grid
from reranker.core.sampling import fill_distinct
from reranker.evaluation.evalsets import read_queries
from reranker.preparation.candidates import prepare_candidates


def test_sampler_stream_is_pinned():
    # Training's groups and their resume depend on this exact stream for a seed.
    # The values are those of training's sampler before it moved here (draw_negatives without own negatives).
    odd = lambda n: n % 2 == 1  # noqa: E731
    assert fill_distinct(random.Random(0), list(range(100)), [], 5, odd) == [62, 38, 74, 64, 36]
    rng = random.Random(1)
    assert fill_distinct(rng, list(range(10)), rng.sample([0], 1), 5, lambda n: n > 5) == [0, 1, 4, 3, 5]
    # A nearly exhausted pool: rejection gives up after 8 * count + 32 draws and a scan draws the rest.
    assert fill_distinct(random.Random(5), list(range(1000)), [], 3, lambda n: n >= 3) == [1, 0, 2]
    assert fill_distinct(random.Random(1), list(range(4)), [], 9, odd) == [
        0,
        2,
    ]  # fewer when the pool runs out


def test_grid_places_each_value_at_its_row_and_column():
    rows, columns = grid_positions([2, 3, 1])
    assert rows.tolist() == [0, 0, 1, 1, 1, 2] and columns.tolist() == [0, 1, 0, 1, 2, 0]
    grid = to_grid(rows, columns, torch.arange(6.0), (3, 3), float("-inf"))
    assert grid.tolist() == [[0, 1, float("-inf")], [2, 3, 4], [5, float("-inf"), float("-inf")]]


def test_evaluation_and_preparation_check_fields_alike(tmp_path):
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [{"id": "a", "text": "t"}])
    queries = write_jsonl(
        tmp_path / "q.jsonl", [{"qid": "1", "query": "", "pos_ids": ["a"], "candidate_ids": ["a"]}]
    )
    messages = []
    for call in (
        lambda: read_queries(queries, corpus),
        lambda: prepare_candidates(queries, corpus, tmp_path / "o"),
    ):
        with pytest.raises(InputError) as error:
            call()
        messages.append(str(error.value))
    assert (
        messages[0] == messages[1] == f"{queries}, line 1: field 'query' must be a non-empty string, got ''"
    )


@pytest.mark.slow
def test_evaluate_cache_skips_pairs_scored_before(tiny_bert, tmp_path, monkeypatch):
    from reranker.evaluation.evaluate import main
    from reranker.model.pair_scorer import PairScorer as Reranker

    corpus = write_jsonl(
        tmp_path / "c.jsonl", [{"id": f"p{i}", "text": f"문서 {i}번 내용"} for i in range(4)]
    )
    queries = write_jsonl(
        tmp_path / "q.jsonl",
        [{"qid": f"q{n}", "query": f"질문 {n}", "pos_ids": ["p0"], "candidate_ids": ["p0", "p1", "p2", "p3"]}
         for n in range(2)],
    )  # fmt: skip
    scored = []
    real = Reranker.score

    def counting(self, pairs, batch_size=64, **options):
        scored.append(len(pairs))
        return real(self, pairs, batch_size, **options)

    monkeypatch.setattr(Reranker, "score", counting)
    args = [str(queries), "--corpus", str(corpus), "--model", f"tiny={tiny_bert}", "--max-length", "32",
            "--samples", "50", "--cache", str(tmp_path / "scores.sqlite")]  # fmt: skip
    first = main(args)
    assert scored == [8]
    second = main(args)
    assert scored == [8]  # every pair came from the cache: the model never scored
    assert json.dumps(second["table"], sort_keys=True) == json.dumps(first["table"], sort_keys=True)
