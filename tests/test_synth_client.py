"""The real openai client against a real local HTTP server: retries, Retry-After, timeouts, cache, redaction."""
from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time

from instruct.serve.engines import FakeEngine
from instruct.serve.server import Faults, serve_in_thread
from instruct.synth.client import (
    ClientConfig,
    LLMClient,
    RedactingFilter,
    Request,
    RequestCache,
    Response,
    parse_retry_after,
    redact,
)

KEY = "sk-test-DO-NOT-LEAK-0123456789abcdef"


def prompts(n: int, tag: str = "") -> list[Request]:
    return [Request(prompt=f"{tag}Come up with a series of tasks:\n1. Name a colour\n{i}.",
                    params={"max_tokens": 24, "stop": ["\n\n"]}) for i in range(2, n + 2)]


def run(config: ClientConfig, requests: list[Request]) -> tuple[list[Response], dict]:
    async def go():
        async with LLMClient(config) as client:
            return await client.complete_many(requests), client.usage.as_dict()

    return asyncio.run(go())


def log_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_429_with_retry_after_then_200(tmp_path):
    log = tmp_path / "server.jsonl"
    with serve_in_thread(FakeEngine(), request_log=str(log), faults=Faults(2, 429, retry_after=0.3)) as server:
        config = ClientConfig(base_url=server.base_url, model="fake", api_key=KEY, backoff_base=0.001)
        started = time.perf_counter()
        responses, usage = run(config, prompts(6))
        elapsed = time.perf_counter() - started
    assert all(r.ok and r.text for r in responses)
    assert usage["retries"] == 12 and usage["retry_reasons"] == {"http_429": 12} and usage["responses"] == 6
    assert elapsed >= 0.6  # two Retry-After waits of 0.3 s, although our own backoff would be ~1 ms
    by_body: dict[str, list[int]] = {}
    for entry in log_lines(log):
        by_body.setdefault(entry["body"], []).append(entry["status"])
    assert sorted(by_body.values()) == [[429, 429, 200]] * 6


def test_5xx_retried_with_backoff_and_400_not_retried(tmp_path):
    with serve_in_thread(FakeEngine(), faults=Faults(1, 503)) as server:
        config = ClientConfig(base_url=server.base_url, model="fake", backoff_base=0.05)
        responses, usage = run(config, prompts(3))
        assert all(r.ok for r in responses) and usage["retry_reasons"] == {"http_503": 3}
        bad = [Request(messages=[{"role": "user", "content": "hi"}], params={"max_tokens": 4, "stop": [{}]})]
        responses, usage = run(config, bad)
    assert not responses[0].ok and usage["retries"] == 0 and usage["failures"] == {"http_400": 1}


def test_timeout_is_retried_then_reported(tmp_path):
    with serve_in_thread(FakeEngine(latency=1.0)) as server:
        config = ClientConfig(base_url=server.base_url, model="fake", timeout=0.2, max_retries=1, backoff_base=0.01)
        responses, usage = run(config, prompts(1))
    assert responses[0].error.startswith("timeout") and usage["retries"] == 1 and usage["requests_sent"] == 2


def test_backoff_grows_exponentially_with_jitter_and_caps():
    client = LLMClient(ClientConfig(backoff_base=1.0, backoff_max=8.0))
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (6, 8.0)]:
        delays = [client.retry_delay(attempt, None) for _ in range(200)]
        assert ceiling / 2 <= min(delays) and max(delays) <= ceiling and len(set(delays)) > 100
    assert client.retry_delay(5, 2.5) == 2.5
    assert client.retry_delay(0, 10_000) == client.config.max_retry_after


def test_parse_retry_after_forms():
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < parse_retry_after({"retry-after": future}) <= 30
    assert parse_retry_after({}) is None and parse_retry_after({"retry-after": "soon"}) is None


def test_cache_answers_a_rerun_without_any_request(tmp_path):
    log = tmp_path / "server.jsonl"
    cache = tmp_path / "cache.jsonl"
    with serve_in_thread(FakeEngine(), request_log=str(log)) as server:
        config = ClientConfig(base_url=server.base_url, model="fake", cache=str(cache), concurrency=4)
        first, usage1 = run(config, prompts(10))
        second, usage2 = run(config, prompts(10))
        other_model, _ = run(ClientConfig(base_url=server.base_url, model="fake-2", cache=str(cache)), prompts(1))
    assert [r.text for r in first] == [r.text for r in second] and all(r.cached for r in second)
    assert usage1["requests_sent"] == 10 and usage2["requests_sent"] == 0 and usage2["cache_hits"] == 10
    assert not other_model[0].cached  # the key includes the model
    assert len(log_lines(log)) == 11


def test_identical_requests_in_flight_are_sent_once(tmp_path):
    log = tmp_path / "server.jsonl"
    with serve_in_thread(FakeEngine(latency=0.1), request_log=str(log)) as server:
        responses, usage = run(ClientConfig(base_url=server.base_url, model="fake"), prompts(1) * 5)
    assert len({r.text for r in responses}) == 1 and usage["requests_sent"] == 1 and len(log_lines(log)) == 1


def test_torn_last_cache_line_is_skipped_and_never_cut(tmp_path):
    path = tmp_path / "cache.jsonl"
    cache = RequestCache(path)
    cache.put(Response(key="k1", text="one", finish_reason="stop"))
    cache.close()
    with open(path, "ab") as handle:
        handle.write(b'{"key": "k2", "te')  # a crash in the middle of a write
    reopened = RequestCache(path)
    assert reopened.get("k1").text == "one" and "k2" not in reopened
    reopened.put(Response(key="k3", text="three"))
    reopened.close()
    # the fragment may be another process's append in progress: it stays, and k3 starts its own line
    assert path.read_text().splitlines() == [path.read_text().splitlines()[0], '{"key": "k2", "te',
                                             path.read_text().splitlines()[2]]
    assert [k for k in ("k1", "k3") if k in RequestCache(path)] == ["k1", "k3"]


def test_key_is_redacted_from_errors_and_logs(tmp_path, caplog):
    assert KEY not in redact(f"401: Incorrect API key provided: {KEY}", KEY)
    assert "sk-" not in redact("header Authorization: Bearer sk-abcdefghijklmnop")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key=%s", (KEY,), None)
    RedactingFilter(KEY).filter(record)
    assert KEY not in record.getMessage()
    assert KEY not in json.dumps(ClientConfig(api_key=KEY).public())
