"""Self-Instruct (Wang et al., 2022), stage by stage as in yizhongw/self-instruct:

1. bootstrap: prompts of 8 instructions (6 human seeds + 2 accepted machine ones, shuffled) ask the model
   to continue a numbered list; responses are split, normalised and filtered (length, blacklist,
   "Write a program", punctuation / non-ASCII start), then kept only if their ROUGE-L F with every
   instruction kept so far is at most 0.7;
2. classification identification: a few-shot "Is it classification?" prompt per new instruction;
3. instances: output-first (labels, then inputs) for classification tasks, input-first otherwise;
   parsed and filtered (truncated last instance, empty output, input == output, trailing colon,
   conflicting outputs for one input, duplicates), at most 5 per task.

Everything random comes from one seeded generator, and results are consumed in request order, so a
re-run replays the same prompts and the request cache answers them: resuming costs nothing twice.
"""
from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from instruct.io.readers.base import InputError
from instruct.io.records import json_objects
from instruct.schema import content_id
from instruct.synth import prompts
from instruct.synth.client import LLMClient, Request, Response
from instruct.synth.filters import (
    InstructionRules,
    filter_instances,
    instruction_reason,
    normalize_instruction,
    parse_classification_instances,
    parse_generation_instances,
    split_instructions,
)
from instruct.synth.rouge import RougeIndex


def _bootstrap_params() -> dict[str, Any]:
    return {"max_tokens": 1024, "temperature": 0.7, "top_p": 0.5, "frequency_penalty": 0, "presence_penalty": 2,
            "stop": ["\n\n", "\n16", "16.", "16 ."]}


def _classify_params() -> dict[str, Any]:
    return {"max_tokens": 3, "temperature": 0, "top_p": 0, "frequency_penalty": 0, "presence_penalty": 0,
            "stop": ["\n", "Task"]}


def _instance_params() -> dict[str, Any]:
    return {"temperature": 0, "top_p": 0, "frequency_penalty": 0, "presence_penalty": 1.5,
            "stop": ["Example 6", "Task:"]}


@dataclass
class SelfInstructConfig:
    """Defaults are the original scripts' settings."""

    endpoint: Literal["completions", "chat"] = "completions"  # the paper used a completion model
    num_prompt_instructions: int = 8
    num_machine_instructions: int = 2  # of the 8, sampled from accepted machine instructions
    request_batch_size: int = 16  # bootstrap prompts sent together before the pool is updated
    classification_only: bool = False  # prompt with classification seeds only (--use_clf_seed_tasks_only)
    bootstrap_params: dict[str, Any] = field(default_factory=_bootstrap_params)
    classify_params: dict[str, Any] = field(default_factory=_classify_params)
    instance_params: dict[str, Any] = field(default_factory=_instance_params)
    max_tokens_classification: int = 300  # instance generation, output-first prompts (longer template)
    max_tokens_generation: int = 350
    max_instances: int = 5
    include_seed_tasks: bool = False  # also emit the seed tasks' own instances
    patience: int = 20  # stop after this many bootstrap batches in a row add no instruction
    rules: InstructionRules = field(default_factory=InstructionRules)


@dataclass
class SeedTask:
    instruction: str
    instances: list[dict[str, str]]
    is_classification: bool
    id: str = ""
    name: str = ""


@dataclass
class SynthOutput:
    """What a method produced: rows to write, rejected candidates, and counts per stage and reason."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, Counter] = field(default_factory=dict)
    extra_usage: dict[str, dict[str, Any]] = field(default_factory=dict)  # clients besides the main one (a judge)
    outcomes: dict[str, Counter] = field(default_factory=dict)  # tallies that are not rejections (per item)

    def reject(self, stage: str, reason: str, record: dict[str, Any] | None = None, count: int = 1) -> None:
        self.counts.setdefault(stage, Counter())[reason] += count
        if record is not None:
            self.rejected.append({"stage": stage, "reason": reason, **record})

    def keep(self, stage: str, count: int = 1) -> None:
        self.counts.setdefault(stage, Counter())["kept"] += count


def load_seed_tasks(path: str | Path) -> list[SeedTask]:
    """Seed tasks in the original 175-task JSONL format; a bad record is an error naming file:line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such seed-task file")
    tasks = []
    for index, (where, record) in enumerate(json_objects(path)):
        if not isinstance(record.get("instruction"), str) or not record["instruction"].strip():
            raise InputError(f"{where}: a seed task needs a non-empty 'instruction' string")
        instances = record.get("instances", [])
        if not isinstance(instances, list) or not all(
                isinstance(i, dict) and isinstance(i.get("input", ""), str) and isinstance(i.get("output"), str)
                for i in instances):
            raise InputError(f"{where}: 'instances' must be a list of {{input, output}} strings")
        if not isinstance(record.get("is_classification", False), bool):
            raise InputError(f"{where}: 'is_classification' must be true or false")
        tasks.append(SeedTask(record["instruction"], instances, record.get("is_classification", False),
                              str(record.get("id", f"seed_task_{index}")), str(record.get("name", ""))))
    if not tasks:
        raise InputError(f"{path}: no seed tasks")
    return tasks


