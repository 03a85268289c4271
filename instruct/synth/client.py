"""Async pool over any OpenAI-compatible endpoint: bounded concurrency, retries, and a crash-safe cache.

One object, `LLMClient`, is shared by `instruct synth` and LLM annotation. Typical use:

    config = ClientConfig(base_url="http://127.0.0.1:8000/v1", model="m", cache="out/requests.jsonl")
    async with LLMClient(config) as client:
        responses = await client.complete_many([Request(prompt="1. Name a colour\\n2.", params={"max_tokens": 16})])
    responses[0].text, responses[0].finish_reason, client.usage.as_dict()

* `Request(prompt=...)` goes to /v1/completions, `Request(messages=[...])` to /v1/chat/completions;
  `params` are the endpoint's generation parameters (max_tokens, temperature, stop, response_format, ...).
* Concurrency is bounded by `ClientConfig.concurrency`; identical requests in flight are sent once.
* 429, 408/409, 5xx, timeouts and connection errors are retried with exponential backoff and jitter;
  a server's Retry-After (or retry-after-ms) wins over the computed delay. 401/403/404 (a wrong key, a
  wrong base URL or model) stop the whole run at the first one with a one-line `EndpointError`.
* Every successful response is appended to the cache file as one JSON line with a single `write()` on an
  O_APPEND descriptor: a SIGKILL loses at most the request in transit, several processes may share a file,
  and a torn last line (power loss) is skipped on load and never truncated (another process may be
  appending to it); the next write starts a fresh line. Failures are never cached, so a re-run retries them.
  Cache keys include the endpoint: the same model name at another base URL is another model.
* The API key is never stored in `Response`, `Usage`, the cache or `ClientConfig.public()`; `redact()` and
  `RedactingFilter` scrub it, and credentials in URLs (`user:pass@`, `?api_key=`), from any text or log record.
"""
from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import logging
import os
import random
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

from instruct.config import ConfigError

log = logging.getLogger("instruct.synth.client")

RETRYABLE_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
FATAL_STATUS = {401: "the API key was refused (check OPENAI_API_KEY)", 403: "access denied for this key or model",
                404: "not found: check the base URL (it usually ends in /v1) and the model name"}
_URL_USERINFO = re.compile(r"(?<=://)[^/\s@]+@")
_SECRET_QUERY = re.compile(r"(?i)([?&](?:api[_-]?key|key|token|access_token|secret|password|sig|signature)=)[^&\s#]+")
LOCAL_API_KEY = "not-needed"  # local servers ignore the key, but the openai client insists on one
_KEY_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|Bearer\s+[A-Za-z0-9_\-\.]{8,})")


class EndpointError(ConfigError):
    """The endpoint refuses us (401/403/404) or cannot be reached at all: retrying cannot help."""


def public_url(url: str | None) -> str | None:
    """A URL fit for manifests and messages: no `user:password@`, no key/token query values."""
    if not url:
        return url
    return _SECRET_QUERY.sub(r"\1<redacted>", _URL_USERINFO.sub("", url))


@dataclass
class ClientConfig:
    """Where and how to send requests. `api_key`/`base_url` fall back to OPENAI_API_KEY/OPENAI_BASE_URL."""

    base_url: str | None = None
    model: str | None = None
    api_key: str | None = None  # prefer the environment; never written to any output
    concurrency: int = 16
    timeout: float = 120.0  # seconds per request attempt
    max_retries: int = 8
    backoff_base: float = 0.5  # first retry waits about this long; doubles each attempt
    backoff_max: float = 60.0
    max_retry_after: float = 300.0  # a longer Retry-After is capped to this
    cache: str | None = None  # JSONL request cache; None disables caching
    endpoint_id: str | None = None  # names the endpoint in cache keys; default: the base URL (credentials stripped)

    def resolved_key(self) -> str:
        return self.api_key or os.environ.get("OPENAI_API_KEY") or LOCAL_API_KEY

    def resolved_base_url(self) -> str | None:
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or None

    def public(self) -> dict[str, Any]:
        """The settings as plain data for manifests: the key is reduced to whether one was set."""
        data = asdict(self)
        data["api_key"] = "<set>" if (self.api_key or os.environ.get("OPENAI_API_KEY")) else None
        data["base_url"] = public_url(self.resolved_base_url())
        return data

    def cache_scope(self) -> str:
        """What, besides the model, tells this endpoint's answers apart from another's.

        A server on this machine is named without its port: a local server restarted on another
        port (as `instruct serve --port 0` does) is the same endpoint, and a resumed run must not
        pay again for what it already has.
        """
        if self.endpoint_id:
            return self.endpoint_id
        url = urlsplit(public_url(self.resolved_base_url()) or "https://api.openai.com/v1")
        host = url.hostname or ""
        if host == "localhost" or host == "::1" or host.startswith("127."):
            url = url._replace(netloc="localhost")
        return urlunsplit(url).rstrip("/")


