"""Evol-Instruct (Xu et al., 2023, WizardLM): evolve instructions of existing EXAMPLE rows for several rounds.

Each round picks one operation per instruction uniformly: in-depth (add constraints, deepen, concretise,
increase reasoning steps, complicate input) or in-breadth (a new, rarer instruction of the same domain).
The evolved instruction is answered by the model, then eliminated when (paper section 3.3):
1. it brings no information gain (the model judges the pair "Equal", or it is unchanged),
2. the answer looks like a refusal ("sorry" and fewer than 80 words),
3. the answer is only punctuation and stop words,
4. it copies the evolving prompt's scaffolding ("#Rewritten Prompt#", "given prompt", ...).
A failed evolution leaves the instruction in the pool for the next round, as in the paper; every
successful one becomes an EXAMPLE row with its lineage in `meta`.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from instruct.schema import content_id
from instruct.synth import prompts
from instruct.synth.client import LLMClient, Request, Response
from instruct.synth.filters import EliminationRules, answer_reason, evolution_reason, judged_equal
from instruct.synth.self_instruct import SynthOutput


def _chat_params() -> dict[str, Any]:
    return {"temperature": 1, "max_tokens": 2048, "top_p": 0.95, "frequency_penalty": 0, "presence_penalty": 0}


def _judge_params() -> dict[str, Any]:
    return {"temperature": 0, "max_tokens": 8}


@dataclass
class EvolInstructConfig:
    """Defaults follow WizardLM's Evol_Instruct scripts (gpt-3.5-turbo, temperature 1, top_p 0.95)."""

    endpoint: Literal["chat", "completions"] = "chat"
    rounds: int = 4  # the paper's M = 4 epochs
    operations: list[str] = field(default_factory=lambda: list(prompts.EVOL_OPERATIONS))
    system: str | None = prompts.EVOL_SYSTEM
    evolve_params: dict[str, Any] = field(default_factory=_chat_params)
    answer_params: dict[str, Any] = field(default_factory=_chat_params)
    judge_params: dict[str, Any] = field(default_factory=_judge_params)
    check_equality: bool = True  # rule 1 through the model's Equal / Not Equal judgement
    rules: EliminationRules = field(default_factory=EliminationRules)


class EvolInstruct:
    def __init__(self, config: EvolInstructConfig, client: LLMClient, seed: int = 42,
                 progress: Callable[..., Any] | None = None):
        unknown = sorted(set(config.operations) - set(prompts.EVOL_OPERATIONS))
        if unknown or not config.operations:
            from instruct.config import ConfigError

            raise ConfigError(f"evol_instruct.operations: unknown {unknown or 'empty list'}; "
                              f"choose from {', '.join(prompts.EVOL_OPERATIONS)}")
        self.config = config
        self.client = client
        self.rng = random.Random(seed)
        self.progress = progress
        self.model = client.config.model

    def _request(self, prompt: str, params: dict[str, Any], salt: str = "") -> Request:
        if self.config.endpoint == "completions":
            return Request(prompt=prompt, params=params, salt=salt)
        system = ({"role": "system", "content": self.config.system},) if self.config.system else ()
        return Request(messages=system + ({"role": "user", "content": prompt},), params=params, salt=salt)

    async def run(self, examples: list[dict[str, Any]], num: int) -> SynthOutput:
        out = SynthOutput()
        pool = []
        for example in examples[:num]:
            user = next((m["content"] for m in example["messages"] if m["role"] == "user"), None)
            if not user or not user.strip():
                out.reject("input", "no_user_message", {"id": example["id"]})
                continue
            out.keep("input")
            pool.append({"root": example["id"], "parent": example["id"], "instruction": user, "lineage": []})
        bar = self.progress(total=len(pool) * self.config.rounds, desc="evolutions") if self.progress else None
        for round_number in range(1, self.config.rounds + 1):
            await self._round(pool, round_number, out)
            if bar is not None:
                bar.update(len(pool))
        if bar is not None:
            bar.close()
        return out

    async def _round(self, pool: list[dict[str, Any]], round_number: int, out: SynthOutput) -> None:
        config = self.config
        operations = [self.rng.choice(config.operations) for _ in pool]
        evolve = [self._request(prompts.evolve_prompt(item["instruction"], op), config.evolve_params,
                                salt=f"evolve:{item['root']}:{round_number}")
                  for item, op in zip(pool, operations)]
        evolved_responses = await self.client.complete_many(evolve)
        survivors = []
        for item, operation, response in zip(pool, operations, evolved_responses):
            record = {"root": item["root"], "round": round_number, "operation": operation}
            if not response.ok:
                out.reject("evolution", "request_failed", {**record, "error": response.error})
                continue
            evolved = response.text.strip()
            reason = evolution_reason(item["instruction"], evolved, config.rules)
            if reason is None and response.finish_reason == "length":
                reason = "truncated_evolution"
            if reason is not None:
                out.reject("evolution", reason, {**record, "text": evolved})
                continue
            survivors.append((item, operation, evolved, record))
        answers = [self._request(evolved, config.answer_params) for _, _, evolved, _ in survivors]
        judges = [self._request(prompts.equality_prompt(item["instruction"], evolved), config.judge_params)
                  for item, _, evolved, _ in survivors] if config.check_equality else []
        responses = await self.client.complete_many(answers + judges)
        answer_responses, judge_responses = responses[:len(answers)], responses[len(answers):]
        for index, (item, operation, evolved, record) in enumerate(survivors):
            judge = judge_responses[index] if judges else None
            self._decide(item, operation, evolved, record, answer_responses[index], judge, out)

    def _decide(self, item: dict[str, Any], operation: str, evolved: str, record: dict[str, Any],
                answer: Response, judge: Response | None, out: SynthOutput) -> None:
        if not answer.ok or (judge is not None and not judge.ok):
            out.reject("evolution", "request_failed", {**record, "text": evolved,
                                                       "error": answer.error or judge.error})
            return
        if judge is not None and judged_equal(judge.text):
            out.reject("evolution", "no_information_gain", {**record, "text": evolved, "judgement": judge.text})
            return
        reason = answer_reason(answer.text, answer.finish_reason, self.config.rules)
        if reason is not None:
            out.reject("evolution", reason, {**record, "text": evolved, "answer": answer.text})
            return
        out.keep("evolution")
        meta = {"method": "evol-instruct", "model": self.model, "operation": operation,
                "kind": "in-breadth" if operation == "breadth" else "in-depth", "round": record["round"],
                "root_id": item["root"], "parent_id": item["parent"], "parent_instruction": item["instruction"],
                "lineage": item["lineage"] + [operation],
                "params": {"endpoint": self.config.endpoint, "evolve": self.config.evolve_params,
                           "answer": self.config.answer_params,
                           "judge": self.config.judge_params if judge is not None else None},
                "filters": {"evolution": "kept", "judgement": judge.text.strip() if judge else None,
                            "answer": "kept", "answer_finish_reason": answer.finish_reason}}
        row_id = content_id("evol-instruct", evolved, answer.text)
        out.rows.append({"id": row_id, "source": "evol-instruct", "meta": meta,
                         "messages": [{"role": "user", "content": evolved},
                                      {"role": "assistant", "content": answer.text.strip()}]})
        item.update(parent=row_id, instruction=evolved, lineage=item["lineage"] + [operation])
