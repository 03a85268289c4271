"""Text generators behind `instruct serve`: a transformers model (optionally with several peft adapters)
and a scripted fake with a controlled latency, for throughput benchmarks and crash/retry tests.

Both take a validated `GenerationRequest` through `submit()` and resolve a Future to a `Generation`; a job with a
`deltas` queue also receives its text as it is generated (None ends it), for streaming.
"""
from __future__ import annotations

import hashlib
import json
import queue
import random
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instruct.serve.requests import GenerationRequest, RequestError

__all__ = ["FakeEngine", "Generation", "GenerationRequest", "TransformersEngine", "adapter_name"]

MAX_BATCH = 16


@dataclass
class Generation:
    text: str
    finish_reason: str  # "stop" or "length"
    prompt_tokens: int
    completion_tokens: int
    json_valid: bool | None = None


def truncate_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """Cut `text` at the earliest stop sequence, as OpenAI does (the stop string is not returned)."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def streamable_prefix(text: str, stop: list[str]) -> str:
    """The part of partial output that is final: before any stop string, without a tail that may begin one."""
    text, stopped = truncate_at_stop(text, stop)
    if stopped:
        return text
    text = text.rstrip("\ufffd")  # an incomplete UTF-8 sequence: wait for its next token
    held = max((n for s in stop for n in range(1, len(s)) if text.endswith(s[:n])), default=0)
    return text[:len(text) - held]


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


class Cancelled(Exception):
    """The job's client went away before it was generated."""


def adapter_name(base_name: str, folder: str) -> str:
    """The model name an unnamed `--adapter DIR` is served under (what `instruct serve` always printed)."""
    return f"{base_name}+{Path(folder.rstrip('/')).name}"


def finish(job: GenerationRequest, future: Future, result: Generation | None = None, error: BaseException | None = None) -> None:
    """Resolve a job once: its future and, when streaming, the end of its delta queue."""
    if not future.done():
        future.set_exception(error) if error is not None else future.set_result(result)
    if job.deltas is not None:
        job.deltas.put(None)


def stream_text(job: GenerationRequest, future: Future, timeout: float) -> Iterator[str]:
    """A streaming job's text as it is generated, then whatever the final text adds (JSON mode, a late stop).

    Raises TimeoutError (and cancels the job) when the model is silent for `timeout` seconds, and the
    engine's own error if generation failed; afterwards `future.result()` is the full Generation.
    """
    deadline = time.monotonic() + timeout
    sent = ""
    while True:
        try:
            delta = job.deltas.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            job.cancelled.set()
            raise TimeoutError(f"no answer from the model within {timeout:g} s (overloaded or stalled)") from None
        if delta is None:
            break
        sent += delta
        yield delta
    text = future.result(timeout=0).text
    if text.startswith(sent) and len(text) > len(sent):
        yield text[len(sent):]


# --- transformers ---------------------------------------------------------------------------------