@dataclass(frozen=True)
class Request:
    """One generation request: a completion `prompt` or chat `messages`, plus endpoint parameters.

    `salt` distinguishes deliberate repeats of the same prompt (e.g. several samples at temperature > 0),
    which would otherwise share one cache entry.
    """

    prompt: str | None = None
    messages: tuple[Mapping[str, str], ...] | list[Mapping[str, str]] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    salt: str = ""

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("a Request needs exactly one of prompt= (completions) or messages= (chat)")

    @property
    def endpoint(self) -> str:
        return "chat" if self.messages is not None else "completions"

    def key(self, model: str | None, base_url: str | None = None) -> str:
        """Cache key: a hash of (endpoint kind, base URL, model, parameters, prompt, salt)."""
        body = {"endpoint": self.endpoint, "base_url": base_url, "model": model, "params": dict(self.params),
                "salt": self.salt,
                "prompt": self.prompt,
                "messages": [dict(m) for m in self.messages] if self.messages is not None else None}
        canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class Response:
    """The first choice of a reply (text + finish_reason), token usage, and where it came from."""

    key: str
    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str | None = None
    cached: bool = False
    error: str | None = None  # set when every attempt failed; text is then empty

    @property
    def ok(self) -> bool:
        return self.error is None

    def record(self) -> dict[str, Any]:
        return {"key": self.key, "text": self.text, "finish_reason": self.finish_reason,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "model": self.model}


@dataclass
class Usage:
    """Counters for the manifest: what was sent, answered from cache, retried, failed, and token totals."""

    requests_sent: int = 0  # HTTP attempts, retries included
    responses: int = 0  # successful responses from the server
    cache_hits: int = 0
    retries: int = 0
    failures: Counter = field(default_factory=Counter)  # reason -> requests that gave up
    retry_reasons: Counter = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failures"] = dict(self.failures)
        data["retry_reasons"] = dict(self.retry_reasons)
        return data


