"""FineWeb-Edu style annotation: an LLM grades a sample of documents 0-5; the grades train a classifier.

Requests go through `instruct.synth.client.LLMClient` (bounded concurrency, retries, on-disk cache),
to the configured endpoint or, with none, to the embedded model served on 127.0.0.1 for the run.
Output folder:
    DIR/annotations.jsonl   {id, text, source, score, prompt, model} per graded document
    DIR/unscored.jsonl      {id, reason, detail} per document without a score (no score in the reply,
                            request failed): every sampled document is in exactly one of the two files
    DIR/manifest.json       counts, score histogram, token usage, settings (no API key)
    DIR/cache/requests.jsonl  the request cache: the only state, so a killed run resumes for free
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instruct import resources
from instruct.config import ConfigError, from_dict, load_yaml, to_dict
from instruct.io.shards import atomic_path, write_json
from instruct.quality.data import iter_records
from instruct.schema import content_id
from instruct.synth.client import ClientConfig, LLMClient, Request, Response, public_url, redact
from instruct.synth.run import ServeConfig, endpoint

DEFAULT_TEMPLATE = resources.annotation_prompts()


@dataclass
class AnnotationPrompt:
    """One grading prompt: chat (`system` + `user`) or completion (`prompt`), and how to read the score."""

    score_pattern: str
    system: str | None = None
    user: str | None = None
    prompt: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def request(self, text: str) -> Request:
        from jinja2.sandbox import SandboxedEnvironment

        render = lambda source: SandboxedEnvironment(keep_trailing_newline=True).from_string(source).render(text=text)  # noqa: E731
        if self.prompt is not None:
            return Request(prompt=render(self.prompt), params=self.params)
        messages = ([{"role": "system", "content": render(self.system)}] if self.system else [])
        messages.append({"role": "user", "content": render(self.user)})
        return Request(messages=messages, params=self.params)

    def score(self, reply: str) -> int | None:
        found = re.findall(self.score_pattern, reply, flags=re.MULTILINE)
        return int(found[-1]) if found else None  # the last one: models restate the scale before concluding


def load_prompt(path: str | Path, name: str) -> AnnotationPrompt:
    prompts = load_yaml(path).get("prompts") or {}
    if name not in prompts:
        raise ConfigError(f"{path}: no prompt {name!r}; available: {', '.join(sorted(prompts)) or 'none'}")
    prompt = from_dict(AnnotationPrompt, prompts[name], where=f"{path}:prompts.{name}")
    if (prompt.prompt is None) == (prompt.user is None):
        raise ConfigError(f"{path}:prompts.{name}: give either `prompt` (completion) or `user` (chat)")
    try:
        if re.compile(prompt.score_pattern).groups < 1:
            raise ConfigError(f"{path}:prompts.{name}: score_pattern needs a group capturing the score")
    except re.error as error:
        raise ConfigError(f"{path}:prompts.{name}: invalid score_pattern ({error})") from None
    return prompt


@dataclass
class AnnotateConfig:
    input: str
    output: str = "out/annotate"
    num: int = 1000  # documents to sample and grade
    text_field: str = "text"
    template: str = str(DEFAULT_TEMPLATE)
    prompt: str = "fineweb_edu"
    max_chars: int = 4000  # the document is cut to this many characters inside the prompt
    seed: int = 0
    progress: bool = True
    client: ClientConfig = field(default_factory=ClientConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)


def sample_documents(config: AnnotateConfig) -> list[dict[str, Any]]:
    """A seeded sample of `num` documents (all of them when there are fewer), in input order."""
    documents = []
    for where, record in iter_records(config.input):
        text = record.get(config.text_field)
        if not isinstance(text, str):
            raise ConfigError(f"{where}: no string field {config.text_field!r}")
        documents.append({"id": str(record.get("id") or content_id(where, text)), "text": text,
                          "source": record.get("source") or ""})
    if len(documents) <= config.num:
        return documents
    chosen = sorted(random.Random(config.seed).sample(range(len(documents)), config.num))
    return [documents[i] for i in chosen]


def run_annotate(config: AnnotateConfig) -> dict[str, Any]:
    """Grade the sample, write annotations, unscored records and the manifest; return the manifest."""
    started = time.perf_counter()
    prompt = load_prompt(config.template, config.prompt)
    documents = sample_documents(config)
    requests = [prompt.request(d["text"][:config.max_chars]) for d in documents]
    output = Path(config.output)
    with endpoint(config) as (base_url, model, served):
        cache = config.client.cache or str(output / "cache" / "requests.jsonl")
        client_config = dataclasses.replace(config.client, base_url=base_url, model=model, cache=cache,
                                            endpoint_id="served-locally" if served else None)
        responses, usage, client_config.model = asyncio.run(_send(client_config, requests, config.progress))
    return write_annotations(config, client_config, served, prompt, documents, responses, usage,
                         time.perf_counter() - started)


async def _send(config: ClientConfig, requests: list[Request], progress: bool):
    from instruct.progress import progress_bar

    async with LLMClient(config) as client:
        if client.config.model is None:
            client.config.model = await client.default_model()
        with progress_bar(progress, total=len(requests), desc="annotate", unit="doc") as bar:
            responses = await client.complete_many(requests, on_done=lambda _: bar.update(1))
        return responses, client.usage, client.config.model


def write_annotations(config: AnnotateConfig, client: ClientConfig, served: bool, prompt: AnnotationPrompt,
                  documents: list[dict], responses: list[Response], usage: Any, seconds: float) -> dict[str, Any]:
    output = Path(config.output)
    secret = client.resolved_key()
    scored, unscored = [], []
    for document, response in zip(documents, responses):
        score = prompt.score(response.text) if response.ok else None
        if score is not None:
            scored.append({**document, "score": score, "prompt": config.prompt, "model": client.model})
        else:
            reason = "no_score_in_reply" if response.ok else "request_failed"
            detail = response.text[:300] if response.ok else response.error
            unscored.append({"id": document["id"], "reason": reason, "detail": redact(detail or "", secret)})
    for name, rows in (("annotations.jsonl", scored), ("unscored.jsonl", unscored)):
        with atomic_path(output / name) as tmp:
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    settings = to_dict(config)
    settings["client"] = client.public()
    manifest = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "classify annotate",
        "endpoint": {"base_url": public_url(client.base_url), "model": client.model, "served_locally": served},
        "config": settings,
        "counts": {"sampled": len(documents), "scored": len(scored), "unscored": len(unscored),
                   "unscored_reasons": dict(Counter(r["reason"] for r in unscored)),
                   "scores": {str(k): v for k, v in sorted(Counter(r["score"] for r in scored).items())}},
        "usage": usage.as_dict(),
        "seconds": round(seconds, 3),
    }
    manifest = json.loads(redact(json.dumps(manifest, default=str), secret))
    write_json(manifest, output / "manifest.json")
    if not scored and documents:
        print(f"warning: no reply carried a score; see {output / 'unscored.jsonl'}", file=sys.stderr)
    return manifest
