"""`--method answer`: an endpoint (typically a bigger teacher) answers a given instruction set, K samples
per prompt: sequence-level distillation (Kim & Rush 2016) into EXAMPLE rows.

Sample i of a prompt carries `seed = recipe seed + i` in its request, so samples differ at temperature
> 0, a re-run sends identical requests (the cache answers them), and `--samples 4` after `--samples 2`
only pays for samples 2 and 3.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from instruct.schema import content_id
from instruct.synth.client import LLMClient, Request, Response
from instruct.synth.self_instruct import SynthOutput


def _answer_params() -> dict[str, Any]:
    return {"temperature": 0.7, "top_p": 0.95, "max_tokens": 1024}


@dataclass
class AnswerConfig:
    samples: int = 1  # answers kept per prompt
    params: dict[str, Any] = field(default_factory=_answer_params)
    system: str | None = None  # prepended to every prompt that has no system turn
    keep_truncated: bool = False  # an answer cut by max_tokens is rejected unless set


@dataclass
class Candidate:
    """One sampled answer to one prompt."""

    prompt: dict[str, Any]  # {id, prompt, reference}
    sample: int
    response: Response
    model: str | None


async def sample_answers(client: LLMClient, prompts: list[dict[str, Any]], config: AnswerConfig, seed: int,
                         out: SynthOutput, progress: Callable[..., Any] | None = None) -> list[list[Candidate]]:
    """`config.samples` answers per prompt; failed, empty and (unless kept) truncated ones are rejected
    and counted under stage `answer`. Returns the usable candidates of each prompt, in sample order."""
    bar = progress(total=len(prompts) * config.samples, desc="answers") if progress else None
    requests = [Request(messages=tuple(_with_system(p["prompt"], config.system)),
                        params={**config.params, "seed": seed + i}, salt=f"answer:{i}")
                for p in prompts for i in range(config.samples)]
    responses = await client.complete_many(requests, on_done=(lambda _: bar.update(1)) if bar else None)
    if bar is not None:
        bar.close()
    usable: list[list[Candidate]] = []
    for index, prompt in enumerate(prompts):
        kept = []
        for sample in range(config.samples):
            response = responses[index * config.samples + sample]
            reason = _answer_reason(response, config.keep_truncated)
            if reason is not None:
                out.reject("answer", reason, {"id": prompt["id"], "sample": sample, "text": response.text,
                                              "error": response.error})
                continue
            out.keep("answer")
            kept.append(Candidate(prompt, sample, response, response.model or client.config.model))
        usable.append(kept)
    return usable


def _with_system(messages: list[dict[str, str]], system: str | None) -> list[dict[str, str]]:
    if system and not any(m["role"] == "system" for m in messages):
        return [{"role": "system", "content": system}, *messages]
    return list(messages)


def _answer_reason(response: Response, keep_truncated: bool) -> str | None:
    if not response.ok:
        return "request_failed"
    if not response.text.strip():
        return "empty_answer"
    if response.finish_reason == "length" and not keep_truncated:
        return "truncated_answer"
    return None


class Answer:
    def __init__(self, config: AnswerConfig, client: LLMClient, seed: int = 42,
                 progress: Callable[..., Any] | None = None):
        self.config, self.client, self.seed, self.progress = config, client, seed, progress

    async def run(self, prompts: list[dict[str, Any]], num: int) -> SynthOutput:
        out = SynthOutput()
        chosen = prompts[:num]
        out.keep("input", len(chosen))
        for candidates in await sample_answers(self.client, chosen, self.config, self.seed, out, self.progress):
            for candidate in candidates:
                out.rows.append(answer_row(candidate, self.config.params))
        return out


def answer_row(candidate: Candidate, params: dict[str, Any]) -> dict[str, Any]:
    prompt, text = candidate.prompt, candidate.response.text.strip()
    meta = {"method": "answer", "model": candidate.model, "prompt_id": prompt["id"], "sample": candidate.sample,
            "finish_reason": candidate.response.finish_reason, "params": params,
            "reference": prompt["reference"]}
    return {"id": content_id("answer", prompt["id"], str(candidate.sample), text), "source": "answer",
            "messages": [*prompt["prompt"], {"role": "assistant", "content": text}], "meta": meta}

