"""An OpenAI-compatible HTTP server: /v1/chat/completions, /v1/completions, /v1/models.

Built on the stdlib ThreadingHTTPServer (HTTP/1.1 keep-alive, one thread per connection): no extra
dependency, and the work is in the engine anyway, where the transformers engine batches concurrent
requests. A JSONL request log records every answered request by a hash of its body, which is how
tests prove that a resumed `instruct synth` never pays for the same request twice. Fault injection
(429/5xx with Retry-After on each request's first attempts; holding requests after N answers) lets
tests drive the real openai client through retries and crashes.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

from instruct.serve.engines import Job

log = logging.getLogger("instruct.serve")


@dataclass
class Faults:
    """Injected failures: each distinct request body fails `first_attempts` times with `status`."""

    first_attempts: int = 0
    status: int = 429
    retry_after: float | None = None
    hold_after: int | None = None  # after this many answered requests, never answer again


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
                 faults: Faults | None = None):
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

    def server_close(self) -> None:
        self.release.set()
        super().server_close()
        self.request_log.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: OpenAIServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?")[0].rstrip("/")
        if path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": self.server.engine.model_name, "object": "model",
                                                         "owned_by": "instruct"}]})
        elif path in ("/health", "/v1/health"):
            self._send(200, {"status": "ok"})
        elif path == "/v1/usage":
            with self.server.lock:
                self._send(200, dict(self.server.usage))
        else:
            self._send(404, _error(f"no route {path}", "not_found"))

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?")[0].rstrip("/")
        if path not in ("/v1/chat/completions", "/v1/completions"):
            self._send(404, _error(f"no route {path}", "not_found"))
            return
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"{}")
            if body.get("stream"):
                raise ValueError("streaming is not supported; send stream=false")
            job = Job.from_body(body, chat=path.endswith("chat/completions"))
        except (ValueError, TypeError, AttributeError) as error:
            self._send(400, _error(str(error), "invalid_request_error"))
            return
        digest = hashlib.sha256(raw).hexdigest()
        if self._inject_fault(digest, path):
            return
        started = time.perf_counter()
        try:
            generation = self.server.engine.generate(job)
        except Exception as error:  # noqa: BLE001 - reported to the client as a 500
            log.exception("generation failed")
            self._send(500, _error(f"generation failed: {error}", "server_error"))
            return
        self._answer(path, body, job, generation, digest, started)

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

    def _answer(self, path: str, body: dict, job: Job, generation: Any, digest: str, started: float) -> None:
        model = body.get("model") or self.server.engine.model_name
        usage = {"prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.completion_tokens,
                 "total_tokens": generation.prompt_tokens + generation.completion_tokens}
        common = {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": model, "usage": usage}
        if job.messages is not None:
            choice: dict[str, Any] = {"index": 0, "finish_reason": generation.finish_reason,
                                      "message": {"role": "assistant", "content": generation.text}}
            payload = {"object": "chat.completion", "choices": [choice], **common}
        else:
            choice = {"index": 0, "finish_reason": generation.finish_reason, "text": generation.text, "logprobs": None}
            payload = {"object": "text_completion", "choices": [choice], **common}
        if generation.json_valid is not None:
            choice["json_valid"] = generation.json_valid
        with self.server.lock:
            self.server.usage["answered"] += 1
            self.server.usage["prompt_tokens"] += generation.prompt_tokens
            self.server.usage["completion_tokens"] += generation.completion_tokens
        self.server.request_log.write({"time": time.time(), "path": path, "status": 200, "body": digest,
                                       "model": model, "seconds": round(time.perf_counter() - started, 4),
                                       **usage})
        self._send(200, payload)

    def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": kind}}


@contextmanager
def serve_in_thread(engine: Any, host: str = "127.0.0.1", port: int = 0, request_log: str | None = None,
                    faults: Faults | None = None) -> Iterator[OpenAIServer]:
    """Run a server on a background thread for the duration of a `with` block (port 0: a free port)."""
    server = OpenAIServer(engine, host, port, request_log, faults)
    thread = threading.Thread(target=server.serve_forever, name="instruct-serve", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
