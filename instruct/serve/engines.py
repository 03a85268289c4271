"""Text generators behind `instruct serve`: a transformers model (optionally with a peft adapter) and a
scripted fake with a controlled latency, for throughput benchmarks and crash/retry tests.

Both take a `Job` (prompt text + OpenAI-style parameters) and return a `Generation`.
"""
from __future__ import annotations

import hashlib
import json
import queue
import random
import re
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

MAX_BATCH = 16


@dataclass
class Job:
    """One request, normalised: the prompt to continue and the sampling parameters."""

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

    @classmethod
    def from_body(cls, body: dict[str, Any], chat: bool) -> "Job":
        stop = body.get("stop") or []
        response_format = body.get("response_format") or {}
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        job = cls(max_tokens=int(16 if max_tokens is None else max_tokens),
                  temperature=float(body.get("temperature", 1.0) if body.get("temperature") is not None else 1.0),
                  top_p=float(body.get("top_p", 1.0) if body.get("top_p") is not None else 1.0),
                  stop=[stop] if isinstance(stop, str) else list(stop),
                  presence_penalty=float(body.get("presence_penalty") or 0.0),
                  frequency_penalty=float(body.get("frequency_penalty") or 0.0),
                  seed=body.get("seed"),
                  json_mode=response_format.get("type") in ("json_object", "json_schema"))
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                raise ValueError("'messages' must be a non-empty list")
            job.messages = [{"role": m.get("role", "user"), "content": _content_text(m.get("content"))}
                            for m in messages]
        else:
            prompt = body.get("prompt")
            if isinstance(prompt, list):
                if len(prompt) != 1:
                    raise ValueError("only one prompt per request is supported")
                prompt = prompt[0]
            if not isinstance(prompt, str):
                raise ValueError("'prompt' must be a string")
            job.prompt = prompt
        return job

    def sampling_key(self) -> tuple:
        """Jobs with equal keys can share one batched generate() call."""
        return (self.max_tokens, self.temperature, self.top_p, tuple(self.stop), self.presence_penalty,
                self.frequency_penalty, self.seed, self.json_mode)

    def text(self) -> str:
        """The prompt text a fake model continues (the last user turn for chat)."""
        if self.prompt is not None:
            return self.prompt
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), "")


@dataclass
class Generation:
    text: str
    finish_reason: str  # "stop" or "length"
    prompt_tokens: int
    completion_tokens: int
    json_valid: bool | None = None


def _content_text(content: Any) -> str:
    if isinstance(content, list):  # content parts: keep the text ones
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def truncate_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """Cut `text` at the earliest stop sequence, as OpenAI does (the stop string is not returned)."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def extract_json(text: str) -> tuple[str, bool]:
    """The first complete JSON object in `text`, else the text unchanged; and whether one was found."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, end = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return text[match.start():end], True
    return text, False


# --- transformers ---------------------------------------------------------------------------------