class RequestCache:
    """Append-only JSONL of successful responses, keyed by `Request.key`; loaded fully at open."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._entries: dict[str, dict[str, Any]] = {}
        self._load()
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)

    def _load(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb") as handle:
            data = handle.read()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):  # torn by a crash, or another process's append in progress: never cut it
            log.warning("%s: ignoring an incomplete last line (%d bytes)", self.path, len(data) - complete)
        for number, line in enumerate(data[:complete].splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                self._entries[entry["key"]] = entry
            except (ValueError, KeyError):
                log.warning("%s:%d: unreadable cache line skipped", self.path, number)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> Response | None:
        entry = self._entries.get(key)
        return None if entry is None else Response(cached=True, **entry)

    def put(self, response: Response) -> None:
        entry = response.record()
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        size = os.fstat(self._fd).st_size
        if size and os.pread(self._fd, 1, size - 1) != b"\n":
            line = b"\n" + line  # after a torn line: start our own, leaving the fragment a skipped line
        os.write(self._fd, line)  # one write on O_APPEND: never interleaved, never half-visible to readers
        self._entries[response.key] = entry

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class LLMClient:
    """Bounded-concurrency, retrying, caching client; use as `async with LLMClient(config) as client`."""

    def __init__(self, config: ClientConfig, sleep: Callable[[float], Any] = asyncio.sleep):
        self.config = config
        self.usage = Usage()
        self.cache = RequestCache(config.cache) if config.cache else None
        self._sleep = sleep
        self._semaphore: asyncio.Semaphore | None = None
        self._inflight: dict[str, asyncio.Future] = {}
        self._client = None
        self._fatal: EndpointError | None = None  # the first 401/403/404: every later request fails with it

    async def __aenter__(self) -> "LLMClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self.cache is not None:
            self.cache.close()

    def _openai(self):
        if self._client is None:
            import openai

            self._client = openai.AsyncOpenAI(api_key=self.config.resolved_key(),
                                              base_url=self.config.resolved_base_url(),
                                              timeout=self.config.timeout, max_retries=0)
        return self._client

    async def default_model(self) -> str:
        """The first model the endpoint lists (for servers that host one model under any name)."""
        try:
            models = await self._openai().models.list()
        except Exception as error:  # noqa: BLE001 - classified just below
            reason, _, _ = classify_error(error)
            raise self.endpoint_error(reason, error) from None
        if not models.data:
            raise RuntimeError(f"{self.config.resolved_base_url()}: the endpoint lists no models; pass --model")
        return models.data[0].id

    async def complete_many(self, requests: Sequence[Request],
                            on_done: Callable[[Response], None] | None = None) -> list[Response]:
        """Answer every request (cache first), in request order; failures come back with `.error` set."""

        async def one(request: Request) -> Response:
            response = await self.complete(request)
            if on_done is not None:
                on_done(response)
            return response

        return list(await asyncio.gather(*(one(r) for r in requests)))

    async def complete(self, request: Request) -> Response:
        """Answer one request: from the cache, from an identical request in flight, or from the server."""
        key = request.key(self.config.model, self.config.cache_scope())
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            self.usage.cache_hits += 1
            return hit
        if key in self._inflight:
            return await asyncio.shield(self._inflight[key])
        future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            response = await self._send(request, key)
            if response.ok and self.cache is not None:
                self.cache.put(response)
            future.set_result(response)
            return response
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: nobody else may be waiting
            raise
        finally:
            del self._inflight[key]

    async def _send(self, request: Request, key: str) -> Response:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.config.concurrency)
        attempt = 0
        while True:
            async with self._semaphore:
                if self._fatal is not None:
                    raise self._fatal
                self.usage.requests_sent += 1
                try:
                    reply = await self._call(request)
                except Exception as error:  # noqa: BLE001 - classified just below
                    reason, retryable, retry_after = classify_error(error)
                    if reason.startswith("http_") and int(reason[5:]) in FATAL_STATUS:
                        self.usage.failures[reason] += 1
                        self._fatal = self.endpoint_error(reason, error)
                        raise self._fatal from None
                    last_error = f"{reason}: {redact(str(error), self.config.resolved_key())}"
                else:
                    response = _parse_reply(reply, key, request.endpoint)
                    self.usage.responses += 1
                    self.usage.prompt_tokens += response.prompt_tokens
                    self.usage.completion_tokens += response.completion_tokens
                    return response
            if not retryable or attempt >= self.config.max_retries:
                self.usage.failures[reason] += 1
                log.warning("request %s failed after %d attempt(s): %s", key[:12], attempt + 1, last_error)
                return Response(key=key, error=last_error)
            delay = self.retry_delay(attempt, retry_after)
            self.usage.retries += 1
            self.usage.retry_reasons[reason] += 1
            log.info("request %s: %s; retry %d in %.2fs", key[:12], reason, attempt + 1, delay)
            await self._sleep(delay)
            attempt += 1

    def endpoint_error(self, reason: str, error: BaseException) -> EndpointError:
        """One line naming the endpoint (credentials stripped), the status and what to check."""
        url = public_url(self.config.resolved_base_url()) or "https://api.openai.com/v1"
        status = int(reason[5:]) if reason.startswith("http_") else None
        hint = FATAL_STATUS.get(status, "") if status else "cannot reach the endpoint: check the base URL"
        detail = redact(str(error), self.config.resolved_key()).splitlines()[0][:200] if str(error) else reason
        model = f" (model {self.config.model!r})" if self.config.model else ""
        return EndpointError(f"{url}{model}: {f'HTTP {status}' if status else reason}: {hint} [{detail}]")

    def retry_delay(self, attempt: int, retry_after: float | None) -> float:
        """Retry-After when the server gave one, else capped exponential backoff with 'equal jitter'."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.config.max_retry_after)
        ceiling = min(self.config.backoff_max, self.config.backoff_base * 2 ** attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    async def _call(self, request: Request) -> Any:
        client = self._openai()
        params = {k: v for k, v in request.params.items() if v is not None}  # null: leave to the server
        if request.endpoint == "chat":
            return await client.chat.completions.create(model=self.config.model, messages=list(request.messages),
                                                        **params)
        return await client.completions.create(model=self.config.model, prompt=request.prompt, **params)


def _parse_reply(reply: Any, key: str, endpoint: str) -> Response:
    choice = reply.choices[0]
    text = choice.message.content if endpoint == "chat" else choice.text
    usage = getattr(reply, "usage", None)
    return Response(key=key, text=text or "", finish_reason=choice.finish_reason,
                    prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                    completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
                    model=getattr(reply, "model", None))


def classify_error(error: BaseException) -> tuple[str, bool, float | None]:
    """(reason, retryable, Retry-After seconds or None) for an exception from the openai client."""
    import openai

    if isinstance(error, openai.APITimeoutError):
        return "timeout", True, None
    if isinstance(error, openai.APIConnectionError):
        return "connection", True, None
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        return f"http_{status}", status in RETRYABLE_STATUS, parse_retry_after(error.response.headers)
    return type(error).__name__, False, None


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `retry-after` as seconds or an HTTP date."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return float(millis) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def redact(text: str, *secrets: str | None) -> str:
    """Remove the given secrets and anything shaped like an OpenAI key or bearer token from `text`."""
    for secret in secrets:
        if secret and secret != LOCAL_API_KEY and len(secret) >= 4:
            text = text.replace(secret, "<redacted>")
    text = _SECRET_QUERY.sub(r"\1<redacted>", _URL_USERINFO.sub("", text))
    return _KEY_PATTERN.sub("<redacted>", text)


class RedactingFilter(logging.Filter):
    """A handler filter that scrubs API keys from every record passing through (ours, openai's, httpx's)."""

    def __init__(self, *secrets: str | None):
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, *self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
