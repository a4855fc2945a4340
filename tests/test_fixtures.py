"""The tiny fixtures are the same in every run: tokenizers and random weights built in another process
equal this one's, so a test's scores (and its margins) do not change from run to run."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import SMALL, _byte_level_tokenizer, _unigram_tokenizer, _wordpiece_tokenizer, seeded
from transformers import BertConfig, BertForSequenceClassification


def fingerprint() -> str:
    """A SHA-256 of the three tiny tokenizers (pipeline and vocabulary) and of the tiny BERT's weights."""
    digest = hashlib.sha256()
    for build in (_wordpiece_tokenizer, _unigram_tokenizer, _byte_level_tokenizer):
        digest.update(build().backend_tokenizer.to_str().encode("utf-8"))
    config = BertConfig(vocab_size=len(_wordpiece_tokenizer()), max_position_embeddings=128, **SMALL)
    with seeded(0):
        state = BertForSequenceClassification(config).state_dict()
    for name, tensor in state.items():
        digest.update(name.encode("utf-8") + tensor.numpy().tobytes())
    return digest.hexdigest()


@pytest.mark.slow
def test_the_tiny_fixtures_are_the_same_in_another_process():
    other = subprocess.run(
        [sys.executable, "-c", "from test_fixtures import fingerprint; print(fingerprint())"],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert other.returncode == 0, other.stderr[-2000:]
    assert other.stdout.strip().splitlines()[-1] == fingerprint()


def test_seeded_leaves_the_global_random_stream_as_it_was():
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    with seeded(0):
        torch.rand(5)
    assert torch.equal(torch.rand(3), expected)
