"""OpenAI request bodies -> validated `GenerationRequest`s: every field type-checked, so bad input is a 400,
never a crash.

A malformed field must fail in the request thread that received it: anything that reached the
batcher unchecked could take down the one thread every request depends on.
"""
from __future__ import annotations

import math
import queue
import threading
from dataclasses import dataclass, field
from typing import Any

MAX_STOP = 4  # OpenAI's limit
ROLES = ("system", "user", "assistant", "tool", "developer")


class RequestError(ValueError):
    """A request the server refuses; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.kind = status, kind


@dataclass
class GenerationRequest:
    """One request, normalised: the prompt to continue, the sampling parameters and the adapter to use."""

    prompt: str | None = None  # completions
    messages: list[dict[str, str]] | None = None  # chat
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    json_mode: bool = False
    adapter: str | None = None  # None: the base model
    # set by the server: streamed text deltas (None ends the stream) and the client having gone away
    deltas: queue.Queue | None = field(default=None, repr=False, compare=False)
    cancelled: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    @classmethod
    def from_body(cls, body: Any, chat: bool, max_tokens_limit: int | None = None) -> GenerationRequest:
        """Validate an OpenAI request body; raises RequestError naming the first bad field."""
        if not isinstance(body, dict):
            raise RequestError("the request body must be a JSON object")
        response_format = _typed(body, "response_format", dict) or {}
        max_tokens = _integer(body, "max_tokens", 1)
        if max_tokens is None:
            max_tokens = _integer(body, "max_completion_tokens", 1)
        max_tokens = 16 if max_tokens is None else max_tokens
        if max_tokens_limit is not None and max_tokens > max_tokens_limit:
            raise RequestError(f"'max_tokens' is {max_tokens}; this server allows at most {max_tokens_limit}")
        if _integer(body, "n", 1) not in (None, 1):
            raise RequestError("'n' must be 1: one choice per request")
        _typed(body, "stream", bool)
        _typed(body, "model", str)
        seed = _integer(body, "seed")
        job = cls(max_tokens=max_tokens, temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
                  top_p=_number(body, "top_p", 1.0, 0.0, 1.0), stop=_stop(body.get("stop")),
                  presence_penalty=_number(body, "presence_penalty", 0.0, -2.0, 2.0),
                  frequency_penalty=_number(body, "frequency_penalty", 0.0, -2.0, 2.0), seed=seed,
                  json_mode=response_format.get("type") in ("json_object", "json_schema"))
        if chat:
            job.messages = _messages(body.get("messages"))
        else:
            job.prompt = _prompt(body.get("prompt"))
        return job

    def sampling_key(self) -> tuple:
        """Jobs with equal keys (and the same adapter) can share one batched generate() call."""
        return (self.max_tokens, self.temperature, self.top_p, tuple(self.stop), self.presence_penalty,
                self.frequency_penalty, self.seed, self.json_mode)

    def text(self) -> str:
        """The prompt text a fake model continues (the last user turn for chat)."""
        if self.prompt is not None:
            return self.prompt
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), "")


def _typed(body: dict, name: str, kind: type) -> Any:
    value = body.get(name)
    if value is not None and not isinstance(value, kind):
        raise RequestError(f"'{name}' must be a {kind.__name__}, got {type(value).__name__}")
    return value


def _integer(body: dict, name: str, minimum: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"'{name}' must be an integer, got {value!r:.40}")
    if minimum is not None and value < minimum:
        raise RequestError(f"'{name}' must be at least {minimum}, got {value}")
    if abs(value) >= 2 ** 63:
        raise RequestError(f"'{name}' is out of range")
    return value


def _number(body: dict, name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RequestError(f"'{name}' must be a finite number, got {value!r:.40}")
    if not low <= value <= high:
        raise RequestError(f"'{name}' must be between {low:g} and {high:g}, got {value:g}")
    return float(value)


def _stop(value: Any) -> list[str]:
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise RequestError("'stop' must be a string or a list of strings")
    if len(stops) > MAX_STOP:
        raise RequestError(f"'stop' has {len(stops)} sequences; at most {MAX_STOP} are allowed")
    return [s for s in stops if s]


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise RequestError("'messages' must be a non-empty list")
    messages = []
    for index, message in enumerate(value):
        if not isinstance(message, dict):
            raise RequestError(f"messages[{index}] must be an object")
        role = message.get("role", "user")
        if role not in ROLES:
            raise RequestError(f"messages[{index}].role must be one of {', '.join(ROLES)}, got {role!r:.40}")
        messages.append({"role": role, "content": _content(message.get("content"), index)})
    return messages


def _content(content: Any, index: int) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):  # content parts: keep the text ones
        parts = []
        for part in content:
            if not isinstance(part, dict) or not isinstance(part.get("text", ""), str):
                raise RequestError(f"messages[{index}].content parts must be objects with a string 'text'")
            parts.append(part.get("text", ""))
        return "".join(parts)
    raise RequestError(f"messages[{index}].content must be a string or a list of parts")


def _prompt(prompt: Any) -> str:
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise RequestError("only one prompt per request is supported")
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise RequestError("'prompt' must be a string")
    return prompt
