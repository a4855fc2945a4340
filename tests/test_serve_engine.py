"""A serving engine people deploy rerankers with loads our export and returns ``Reranker.score``'s scores.

infinity-emb (a Cohere-style ``/rerank`` server; it runs a cross-encoder through sentence-transformers'
``CrossEncoder``, on CPU too) pins transformers 4 and sentence-transformers 3, so it lives in its own
environment, ``.venv-infinity`` (``make .venv-infinity/.installed``) or the Python named by
``RERANKER_INFINITY_PYTHON``. The server is started on localhost on a free port, asked a few bounded
requests and always stopped.
"""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import MISSING

from reranker import Reranker
from reranker.model.loading import load_tokenizer

# A server start per export (in .venv-infinity): a minute or more.
pytestmark = [pytest.mark.slow, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[1]
INFINITY_PYTHON = Path(os.environ.get("RERANKER_INFINITY_PYTHON", ROOT / ".venv-infinity" / "bin" / "python"))
# Loading torch and the model in a second process takes about a minute on a loaded 2-core machine.
STARTUP_TIMEOUT_S = 600
REQUEST_TIMEOUT_S = 120

QUERIES = ["서울에 대한 질문 대한민국의 무엇인가", "김치에 대한 질문 배추로 무엇인가"]
PASSAGES = [
    "서울은 대한민국의 수도이다",
    "김치는 배추로 만든다",
    "부산은 항구 도시이다 부산에는 해운대 해수욕장이 있다",
    "태양",
]
# Far past the export's max_length (64) and the model's 128 positions: every client must cut it.
LONG_PASSAGE = "서울에는 한강이 흐른다 김치는 발효 음식이다 부산 국제 영화제가 열린다 " * 12


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_ready(server: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(
                f"infinity exited with {server.returncode} before it was ready:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    pytest.fail(f"infinity not ready after {STARTUP_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def stop(server: subprocess.Popen) -> None:
    """SIGTERM to the server's own process group (uvicorn and the engine's threads), SIGKILL if it lingers."""
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


@pytest.fixture
def infinity_python() -> Path:
    if not INFINITY_PYTHON.exists():
        # CI builds it through `make test`: there its absence fails the run (tests/ci_guard.py).
        pytest.skip(f"{MISSING} {INFINITY_PYTHON}; `make .venv-infinity/.installed` builds it")
    return INFINITY_PYTHON


@pytest.fixture
def infinity(infinity_python, trained_run, tmp_path) -> Iterator[tuple[str, Path]]:
    """``infinity_emb v2`` serving the run's export on 127.0.0.1: the base URL and the export (skipped, before
    the run trains, where infinity is not installed)."""
    export = trained_run / "export"
    port = free_port()
    log = tmp_path / "infinity.log"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "DO_NOT_TRACK": "1",  # no usage statistics sent
        "INFINITY_HOME": str(tmp_path),  # its cache folder, instead of the working directory
        "TOKENIZERS_PARALLELISM": "false",
    }
    command = [
        str(infinity_python), "-m", "infinity_emb.cli", "v2",
        "--model-id", str(export), "--served-model-name", "reranker",
        "--device", "cpu", "--host", "127.0.0.1", "--port", str(port), "--no-model-warmup",
    ]  # fmt: skip
    with log.open("w") as output:
        server = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=tmp_path, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(server, url, log)
        yield url, export
    finally:
        stop(server)


def rerank(url: str, query: str, documents: list[str], raw_scores: bool) -> list[float]:
    """The scores of ``/rerank``, in the order of ``documents`` (the response is sorted by score)."""
    body = {"model": "reranker", "query": query, "documents": documents, "raw_scores": raw_scores}
    request = urllib.request.Request(
        f"{url}/rerank", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
        results = json.load(response)["results"]
    assert sorted(result["index"] for result in results) == list(range(len(documents)))
    return [result["relevance_score"] for result in sorted(results, key=lambda result: result["index"])]


def test_infinity_serves_our_export_with_the_scores_of_reranker(infinity):
    url, export = infinity
    reranker = Reranker(export, device="cpu")
    for query in QUERIES:
        pairs = [(query, passage) for passage in PASSAGES]
        logits = reranker.score(pairs)
        # raw_scores: the logit, as the export records it (normalization "none").
        assert rerank(url, query, PASSAGES, raw_scores=True) == pytest.approx(logits, abs=1e-4)
        # infinity's default is the sigmoid of the logit.
        sigmoid = torch.sigmoid(torch.tensor(logits)).tolist()
        assert rerank(url, query, PASSAGES, raw_scores=False) == pytest.approx(sigmoid, abs=1e-4)


def test_infinity_cuts_a_long_passage_at_the_recorded_max_length(infinity):
    url, export = infinity
    recorded = json.loads((export / "reranker.json").read_text())
    tokenizer = load_tokenizer(export)
    query = QUERIES[0]
    assert recorded["max_length"] < len(tokenizer(query, LONG_PASSAGE, truncation=False)["input_ids"])
    documents = [LONG_PASSAGE, PASSAGES[0]]
    pairs = [(query, passage) for passage in documents]
    served = rerank(url, query, documents, raw_scores=True)
    assert served == pytest.approx(Reranker(export, device="cpu").score(pairs), abs=1e-4)
    # The cut matters: at the model's own limit the long passage scores otherwise.
    at_model_limit = Reranker(export, max_length=recorded["model_max_length"], device="cpu").score(pairs)
    assert abs(served[0] - at_model_limit[0]) > 1e-3