class TransformersEngine:
    """A causal LM served with dynamic batching: requests that arrive together share one generate() call.

    `adapters` maps served model names to peft adapter folders, all loaded onto the one base (as
    vLLM's multi-LoRA): a request's `model` picks its adapter, the base name picks none. A lone
    `adapter` keeps its old meaning: served as `BASE+DIR` and the default for requests naming no model.
    """

    def __init__(self, model_path: str | None = None, adapter: str | None = None, max_batch: int = MAX_BATCH,
                 threads: int | None = None, adapters: dict[str, str] | None = None):
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
        self.base_name = path.name
        self.context_length = int(getattr(model.config, "max_position_embeddings", 0) or 0) or None
        named = dict(adapters or {})
        self.model_name = self.base_name
        if adapter:
            self.model_name = adapter_name(self.base_name, adapter)
            named = {self.model_name: adapter, **named}
        # peft names become module attribute names (no '.', '+'): served names map onto safe ones
        self.peft_names = {name: f"adapter_{index}" for index, name in enumerate(named)}
        for index, (name, folder) in enumerate(named.items()):
            from peft import PeftModel

            if index == 0:
                model = PeftModel.from_pretrained(model, folder, adapter_name=self.peft_names[name])
            else:
                model.load_adapter(folder, adapter_name=self.peft_names[name])
        self.adapters = named
        self.model = model.eval()
        self.max_batch = max_batch
        self._queue: queue.Queue[tuple[GenerationRequest, Future]] = queue.Queue()
        self._thread = threading.Thread(target=self._worker, name="instruct-serve-batcher", daemon=True)
        self._thread.start()

    @property
    def model_names(self) -> list[str]:
        return [self.base_name, *(name for name in self.adapters if name != self.base_name)]

    def resolve(self, model: str | None) -> str | None:
        """The adapter serving `model` (None: the base); RequestError 404 for a name not served."""
        name = model or self.model_name
        if name in self.adapters:
            return name
        if name == self.base_name:
            return None
        raise RequestError(f"the model '{name}' does not exist; this server serves: {', '.join(self.model_names)}",
                           404, "model_not_found")

    def healthy(self) -> bool:
        return self._thread.is_alive()

    def submit(self, job: GenerationRequest) -> Future:
        """Queue a job after checking it fits the context; RequestError if it cannot."""
        if self.context_length:
            prompt_tokens = len(self.tokenizer(self._prompt_text(job), add_special_tokens=False)["input_ids"])
            if prompt_tokens + job.max_tokens > self.context_length:
                raise RequestError(f"this model's maximum context length is {self.context_length} tokens; the "
                                   f"prompt has {prompt_tokens} and max_tokens asks for {job.max_tokens}")
        future: Future = Future()
        self._queue.put((job, future))
        return future

    def generate(self, job: GenerationRequest, timeout: float | None = None) -> Generation:
        return self.submit(job).result(timeout)

    def _worker(self) -> None:
        while True:  # nothing may end this loop: every request depends on it
            pending = [self._queue.get()]
            while len(pending) < self.max_batch * 4:
                try:
                    pending.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._run(pending)
            except BaseException as error:  # noqa: BLE001 - handed to the waiting request threads
                for job, future in pending:
                    finish(job, future, error=error)

    def _run(self, pending: list[tuple[GenerationRequest, Future]]) -> None:
        groups: dict[tuple, list[tuple[GenerationRequest, Future]]] = {}
        for job, future in pending:
            if job.cancelled.is_set():  # the client left while this waited
                finish(job, future, error=Cancelled("the client went away"))
            else:
                groups.setdefault((job.adapter, job.sampling_key()), []).append((job, future))
        for items in groups.values():
            for start in range(0, len(items), self.max_batch):
                chunk = items[start:start + self.max_batch]
                try:
                    results = self._generate_batch([job for job, _ in chunk])
                except Exception as error:  # noqa: BLE001 - fails this batch's requests only
                    for job, future in chunk:
                        finish(job, future, error=error)
                    continue
                for (job, future), result in zip(chunk, results):
                    finish(job, future, result)

    def _prompt_text(self, job: GenerationRequest) -> str:
        if job.messages is None:
            return job.prompt
        text = self.tokenizer.apply_chat_template(job.messages, tokenize=False, add_generation_prompt=True)
        return text + "{" if job.json_mode else text  # prefill: a cheap nudge towards a JSON object

    def _generate_batch(self, jobs: list[GenerationRequest]) -> list[Generation]:
        from contextlib import nullcontext

        from transformers import StoppingCriteriaList

        torch = self.torch
        job = jobs[0]
        texts = [self._prompt_text(j) for j in jobs]
        encoded = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        prompt_length = encoded["input_ids"].shape[1]
        kwargs: dict[str, Any] = {"max_new_tokens": max(job.max_tokens, 1), "pad_token_id": self.tokenizer.pad_token_id,
                                  "stopping_criteria": StoppingCriteriaList([_Watcher(jobs, prompt_length, self)])}
        if job.temperature > 0 and job.top_p > 0:
            kwargs.update(do_sample=True, temperature=job.temperature, top_p=job.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if job.stop:
            kwargs.update(stop_strings=job.stop, tokenizer=self.tokenizer)
        if job.presence_penalty or job.frequency_penalty:
            kwargs["logits_processor"] = [OpenAIPenalties(prompt_length, job.presence_penalty, job.frequency_penalty)]
        if job.seed is not None:
            torch.manual_seed(int(job.seed))
        if job.adapter is not None:  # resolve() only names loaded adapters; anything else fails this batch
            self.model.set_adapter(self.peft_names[job.adapter])
        base_only = self.model.disable_adapter() if self.adapters and job.adapter is None else nullcontext()
        with torch.inference_mode(), base_only:
            output = self.model.generate(**encoded, **kwargs)
        results = []
        for row, item in enumerate(jobs):
            generated = self.reply_tokens(output[row, prompt_length:])
            ended = len(generated) < output.shape[1] - prompt_length
            text = self.tokenizer.decode(generated, skip_special_tokens=True)
            text, stopped = truncate_at_stop(text, item.stop)
            json_valid = None
            if item.json_mode and item.messages is not None:
                text, json_valid = extract_json("{" + text)
            reason = "stop" if (stopped or ended or len(generated) < item.max_tokens) else "length"
            prompt_tokens = int(encoded["attention_mask"][row].sum())
            results.append(Generation(text, reason, prompt_tokens, len(generated), json_valid))
        return results

    def reply_tokens(self, tokens: Any) -> Any:
        """Generated tokens up to (not including) the first end-of-sequence or padding token."""
        ends = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id} - {None}
        done = [i for i, token in enumerate(tokens.tolist()) if token in ends]
        return tokens[:done[0]] if done else tokens