class TransformersEngine:
    """A causal LM served with dynamic batching: requests that arrive together share one generate() call."""

    def __init__(self, model_path: str | None = None, adapter: str | None = None, max_batch: int = MAX_BATCH,
                 threads: int | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from instruct.models import resolve_model

        path = resolve_model(model_path)
        if threads:  # on a shared CPU, fewer threads than cores avoids OpenMP spin contention
            torch.set_num_threads(threads)
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter)
        self.model = model.eval()
        self.model_name = path.name + (f"+{adapter.rstrip('/').split('/')[-1]}" if adapter else "")
        self.max_batch = max_batch
        self._queue: queue.Queue[tuple[Job, Future]] = queue.Queue()
        threading.Thread(target=self._worker, name="instruct-serve-batcher", daemon=True).start()

    def generate(self, job: Job) -> Generation:
        future: Future = Future()
        self._queue.put((job, future))
        return future.result()

    def _worker(self) -> None:
        while True:
            pending = [self._queue.get()]
            while len(pending) < self.max_batch * 4:
                try:
                    pending.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            groups: dict[tuple, list[tuple[Job, Future]]] = {}
            for item in pending:
                groups.setdefault(item[0].sampling_key(), []).append(item)
            for items in groups.values():
                for start in range(0, len(items), self.max_batch):
                    chunk = items[start:start + self.max_batch]
                    try:
                        results = self._generate_batch([job for job, _ in chunk])
                    except Exception as error:  # noqa: BLE001 - handed to the waiting request threads
                        for _, future in chunk:
                            future.set_exception(error)
                        continue
                    for (_, future), result in zip(chunk, results):
                        future.set_result(result)

    def _prompt_text(self, job: Job) -> str:
        if job.messages is None:
            return job.prompt
        text = self.tokenizer.apply_chat_template(job.messages, tokenize=False, add_generation_prompt=True)
        return text + "{" if job.json_mode else text  # prefill: a cheap nudge towards a JSON object

    def _generate_batch(self, jobs: list[Job]) -> list[Generation]:
        torch = self.torch
        job = jobs[0]
        texts = [self._prompt_text(j) for j in jobs]
        encoded = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        kwargs: dict[str, Any] = {"max_new_tokens": max(job.max_tokens, 1), "pad_token_id": self.tokenizer.pad_token_id}
        if job.temperature > 0 and job.top_p > 0:
            kwargs.update(do_sample=True, temperature=job.temperature, top_p=job.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if job.stop:
            kwargs.update(stop_strings=job.stop, tokenizer=self.tokenizer)
        if job.presence_penalty or job.frequency_penalty:
            kwargs["logits_processor"] = [OpenAIPenalties(encoded["input_ids"].shape[1], job.presence_penalty,
                                                          job.frequency_penalty)]
        if job.seed is not None:
            torch.manual_seed(int(job.seed))
        with torch.inference_mode():
            output = self.model.generate(**encoded, **kwargs)
        new_tokens = output[:, encoded["input_ids"].shape[1]:]
        results = []
        for row, item in enumerate(jobs):
            tokens = new_tokens[row]
            pad = self.tokenizer.pad_token_id
            generated = tokens[tokens != pad] if pad is not None else tokens
            ended = bool((tokens == self.tokenizer.eos_token_id).any())
            text = self.tokenizer.decode(generated, skip_special_tokens=True)
            text, stopped = truncate_at_stop(text, item.stop)
            json_valid = None
            if item.json_mode and item.messages is not None:
                text, json_valid = extract_json("{" + text)
            finish = "stop" if (stopped or ended or len(generated) < item.max_tokens) else "length"
            prompt_tokens = int(encoded["attention_mask"][row].sum())
            results.append(Generation(text, finish, prompt_tokens, int(len(generated)), json_valid))
        return results


class OpenAIPenalties:
    """OpenAI's presence/frequency penalties as a logits processor over the generated tokens only."""

    def __init__(self, prompt_length: int, presence: float, frequency: float):
        self.prompt_length, self.presence, self.frequency = prompt_length, presence, frequency

    def __call__(self, input_ids, scores):
        import torch

        generated = input_ids[:, self.prompt_length:]
        if generated.shape[1] == 0:
            return scores
        counts = torch.zeros_like(scores).scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
        return scores - self.frequency * counts - self.presence * (counts > 0).to(scores.dtype)


# --- fake -----------------------------------------------------------------------------------------

_VERBS = ("Describe", "Classify", "Summarize", "List", "Explain", "Rewrite", "Compare", "Suggest", "Identify",
          "Translate", "Estimate", "Plan", "Outline", "Rank", "Detect", "Convert", "Find", "Generate", "Correct")
_WORDS = ("the", "a", "river", "budget", "recipe", "sentence", "poem", "city", "number", "customer", "review",
          "email", "story", "planet", "garden", "song", "train", "letter", "market", "coffee", "winter", "school",
          "bridge", "animal", "doctor", "museum", "ticket", "kitchen", "library", "forest", "holiday", "report",
          "question", "answer", "quickly", "carefully", "simple", "short", "formal", "friendly", "three", "five",
          "given", "following", "every", "each", "about", "for", "with", "into", "from", "between", "using",
          "weather", "travel", "energy", "music", "sport", "history", "language", "science", "ocean", "mountain",
          "price", "schedule", "meeting", "password", "habit", "exercise", "dinner", "movie", "novel", "game")
_LABELS = ("Positive", "Negative", "Yes", "No", "Spam", "Not spam", "True", "False")


class FakeEngine:
    """Deterministic scripted model: answers depend only on the request, after `latency` seconds.

    It speaks just enough of the Self-Instruct and Evol-Instruct formats (numbered task lists, Yes/No,
    'Class label:' and 'Input:/Output:' instances, rewritten prompts) for end-to-end runs to produce real rows.
    """

    model_name = "fake"

    def __init__(self, latency: float = 0.0, replies: list[ReplyRule] | None = None):
        self.latency = latency
        self.replies = replies or []

    def generate(self, job: Job) -> Generation:
        if self.latency:
            time.sleep(self.latency)
        prompt = job.text()
        digest = hashlib.sha256(json.dumps([prompt, job.sampling_key()], default=str).encode()).digest()
        rng = random.Random(digest)
        scripted = next((rule.reply(job) for rule in self.replies if rule.matches(job)), None)
        text = self._script(prompt, rng) if scripted is None else scripted
        words = text.split(" ")
        finish = "stop"
        if len(words) > job.max_tokens:
            text, finish = " ".join(words[:job.max_tokens]), "length"
        text, stopped = truncate_at_stop(text, job.stop)
        json_valid = None
        if job.json_mode:
            text, json_valid = json.dumps({"answer": _sentence(rng, 3, 8)}), True
        return Generation(text, "stop" if stopped else finish, len(prompt.split()), len(text.split()), json_valid)

    def _script(self, prompt: str, rng: random.Random) -> str:
        tail = prompt.rstrip()
        if tail.endswith("Is it classification?"):
            return rng.choice([" Yes", " No"])
        numbered = re.search(r"(\d+)\.$", tail)
        if numbered:
            first = int(numbered.group(1))
            items = [_task(rng) for _ in range(rng.randint(2, 6))]
            return " " + "".join(f"{t}\n{first + i + 1}. " if i < len(items) - 1 else f"{t}\n\n"
                                 for i, t in enumerate(items))
        if "Equal or Not Equal" in prompt:
            return rng.choice(["Equal", "Not Equal", "Not Equal", "Not Equal"])
        if "#Rewritten Prompt#" in prompt or "#Created Prompt#" in prompt:
            return _task(rng) + " " + _sentence(rng, 4, 10) + "."
        if tail.endswith("Class label:") or "Class label:" in prompt:
            return "".join(f"Class label: {rng.choice(_LABELS)}\nText: {_sentence(rng, 5, 12)}.\n"
                           for _ in range(rng.randint(1, 3)))
        if "Example 1" in prompt:
            return "".join(f"Example {i + 1}\nInput: {_sentence(rng, 4, 10)}.\nOutput: {_sentence(rng, 3, 12)}.\n"
                           for i in range(rng.randint(1, 3)))
        return _sentence(rng, 6, 30).capitalize() + "."


@dataclass
class ReplyRule:
    """A hand-built answer for the fake engine: the first rule whose `pattern` is found in the request wins.

    The request reads as its prompt (completions) or as "role: content" lines (chat). `replies[seed % len]`
    is the answer, so several samples of one prompt (seed 0, 1, ...) can differ; `{n}` in a reply becomes
    the number of non-system messages, so one rule can script every turn of a conversation. A rule with
    `min_messages` only applies from that many non-system messages on.
    """

    pattern: str
    replies: list[str]
    min_messages: int = 0

    def matches(self, job: Job) -> bool:
        return _message_count(job) >= self.min_messages and re.search(self.pattern, _transcript(job)) is not None

    def reply(self, job: Job) -> str:
        return self.replies[(job.seed or 0) % len(self.replies)].replace("{n}", str(_message_count(job)))


def load_reply_rules(path: str) -> list[ReplyRule]:
    """Rules from a JSON list of {pattern, replies | reply, min_messages?}; a bad one names file and index."""
    from instruct.io.readers.base import InputError

    with open(path, encoding="utf-8") as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}:{error.lineno}: invalid JSON ({error.msg})") from None
    rules = []
    for index, raw in enumerate(data if isinstance(data, list) else [None]):
        replies = raw.get("replies", [raw["reply"]] if "reply" in raw else None) if isinstance(raw, dict) else None
        if not isinstance(raw, dict) or not isinstance(raw.get("pattern"), str) or not replies:
            raise InputError(f"{path}: rule {index}: expected {{pattern, replies: [...]}} (a JSON list of rules)")
        rules.append(ReplyRule(raw["pattern"], [str(r) for r in replies], int(raw.get("min_messages", 0))))
    return rules


def _transcript(job: Job) -> str:
    if job.messages is None:
        return job.prompt or ""
    return "\n".join(f"{m['role']}: {m['content']}" for m in job.messages)


def _message_count(job: Job) -> int:
    return sum(m["role"] != "system" for m in job.messages) if job.messages is not None else 0


def _sentence(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(low, high)))


def _task(rng: random.Random) -> str:
    return f"{rng.choice(_VERBS)} {_sentence(rng, 4, 12)}."
