"""The ``aws`` translation backend: Amazon Translate's ``translate_text`` through boto3.

Credentials and region come the usual boto3 way (environment, ``~/.aws``, instance role; ``--region`` or
``AWS_REGION``). Requests run on ``concurrency`` threads. Throttling and transient service or connection errors
are retried with exponential backoff and jitter until ``max_retry_seconds`` have passed for one request;
then the run stops with an error and the translations finished so far stay in the cache.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from reranker.core.errors import InputError
from reranker.preparation.translation.base import TranslationError

# translate_text accepts at most 10,000 bytes of UTF-8 text per request (service quota).
MAX_REQUEST_BYTES = 10_000
RETRYABLE = {
    "ThrottlingException",
    "TooManyRequestsException",
    "ServiceUnavailableException",
    "InternalServerException",
    "RequestTimeout",
    "RequestTimeoutException",
}


class AwsTranslate:
    """Amazon Translate (``name`` "aws"); pass ``client`` to use a ready boto3 client (tests use a Stubber)."""

    name = "aws"
    model = "amazon-translate"

    def __init__(
        self,
        source: str,
        target: str,
        client=None,
        region: str | None = None,
        concurrency: int = 8,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        max_retry_seconds: float = 300.0,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if concurrency < 1:
            raise InputError(f"--concurrency must be >= 1, got {concurrency}")
        if not 16 <= max_request_bytes <= MAX_REQUEST_BYTES:
            raise InputError(
                f"--max-request-bytes must be in [16, {MAX_REQUEST_BYTES}], got {max_request_bytes}"
            )
        if client is None:
            import boto3
            from botocore.config import Config

            # Our loop below does all retrying, so its time bound is the only one.
            config = Config(max_pool_connections=concurrency, retries={"total_max_attempts": 1})
            client = boto3.client("translate", region_name=region, config=config)
        self.client, self.source, self.target = client, source, target
        self.concurrency, self.max_segment_bytes = concurrency, max_request_bytes
        self.chunk_size = 16 * concurrency
        self.max_retry_seconds = max_retry_seconds
        self.sleep, self.clock = sleep or time.sleep, clock or time.monotonic

    def translate(self, segments: Sequence[str]) -> list[str]:
        if self.concurrency == 1:
            return [self._request(segment) for segment in segments]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(self._request, segments))

    def _request(self, text: str) -> str:
        from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

        deadline, delay = self.clock() + self.max_retry_seconds, 1.0
        while True:
            try:
                response = self.client.translate_text(
                    Text=text, SourceLanguageCode=self.source, TargetLanguageCode=self.target
                )
                return response["TranslatedText"]
            except ClientError as err:
                code = err.response.get("Error", {}).get("Code", "")
                if code not in RETRYABLE:
                    message = err.response.get("Error", {}).get("Message", "")
                    raise TranslationError(f"Amazon Translate refused a request: {code}: {message}") from None
                reason = code
            except (ConnectionError, HTTPClientError) as err:
                reason = type(err).__name__
            if self.clock() + delay > deadline:
                raise TranslationError(
                    f"Amazon Translate kept failing ({reason}) for {self.max_retry_seconds:.0f} s; gave up. "
                    "The translations finished so far are in the cache: rerun later to resume"
                )
            self.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(2 * delay, 30.0)
