"""`instruct synth --method cot`: step-by-step rationales for labeled items, kept only when they reach the label.

STaR (Zelikman et al. 2022) in one pass: the teacher writes K rationales per item (rationale, then
"So the answer is X."); a rationale is kept when the answer extracted by the item's pattern equals
the label. Items none of whose samples reached the label get a rationalisation pass: the same
prompt with the label given as a hint; a rationale that then reaches the label is kept too, and the
training row holds the prompt *without* the hint (the model learns to reach the answer unaided).
Every sample is counted by stage and reason in the manifest (`rationale`, `rationalization`), and
kept rows say in `meta.rationalized` which pass produced them.

Input (`--data`): labeled rows (any file `datasets` loads) rendered through a CoT template of the
library (`cot.templates`, e.g. `nli_cot`: its prompt is what the teacher answers, its
`answer_pattern` extracts the answer, and the target rendered with an empty rationale gives the
label's answer), or EXAMPLE rows / chat JSONL, whose last assistant turn is the label and whose
prompt gets `cot.instruction` appended.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from instruct.config import ConfigError
from instruct.schema import content_id
from instruct.synth.client import LLMClient, Request, Response
from instruct.synth.self_instruct import SynthOutput
from instruct.templates.answers import DEFAULT_ANSWER_PATTERN, extract_answer, normalize_answer, same_answer


def _rationale_params() -> dict[str, Any]:
    return {"temperature": 0.7, "top_p": 0.95, "max_tokens": 256}


@dataclass
class CotConfig:
    """Defaults: K = 1 sample at temperature 0.7, one rationale kept per item, rationalisation on."""

    templates: list[str] = field(default_factory=list)  # labeled --data: CoT template files or library names
    names: list[str] = field(default_factory=list)  # template names to use (default: all of them)
    samples: int = 1  # K rationales per item (seeds 0..K-1)
    keep: int = 1  # correct, distinct rationales kept per item
    rationalize: bool = True  # hint the label for items no sample solved
    hint: str = "Hint: the correct answer is {answer}. Explain the reasoning that leads to it."
    instruction: str = 'Think step by step, then finish with "So the answer is" and your answer.'
    answer_pattern: str = DEFAULT_ANSWER_PATTERN  # EXAMPLE input (templates declare their own)
    system: str | None = None
    params: dict[str, Any] = field(default_factory=_rationale_params)


@dataclass
class CotItem:
    """One labeled question: the prompt turns the teacher answers, the label's answer and how to find it."""

    id: str
    messages: list[dict[str, str]]
    answer: str
    pattern: str
    template: str | None = None


@dataclass
class CotInputs:
    items: list[CotItem]
    out: SynthOutput  # already holds the `input` stage: rows kept and skipped while loading


def load_cot_items(path: str, config: CotConfig, seed: int) -> CotInputs:
    """Labeled rows through CoT templates (when `cot.templates` is set), else EXAMPLE rows; skips are counted."""
    out = SynthOutput()
    loader = _labeled_items if config.templates else _example_items
    return CotInputs(loader(path, config, seed, out), out)


def _example_items(path: str, config: CotConfig, seed: int, out: SynthOutput) -> list[CotItem]:
    from instruct.io.examples import load_examples

    items = []
    for example in load_examples(path):
        messages = [{"role": m["role"], "content": m["content"]} for m in example["messages"]]
        if len(messages) < 2 or messages[-1]["role"] != "assistant" or messages[-2]["role"] != "user":
            out.reject("input", "no_user_then_assistant", {"id": example["id"]})
            continue
        label = messages[-1]["content"].strip()
        prompt = messages[:-1]
        prompt[-1] = {"role": "user", "content": f"{prompt[-1]['content'].rstrip()}\n{config.instruction}"}
        out.keep("input")
        items.append(CotItem(str(example["id"]), _with_system(prompt, config.system), label, config.answer_pattern))
    return items


def _labeled_items(path: str, config: CotConfig, seed: int, out: SynthOutput) -> list[CotItem]:
    from instruct.io.readers.dataset import load_split
    from instruct.templates.render import stable_seed
    from instruct.templates.step import TemplateConfig, select_templates

    pool = select_templates(TemplateConfig(templates=config.templates, names=config.names))
    missing = [t.name for t in pool if not t.answer_pattern]
    if missing:
        raise ConfigError(f"cot.templates: {', '.join(missing)} declare no answer_pattern (not CoT templates)")
    loaded, split, offset = load_split(path)
    items = []
    for number, row in enumerate(loaded, start=offset):
        row_id = str(row.get("id", f"{path}/{split}/{number}"))
        template = pool[stable_seed(seed, row_id, "cot-template") % len(pool)]
        rendered = template.apply({**row, "rationale": ""}, seed=seed, where=f"{number} of {path}[{split}]")
        if rendered is None:
            out.reject("input", "unlabeled", {"id": row_id})
            continue
        prompt, target = rendered
        answer = extract_answer(target, template.answer_pattern)
        if answer is None:
            raise ConfigError(f"{template.describe()}: its answer_pattern finds no answer in its own target {target!r}")
        out.keep("input")
        items.append(CotItem(row_id, _with_system([{"role": "user", "content": prompt}], config.system), answer,
                             template.answer_pattern, template.name))
    return items