class _Watcher:
    """A stopping criterion run after every token: streams each streaming job's new text and ends the rows
    whose client went away (per-row stopping, so the rest of the batch carries on)."""

    def __init__(self, jobs: list[GenerationRequest], prompt_length: int, engine: TransformersEngine):
        self.jobs, self.prompt_length, self.engine = jobs, prompt_length, engine
        self.sent = ["" for _ in jobs]

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        torch = self.engine.torch
        for row, job in enumerate(self.jobs):
            if job.deltas is None or job.json_mode:  # JSON mode's text is only known at the end
                continue
            tokens = self.engine.reply_tokens(input_ids[row, self.prompt_length:])
            text = streamable_prefix(self.engine.tokenizer.decode(tokens, skip_special_tokens=True), job.stop)
            if len(text) > len(self.sent[row]) and text.startswith(self.sent[row]):
                job.deltas.put(text[len(self.sent[row]):])
                self.sent[row] = text
        return torch.tensor([job.cancelled.is_set() for job in self.jobs], dtype=torch.bool, device=input_ids.device)


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
    'Class label:' and 'Input:/Output:' instances, rewritten prompts) and of the back-translation and judge
    prompts (a request, 'Score:' / 'Rating:' lines, [[A]]/[[B]]/[[C]] verdicts) for end-to-end runs to
    produce real rows.
    """

    model_name = "fake"
    model_names = ("fake",)  # listed; any requested name is answered, as by hosted single-model servers

    def __init__(self, latency: float = 0.0, replies: list[ReplyRule] | None = None):
        self.latency = latency
        self.replies = replies or []

    def resolve(self, model: str | None) -> None:
        return None

    def healthy(self) -> bool:
        return True

    def submit(self, job: GenerationRequest) -> Future:
        """Answer inline (in the request's thread); streamed word by word."""
        future: Future = Future()
        try:
            generation = self.generate(job)
            if job.deltas is not None:
                for word in re.findall(r"\s*\S+\s*", generation.text):
                    job.deltas.put(word)
            finish(job, future, generation)
        except Exception as error:  # noqa: BLE001 - the request thread reports it
            finish(job, future, error=error)
        return future

    def generate(self, job: GenerationRequest, timeout: float | None = None) -> Generation:
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
        judged = _judge_script(prompt, rng)
        if judged is not None:
            return judged
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

    def matches(self, job: GenerationRequest) -> bool:
        return _message_count(job) >= self.min_messages and re.search(self.pattern, _transcript(job)) is not None

    def reply(self, job: GenerationRequest) -> str:
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


def _transcript(job: GenerationRequest) -> str:
    if job.messages is None:
        return job.prompt or ""
    return "\n".join(f"{m['role']}: {m['content']}" for m in job.messages)


def _message_count(job: GenerationRequest) -> int:
    return sum(m["role"] != "system" for m in job.messages) if job.messages is not None else 0


def _sentence(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(low, high)))


def _task(rng: random.Random) -> str:
    return f"{rng.choice(_VERBS)} {_sentence(rng, 4, 12)}."


_PAIRWISE_ANSWER = re.compile(r"\[The Start of Assistant ([AB])'s Answer\]\n(.*?)\n\[The End of Assistant", re.DOTALL)


def _judge_script(prompt: str, rng: random.Random) -> str | None:
    """Replies to `instruct.synth` back-translation and judge prompts; the pairwise verdict prefers the
    longer answer whatever its position (a consistent judge), [[C]] when both are as long."""
    if prompt.rstrip().endswith("User's request:"):
        return _task(rng)
    if '"Score: <rating>"' in prompt:
        return f"The answer {_sentence(rng, 3, 8)}.\nScore: {rng.randint(1, 5)}"
    if '"Rating: <1-5>"' in prompt:
        return f"Rationale: {_sentence(rng, 3, 8)}.\nRating: {rng.randint(1, 5)}"
    answers = dict(_PAIRWISE_ANSWER.findall(prompt))
    if len(answers) == 2:
        a, b = len(answers["A"].split()), len(answers["B"].split())
        return f"{_sentence(rng, 3, 8)}. " + ("[[A]]" if a > b else "[[B]]" if b > a else "[[C]]")
    return None