class SelfInstruct:
    def __init__(self, config: SelfInstructConfig, client: LLMClient, seed: int = 42,
                 progress: Callable[..., Any] | None = None):
        self.config = config
        self.client = client
        self.seed = seed
        self.rng = random.Random(seed)
        self.progress = progress
        self.model = client.config.model

    def _request(self, prompt: str, params: dict[str, Any], salt: str = "") -> Request:
        if self.config.endpoint == "chat":
            return Request(messages=({"role": "user", "content": prompt},), params=params, salt=salt)
        return Request(prompt=prompt, params=params, salt=salt)

    async def run(self, tasks: list[SeedTask], num: int) -> SynthOutput:
        """Bootstrap; each kept instruction's classification and instance requests start at once, so they
        fill the concurrency the sequential bootstrap batches leave free. Rows are built in acceptance order."""
        out = SynthOutput()
        self._downstream: list[asyncio.Future] = []
        self._tasks_bar = self.progress(total=num, desc="tasks") if self.progress else None
        await self.bootstrap(tasks, num, out)
        for task, request, response in await asyncio.gather(*self._downstream):
            self._instances(task, request, response, out)
        if self._tasks_bar is not None:
            self._tasks_bar.close()
        if self.config.include_seed_tasks:
            self._seed_rows(tasks, out)
        return out

    # -- stage 1 -----------------------------------------------------------------------------------
    async def bootstrap(self, tasks: list[SeedTask], num: int, out: SynthOutput) -> list[dict[str, Any]]:
        config, rules = self.config, self.config.rules
        seeds = [t.instruction for t in tasks if t.is_classification or not config.classification_only]
        human_per_prompt = config.num_prompt_instructions - config.num_machine_instructions
        if len(seeds) < human_per_prompt:
            raise InputError(f"{len(seeds)} seed instructions; a prompt needs at least {human_per_prompt}")
        index = RougeIndex(rules.rouge_threshold, seeds)
        machine: list[dict[str, Any]] = []
        request_index, stale = 0, 0
        bar = self.progress(total=num, desc="instructions") if self.progress else None
        while len(machine) < num and stale < config.patience:
            batch = []
            for _ in range(config.request_batch_size):
                pool = [m["instruction"] for m in machine]
                chosen = self.rng.sample(pool, min(config.num_machine_instructions, len(pool)))
                chosen += self.rng.sample(seeds, config.num_prompt_instructions - len(chosen))
                self.rng.shuffle(chosen)
                batch.append(chosen)
            requests = [self._request(prompts.encode_bootstrap_prompt(chosen, config.classification_only),
                                      config.bootstrap_params, salt=f"bootstrap:{request_index + i}")
                        for i, chosen in enumerate(batch)]
            responses = await self.client.complete_many(requests)
            before = len(machine)
            for offset, (chosen, response) in enumerate(zip(batch, responses)):
                for task in self._take(request_index + offset, chosen, response, index, machine, num, out):
                    self._downstream.append(asyncio.ensure_future(self._label_and_generate(task)))
            request_index += len(batch)
            stale = stale + 1 if len(machine) == before else 0
            if bar is not None:
                bar.update(len(machine) - before)
        if bar is not None:
            bar.close()
        if len(machine) < num:
            out.counts.setdefault("bootstrap", Counter())["stopped_without_progress"] += 1
        return machine

    def _take(self, request_index: int, chosen: list[str], response: Response, index: RougeIndex,
              machine: list[dict[str, Any]], num: int, out: SynthOutput) -> list[dict[str, Any]]:
        """Filter one bootstrap response; kept instructions join `machine` and the index, and are returned."""
        rules = self.config.rules
        record = {"request": request_index}
        if not response.ok:
            out.reject("bootstrap_response", "request_failed", {**record, "error": response.error})
            return []
        if response.finish_reason == "length":  # upstream drops a response cut by max_tokens entirely
            out.reject("bootstrap_response", "truncated_response", {**record, "text": response.text})
            return []
        out.keep("bootstrap_response")
        kept = []
        for raw in split_instructions(response.text):
            instruction = normalize_instruction(raw)
            reason = instruction_reason(instruction, rules)
            nearest = None
            if reason is None:
                best = index.most_similar(instruction, k=1)
                nearest = {"text": index.texts[best[0][0]], "rouge_l": best[0][1]} if best else None
                if best and best[0][1] > rules.rouge_threshold:
                    reason = "rouge_l_above_threshold"
            if reason is None and len(machine) >= num:
                reason = "surplus_over_num"
            if reason is not None:
                out.reject("instruction", reason, {**record, "text": instruction, "nearest": nearest})
                continue
            out.keep("instruction")
            index.add(instruction)
            task = {"instruction": instruction, "request": request_index, "prompt_instructions": chosen,
                    "nearest": nearest}
            machine.append(task)
            kept.append(task)
        return kept

    # -- stages 2 and 3, per instruction ---------------------------------------------------------------
    async def _label_and_generate(self, task: dict[str, Any]) -> tuple[dict[str, Any], Request | None, Response]:
        """Classification identification, then output-first or input-first instance generation."""
        config = self.config
        answer = await self.client.complete(self._request(prompts.classification_prompt(task["instruction"]),
                                                          config.classify_params))
        task["classify_answer"] = answer.text if answer.ok else None
        task["is_classification"] = answer.ok and answer.text.strip() in ("Yes", "yes", "YES")
        if not answer.ok:
            return task, None, answer
        clf = task["is_classification"]
        params = {**config.instance_params,
                  "max_tokens": config.max_tokens_classification if clf else config.max_tokens_generation}
        request = self._request(prompts.instance_prompt(task["instruction"], clf), params)
        response = await self.client.complete(request)
        if self._tasks_bar is not None:
            self._tasks_bar.update(1)
        return task, request, response

    def _instances(self, task: dict[str, Any], request: Request | None, response: Response,
                   out: SynthOutput) -> None:
        if not response.ok:
            out.reject("task", "request_failed", {"text": task["instruction"], "error": response.error})
            return
        parse = parse_classification_instances if task["is_classification"] else parse_generation_instances
        parsed = parse(response.text)
        rng = random.Random(f"{self.seed}:{task['instruction']}")
        decision = filter_instances(parsed, response.finish_reason, self.config.max_instances, rng)
        for reason, count in decision.dropped.items():
            out.reject("instance", reason, count=count)
        if not decision.kept:
            out.reject("task", "no_valid_instances", {"text": task["instruction"], "response": response.text})
            return
        out.keep("task")
        out.keep("instance", len(decision.kept))
        filters = {"instruction": "kept", "nearest": task["nearest"],
                   "classification_answer": task["classify_answer"],
                   "instances": {"parsed": len(parsed), "kept": len(decision.kept), "dropped": decision.dropped}}
        for inst_input, inst_output in decision.kept:
            out.rows.append(self._row(task, inst_input, inst_output, request.params, filters))

    def _row(self, task: dict[str, Any], inst_input: str, inst_output: str, instance_params: dict[str, Any],
             filters: dict[str, Any]) -> dict[str, Any]:
        instruction = task["instruction"]
        prompt = instruction if not inst_input else f"{instruction}\n\n{inst_input}"
        meta = {"method": "self-instruct", "model": self.model, "instruction": instruction, "input": inst_input,
                "is_classification": task["is_classification"], "bootstrap_request": task["request"],
                "prompt_instructions": task["prompt_instructions"],
                "instance_template": "output_first" if task["is_classification"] else "input_first",
                "params": {"endpoint": self.config.endpoint, "bootstrap": self.config.bootstrap_params,
                           "classify": self.config.classify_params, "instances": instance_params},
                "filters": filters}
        return {"id": content_id("self-instruct", instruction, inst_input, inst_output),
                "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": inst_output}],
                "source": "self-instruct", "meta": meta}

    def _seed_rows(self, tasks: list[SeedTask], out: SynthOutput) -> None:
        for task in tasks:
            for instance in task.instances:
                inst_input = instance.get("input", "")
                prompt = task.instruction if not inst_input else f"{task.instruction}\n\n{inst_input}"
                out.rows.append({"id": content_id("seed", task.instruction, inst_input, instance["output"]),
                                 "messages": [{"role": "user", "content": prompt},
                                              {"role": "assistant", "content": instance["output"]}],
                                 "source": "self-instruct-seed",
                                 "meta": {"method": "seed", "seed_task": task.id, "instruction": task.instruction,
                                          "input": inst_input, "is_classification": task.is_classification}})
                out.keep("seed_instance")