def _with_system(messages: list[dict[str, str]], system: str | None) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + messages


class ChainOfThought:
    """Rejection-sampled rationales (STaR), with a rationalisation pass for the items the teacher got wrong."""

    def __init__(self, config: CotConfig, client: LLMClient, seed: int = 42,
                 progress: Callable[..., Any] | None = None):
        if config.samples < 1 or config.keep < 1:
            raise ConfigError("cot.samples and cot.keep must be at least 1")
        self.config, self.client, self.seed, self.progress = config, client, seed, progress

    async def run(self, inputs: CotInputs, num: int | None = None) -> SynthOutput:
        """Rationales for the first `num` items (all when None); the rest are counted as `beyond_num`."""
        config, out = self.config, inputs.out
        items = inputs.items[:num]
        if len(inputs.items) > len(items):
            out.reject("input", "beyond_num", count=len(inputs.items) - len(items))
        requests = [self._request(item.messages, sample) for item in items for sample in range(config.samples)]
        bar = self.progress(total=len(requests), desc="rationales") if self.progress else None
        responses = await self.client.complete_many(requests, on_done=(lambda _: bar.update()) if bar else None)
        outcomes = out.outcomes.setdefault("items", Counter())
        unsolved = []
        for position, item in enumerate(items):
            samples = responses[position * config.samples:(position + 1) * config.samples]
            if self._judge(item, samples, "rationale", out, rationalized=False):
                outcomes["solved"] += 1
            else:
                unsolved.append(item)
        if config.rationalize and unsolved:
            hinted = [self._request(self._hinted(item), 0) for item in unsolved]
            for item, response in zip(unsolved, await self.client.complete_many(hinted)):
                outcomes["rationalized" if self._judge(item, [response], "rationalization", out, True)
                         else "unsolved"] += 1
        else:
            outcomes["unsolved"] += len(unsolved)
        if bar is not None:
            bar.close()
        return out

    def _request(self, messages: list[dict[str, str]], sample: int) -> Request:
        return Request(messages=tuple(messages), params={**self.config.params, "seed": self.seed + sample})

    def _hinted(self, item: CotItem) -> list[dict[str, str]]:
        hint = self.config.hint.replace("{answer}", item.answer)
        *before, last = item.messages
        return before + [{"role": "user", "content": f"{last['content']}\n{hint}"}]

    def _judge(self, item: CotItem, responses: list[Response], stage: str, out: SynthOutput,
               rationalized: bool) -> bool:
        """Keep up to `keep` distinct samples whose extracted answer is the label; True when any was kept."""
        kept: list[str] = []
        for sample, response in enumerate(responses):
            record = {"id": item.id, "sample": sample, "answer": item.answer}
            text = response.text.strip()
            extracted = extract_answer(text, item.pattern) if response.ok else None
            reason = self._reason(response, text, extracted, item, rationalized)
            if reason is None and " ".join(text.split()) in kept:
                reason = "duplicate"
            if reason is None and len(kept) >= self.config.keep:
                reason = "over_keep"
            if reason is not None:
                out.reject(stage, reason, {**record, "text": text, "extracted": extracted, "error": response.error})
                continue
            out.keep(stage)
            kept.append(" ".join(text.split()))
            out.rows.append(self._row(item, text, extracted, sample, rationalized))
        return bool(kept)

    @staticmethod
    def _reason(response: Response, text: str, extracted: str | None, item: CotItem, rationalized: bool) -> str | None:
        if not response.ok:
            return "request_failed"
        if response.finish_reason == "length":
            return "truncated"
        if extracted is None:
            return "no_answer"
        if not same_answer(extracted, item.answer):
            return "wrong_answer"
        if rationalized and "hint" in text.casefold():
            return "mentions_hint"  # the row is trained without the hint, so the rationale must not cite it
        if normalize_answer(text) == normalize_answer(extracted) or len(text.split()) <= len(extracted.split()) + 4:
            return "no_rationale"  # just the answer line: nothing to learn beyond direct answers
        return None

    def _row(self, item: CotItem, text: str, extracted: str, sample: int, rationalized: bool) -> dict[str, Any]:
        meta = {"method": "cot", "model": self.client.config.model, "input_id": item.id, "answer": item.answer,
                "extracted": extracted, "sample": sample, "rationalized": rationalized,
                "answer_pattern": item.pattern, "params": self.config.params}
        if item.template:
            meta["template"] = item.template
        return {"id": content_id("cot", item.id, text), "source": "cot", "meta": meta,
                "messages": item.messages + [{"role": "assistant", "content": text}]}
