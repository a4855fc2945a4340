"""The clients people load rerankers with agree with ``Reranker.score`` on our exports: the same scores
up to the stated normalisation (within 1e-4) and the same ranking.

FlagEmbedding 1.4.2 does not import under transformers 5, so it runs in ``.venv-compat`` (transformers
4.46, the oldest release ``pyproject.toml`` admits; ``make test`` builds it), which also trains and exports
with this package on transformers 4.
"""

import json
import os
import subprocess
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import MISSING, train_tiny_run
from sentence_transformers import CrossEncoder
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

from reranker import Reranker

# Its tests score tiny runs trained for them.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
COMPAT_PYTHON = Path(os.environ.get("RERANKER_COMPAT_PYTHON", ROOT / ".venv-compat" / "bin" / "python"))
COMPAT_SCRIPT = Path(__file__).parent / "compat" / "score_with_transformers4.py"

QUERY = "서울에 대한 질문 대한민국의 무엇인가"
PASSAGES = [
    "서울은 대한민국의 수도이다",
    "김치는 배추로 만든다",
    "부산은 항구 도시이다 부산에는 해운대 해수욕장이 있다",
    "서울에는 한강이 흐른다",
    "태양",
    "축구는 열한 명이 한 팀이다",
]
PAIRS = [(QUERY, passage) for passage in PASSAGES]


def exp_normalize(x: np.ndarray) -> np.ndarray:
    """The normalisation of the common transformers recipe: a softmax over one query's passages."""
    b = x.max()
    y = np.exp(x - b)
    return y / y.sum()


def assert_agree(client: list[float], ours: list[float]) -> None:
    assert client == pytest.approx(ours, abs=1e-4)
    ranking = sorted(range(len(ours)), key=lambda i: -ours[i])
    assert sorted(range(len(client)), key=lambda i: -client[i]) == ranking
    # Scores far enough apart, next to float32 noise (~1e-7), that the ranking comparison means something.
    assert min(ours[a] - ours[b] for a, b in pairwise(ranking)) > 1e-5


def sigmoid(scores: list[float]) -> list[float]:
    return torch.sigmoid(torch.tensor(scores)).tolist()


def test_plain_transformers_with_exp_normalize(trained_run):
    folder = trained_run / "export"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        inputs = tokenizer(
            [list(pair) for pair in PAIRS], padding=True, truncation=True, return_tensors="pt", max_length=512
        )
        logits = model(**inputs, return_dict=True).logits.view(-1).float()
    reranker = Reranker(folder, device="cpu")
    assert_agree(logits.tolist(), reranker.score(PAIRS))
    assert_agree(exp_normalize(logits.numpy()).tolist(), reranker.score(PAIRS, normalize="softmax"))


def test_text_classification_pipeline_with_text_pair_inputs(trained_run):
    folder = trained_run / "export"
    classifier = pipeline("text-classification", model=str(folder), device="cpu")
    inputs = [{"text": query, "text_pair": passage} for query, passage in PAIRS]
    default = classifier(inputs, truncation=True)
    squashed = classifier(inputs, function_to_apply="sigmoid")
    assert {result["label"] for result in default + squashed} == {"relevant"}
    logits = Reranker(folder, device="cpu").score(PAIRS)
    # The export records the score as the raw logit (problem_type regression): the pipeline's default.
    assert_agree([result["score"] for result in default], logits)
    assert_agree([result["score"] for result in squashed], sigmoid(logits))


def test_sentence_transformers_cross_encoder(trained_run):
    folder = trained_run / "export"
    cross_encoder = CrossEncoder(str(folder), device="cpu")
    reranker = Reranker(folder, device="cpu")
    # The export records the score as the raw logit (an identity activation): the CrossEncoder's default.
    assert_agree(cross_encoder.predict(PAIRS).tolist(), reranker.score(PAIRS))
    squashed = cross_encoder.predict(PAIRS, activation_fn=torch.nn.Sigmoid())
    assert_agree(squashed.tolist(), reranker.score(PAIRS, normalize="sigmoid"))
    ranked = cross_encoder.rank(QUERY, PASSAGES)
    ours = reranker.rerank(QUERY, PASSAGES)
    assert [hit["corpus_id"] for hit in ranked] == [hit.index for hit in ours]
    assert [float(hit["score"]) for hit in ranked] == pytest.approx([hit.score for hit in ours], abs=1e-4)


@pytest.fixture(scope="session")
def compat(bert_run, xlmr_run, tiny_xlmr, tmp_path_factory) -> dict:
    """Scores in the transformers 4 environment (one start of it: FlagEmbedding takes seconds to import)
    of both tiny exports and of a tiny XLM-R model trained and exported there."""
    if not COMPAT_PYTHON.exists():
        # CI builds it through `make test`: there its absence fails the run (tests/ci_guard.py).
        pytest.skip(f"{MISSING} {COMPAT_PYTHON}; `make .venv-compat/.installed` builds it")
    root = tmp_path_factory.mktemp("compat")
    run_on_4 = train_tiny_run(tiny_xlmr, root, python=str(COMPAT_PYTHON))
    pairs_file = root / "pairs.json"
    pairs_file.write_text(json.dumps(PAIRS, ensure_ascii=False), encoding="utf-8")
    folders = [bert_run / "export", xlmr_run / "export", run_on_4 / "export"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(
        [str(COMPAT_PYTHON), str(COMPAT_SCRIPT), str(pairs_file), *map(str, folders)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "trained_on_4": run_on_4 / "export"}


@pytest.mark.integration
def test_flag_reranker_and_transformers_4_load_our_export(trained_run, compat):
    folder = trained_run / "export"
    scores = compat["folders"][str(folder)]
    assert compat["transformers"].startswith("4.")
    logits = Reranker(folder, device="cpu").score(PAIRS)
    assert_agree(scores["flag"], logits)
    assert_agree(scores["flag_normalized"], sigmoid(logits))
    assert_agree(scores["plain"], logits)
    assert_agree(scores["reranker"], logits)


@pytest.mark.integration
def test_a_model_trained_and_exported_on_transformers_4_loads_on_5(compat):
    folder = compat["trained_on_4"]
    assert "README.md" in {p.name for p in folder.iterdir()}
    on_4 = compat["folders"][str(folder)]
    # Independent scorers on both sides: FlagEmbedding and plain transformers 4 there, plain 5 here.
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        inputs = tokenizer([list(pair) for pair in PAIRS], padding=True, truncation=True, return_tensors="pt")
        plain_5 = model(**inputs).logits.view(-1).tolist()
    assert_agree(on_4["flag"], plain_5)
    assert_agree(on_4["plain"], plain_5)
    assert_agree(Reranker(folder, device="cpu").score(PAIRS), on_4["reranker"])
