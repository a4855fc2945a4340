import json

import numpy as np
import pytest
from helpers import compose_config, tiny_run_overrides
from transformers import AutoTokenizer

from reranker.model.encoders import PairEncoder
from reranker.train import train
from reranker.training.truncation import longest_first_query_loss, measure


def words(count: int) -> str:
    return " ".join(["서울은"] * count)


@pytest.fixture
def tokenizer(tiny_bert):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    assert len(tokenizer(words(7), add_special_tokens=False)["input_ids"]) == 7  # one token a word
    return tokenizer


def test_measure_matches_hand_counts_with_query_max_length(tokenizer):
    encoder = PairEncoder(tokenizer, max_length=20, query_max_length=4)  # 3 special tokens: 17 for text
    queries = [words(2), words(6), words(10), words(3), words(2)]
    passages = [words(5), words(12), words(3), words(20), words(15)]
    stats = measure("train.jsonl", queries, passages, encoder)
    lengths = [3 + 2 + 5, 3 + 6 + 12, 3 + 10 + 3, 3 + 3 + 20, 3 + 2 + 15]  # 10, 21, 16, 26, 20
    assert stats.pairs_sampled == 5
    assert stats.pairs_cut == 0.4  # 21 and 26 exceed 20; 20 fits exactly
    assert stats.query_tokens_lost == pytest.approx((0 + 2 + 6 + 0 + 0) / (2 + 6 + 10 + 3 + 2))
    assert stats.pair_length_p50 == pytest.approx(float(np.percentile(lengths, 50)))
    assert stats.pair_length_p99 == pytest.approx(float(np.percentile(lengths, 99)))
    assert stats.line(20, 4).startswith(
        "truncation of train.jsonl (5 pairs sampled): 40.0% of pairs cut at max_length 20, 34.8% of query tokens "
        "lost (query_max_length 4); pair length p50"
    )


@pytest.mark.parametrize("query, passage", [(2, 30), (12, 12), (20, 5), (9, 10), (14, 9), (30, 30)])
def test_longest_first_query_loss_matches_the_tokenizer(tokenizer, query, passage):
    encoded = tokenizer(words(query), words(passage), truncation=True, max_length=20)
    kept = encoded["input_ids"].index(tokenizer.sep_token_id) - 1  # [CLS] query [SEP] passage [SEP]
    expected = query - kept
    assert int(longest_first_query_loss(np.array([query]), np.array([passage]), 17)[0]) == expected


@pytest.mark.slow
def test_a_run_prints_and_records_truncation_per_file(tiny_bert, triplet_files, tmp_path, capsys):
    train_file, val_file = triplet_files
    overrides = tiny_run_overrides(tiny_bert, train_file, val_file, tmp_path / "run")
    cfg = compose_config(
        [*overrides, "data.max_length=12", "trainer.max_steps=1", "validate_before_training=false"]
    )
    train(cfg)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("truncation of")]
    assert [line.split(" (")[0] for line in lines] == [
        f"truncation of {train_file}",
        f"truncation of {val_file}",
    ]
    assert "(28 pairs sampled)" in lines[0] and "of pairs cut at max_length 12" in lines[0]
    recorded = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0.0 < recorded["truncation/train.jsonl/pairs_cut"] <= 1.0
    assert recorded["truncation/val.jsonl/pairs_sampled"] == 8.0
    card = (tmp_path / "run" / "export" / "README.md").read_text()
    assert "## Truncation" in card and "| `val.jsonl` | 8 |" in card
