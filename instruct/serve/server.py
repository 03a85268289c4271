"""An OpenAI-compatible HTTP server: /v1/chat/completions, /v1/completions (both streamed on request), /v1/models.

Built on the stdlib ThreadingHTTPServer (HTTP/1.1 keep-alive, one thread per connection): no extra
dependency, and the work is in the engine anyway, where the transformers engine batches concurrent
requests. A JSONL request log records every answered request by a hash of its body, which is how
tests prove that a resumed `instruct synth` never pays for the same request twice. Fault injection
(429/5xx with Retry-After on each request's first attempts; holding requests after N answers) lets
tests drive the real openai client through retries and crashes.

Every request is bounded (`Limits`): body size, socket timeouts, max_tokens, the model's context,
the time a request may wait for the model; browser-origin requests are refused and, off loopback,
an API key is required. Whatever a request holds, it gets a JSON error, never a dropped connection.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import os
import queue
import select
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from instruct.serve.engines import Generation, stream_text
from instruct.serve.requests import GenerationRequest, RequestError

log = logging.getLogger("instruct.serve")


@dataclass
class Faults:
    """Injected failures: each distinct request body fails `first_attempts` times with `status`."""

    first_attempts: int = 0
    status: int = 429
    retry_after: float | None = None
    hold_after: int | None = None  # after this many answered requests, never answer again


@dataclass
class Limits:
    """What one request may cost; `api_key` None means no authentication (loopback only)."""

    max_body_bytes: int = 8 << 20
    socket_timeout: float = 60.0  # seconds a connection may sit idle or stall mid-request
    request_timeout: float = 600.0  # seconds a request may wait for the model (queue + generation)
    max_tokens: int = 4096
    api_key: str | None = None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RequestLog:
    """Append-only JSONL: one line per answered (or refused) request; the API key is never recorded."""

    def __init__(self, path: str | None):
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if path else -1

    def write(self, entry: dict[str, Any]) -> None:
        if self._fd >= 0:
            os.write(self._fd, (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8"))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class OpenAIServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, engine: Any, host: str = "127.0.0.1", port: int = 0, request_log: str | None = None,
                 faults: Faults | None = None, limits: Limits | None = None):
        self.limits = limits or Limits()
        if not is_loopback(host) and not self.limits.api_key:
            raise ValueError(f"--host {host} is reachable from other machines: set --api-key (or "
                             "INSTRUCT_SERVE_API_KEY) to serve there")
        super().__init__((host, port), _Handler)
        self.engine = engine
        self.faults = faults or Faults()
        self.request_log = RequestLog(request_log)
        self.lock = threading.Lock()
        self.attempts: Counter = Counter()  # body hash -> attempts seen (for fault injection)
        self.usage = Counter()
        self.release = threading.Event()  # set on shutdown: frees held requests

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def same_origin(self, origin: str) -> bool:
        port = self.server_address[1]
        return origin in (f"http://127.0.0.1:{port}", f"http://localhost:{port}")

    def server_close(self) -> None:
        self.release.set()
        super().server_close()
        self.request_log.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: OpenAIServer

    def setup(self) -> None:
        self.timeout = self.server.limits.socket_timeout  # applied to the socket by StreamRequestHandler
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._guarded(self._get)

    def do_POST(self) -> None:
        self._guarded(self._post)

    def do_OPTIONS(self) -> None:
        self._send(403, _error("cross-origin requests are refused", "forbidden"))

    def _guarded(self, handle: Any) -> None:
        """Run a route; any error becomes a JSON answer (4xx for the request's fault, 500 for ours)."""
        try:
            path = self.path.split("?")[0].rstrip("/")
            if self._refuse_browser() or self._refuse_unauthorised(path):
                return
            handle(path)
        except RequestError as error:
            self.close_connection = True  # the body may be unread: do not parse it as the next request
            self._send(error.status, _error(str(error), error.kind))
        except Exception as error:
            log.exception("request failed")
            self.close_connection = True
            self._send(500, _error(f"internal error: {type(error).__name__}: {error}", "server_error"))

    def _refuse_browser(self) -> bool:
        origin = self.headers.get("Origin")
        if origin and not self.server.same_origin(origin):
            self._send(403, _error(f"requests from web pages ({origin}) are refused", "forbidden"))
            return True
        return False

    def _refuse_unauthorised(self, path: str) -> bool:
        key = self.server.limits.api_key
        if not key or not path.startswith("/v1"):
            return False
        given = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if hmac.compare_digest(given.encode(), key.encode()):
            return False
        self._send(401, _error("missing or wrong API key (Authorization: Bearer ...)", "invalid_api_key"))
        return True

    def _get(self, path: str) -> None:
        engine = self.server.engine
        if path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "instruct"}
                                                        for name in engine.model_names]})
        elif path in ("/health", "/v1/health"):
            healthy = engine.healthy()
            self._send(200 if healthy else 503, {"status": "ok" if healthy else "the batcher thread died"})
        elif path == "/v1/usage":
            with self.server.lock:
                self._send(200, dict(self.server.usage))
        else:
            self._send(404, _error(f"no route {path}", "not_found"))

    def _post(self, path: str) -> None:
        if path not in ("/v1/chat/completions", "/v1/completions"):
            raise RequestError(f"no route {path}", 404, "not_found")
        raw = self._read_body()
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as error:
            raise RequestError(f"the body is not valid JSON: {str(error)[:200]}") from None
        job = GenerationRequest.from_body(body, chat=path.endswith("chat/completions"), max_tokens_limit=self.server.limits.max_tokens)
        job.adapter = self.server.engine.resolve(body.get("model"))
        stream = bool(body.get("stream"))
        stream_options = body.get("stream_options") or {}
        if not isinstance(stream_options, dict):
            raise RequestError("'stream_options' must be an object")
        digest = hashlib.sha256(raw).hexdigest()
        if self._inject_fault(digest, path):
            return
        started = time.perf_counter()
        if stream:
            job.deltas = queue.Queue()
        future = self.server.engine.submit(job)
        if stream:
            self._stream(path, body, job, future, digest, started, bool(stream_options.get("include_usage")))
            return
        generation = self._wait(job, future)
        if generation is not None:
            self._answer(path, body, job, generation, digest, started)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise RequestError("chunked request bodies are not supported: send Content-Length", 411)
        media = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media != "application/json":
            raise RequestError(f"Content-Type must be application/json, got {media or 'none'!r}", 415)
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError("Content-Length is required", 411)
        if not length.strip().isdigit():
            raise RequestError(f"Content-Length must be a non-negative integer, got {length[:40]!r}")
        if int(length) > self.server.limits.max_body_bytes:
            raise RequestError(f"the body has {int(length)} bytes; at most {self.server.limits.max_body_bytes} "
                               "are accepted", 413)
        raw = self.rfile.read(int(length))
        if len(raw) < int(length):
            raise RequestError("the body ended before Content-Length bytes")
        return raw

    def _client_gone(self) -> bool:
        """True once the client has closed its end (a readable socket with nothing to read)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _wait(self, job: GenerationRequest, future: Any) -> Generation | None:
        """The generation, or None after answering a timeout; cancels the job if the client leaves."""
        deadline = time.monotonic() + self.server.limits.request_timeout
        while True:
            try:
                return future.result(timeout=0.2)
            except FutureTimeout:
                pass
            if self._client_gone():
                job.cancelled.set()
                self.close_connection = True
                return None
            if time.monotonic() > deadline:
                job.cancelled.set()
                raise RequestError(f"no answer from the model within {self.server.limits.request_timeout:g} s "
                                   "(the server is overloaded or stalled)", 503, "timeout")

    def _stream(self, path: str, body: dict, job: GenerationRequest, future: Any, digest: str, started: float,
                include_usage: bool) -> None:
        """Server-sent events in OpenAI's chunk format, ending with `data: [DONE]`."""
        chat = job.messages is not None
        common = {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()),
                  "model": body.get("model") or self.server.engine.model_name,
                  "object": "chat.completion.chunk" if chat else "text_completion"}

        def chunk(text: str | None, reason: str | None = None, first: bool = False) -> dict[str, Any]:
            if chat:
                delta = {"role": "assistant", "content": ""} if first else ({} if text is None else {"content": text})
                return {**common, "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}
            return {**common, "choices": [{"index": 0, "text": text or "", "finish_reason": reason, "logprobs": None}]}

        self.close_connection = True  # the stream ends when the connection does
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            if chat:
                self._event(chunk(None, first=True))
            try:
                for delta in stream_text(job, future, self.server.limits.request_timeout):
                    self._event(chunk(delta))
                generation = future.result(timeout=0)
            except TimeoutError as error:
                self._event(_error(str(error), "timeout"))
                return
            except Exception as error:  # noqa: BLE001 - reported in the stream
                self._event(_error(f"generation failed: {error}", "server_error"))
                return
            self._event(chunk(None, generation.finish_reason))
            usage = self._record(path, body, generation, digest, started)
            if include_usage:
                self._event({**common, "choices": [], "usage": usage})
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except OSError:  # the client went away: stop generating for it
            job.cancelled.set()

    def _event(self, payload: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(payload).encode("utf-8") + b"\n\n")
        self.wfile.flush()

    def _inject_fault(self, digest: str, path: str) -> bool:
        faults = self.server.faults
        with self.server.lock:
            self.server.attempts[digest] += 1
            attempt = self.server.attempts[digest]
            hold = faults.hold_after is not None and self.server.usage["admitted"] >= faults.hold_after
            if not hold and attempt > faults.first_attempts:
                self.server.usage["admitted"] += 1  # counted here, atomically, so exactly hold_after get answers
        if hold:
            self.server.release.wait()
            self.close_connection = True
            return True
        if attempt > faults.first_attempts:
            return False
        headers = {"Retry-After": f"{faults.retry_after:g}"} if faults.retry_after is not None else {}
        with self.server.lock:
            self.server.usage[f"refused_{faults.status}"] += 1
        self.server.request_log.write({"time": time.time(), "path": path, "status": faults.status, "body": digest})
        self._send(faults.status, _error("injected failure", "rate_limit_exceeded"), headers)
        return True

    def _record(self, path: str, body: dict, generation: Generation, digest: str, started: float) -> dict[str, int]:
        """Count an answered request and log it; returns its OpenAI usage object."""
        usage = {"prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.completion_tokens,
                 "total_tokens": generation.prompt_tokens + generation.completion_tokens}
        with self.server.lock:
            self.server.usage["answered"] += 1
            self.server.usage["prompt_tokens"] += generation.prompt_tokens
            self.server.usage["completion_tokens"] += generation.completion_tokens
        self.server.request_log.write({"time": time.time(), "path": path, "status": 200, "body": digest,
                                       "model": body.get("model") or self.server.engine.model_name,
                                       "seconds": round(time.perf_counter() - started, 4), **usage})
        return usage

    def _answer(self, path: str, body: dict, job: GenerationRequest, generation: Generation, digest: str, started: float) -> None:
        usage = self._record(path, body, generation, digest, started)
        common = {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()),
                  "model": body.get("model") or self.server.engine.model_name, "usage": usage}
        if job.messages is not None:
            choice: dict[str, Any] = {"index": 0, "finish_reason": generation.finish_reason,
                                      "message": {"role": "assistant", "content": generation.text}}
            payload = {"object": "chat.completion", "choices": [choice], **common}
        else:
            choice = {"index": 0, "finish_reason": generation.finish_reason, "text": generation.text, "logprobs": None}
            payload = {"object": "text_completion", "choices": [choice], **common}
        if generation.json_valid is not None:
            choice["json_valid"] = generation.json_valid
        self._send(200, payload)

    def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client is gone (reset, broken pipe, timeout)
            self.close_connection = True


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": kind}}


@contextmanager
def serve_in_thread(engine: Any, host: str = "127.0.0.1", port: int = 0, request_log: str | None = None,
                    faults: Faults | None = None, limits: Limits | None = None) -> Iterator[OpenAIServer]:
    """Run a server on a background thread for the duration of a `with` block (port 0: a free port)."""
    server = OpenAIServer(engine, host, port, request_log, faults, limits)
    thread = threading.Thread(target=server.serve_forever, name="instruct-serve", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
