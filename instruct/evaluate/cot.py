"""`instruct eval --cot`: chain-of-thought answers scored on their final answer, and self-consistency.

Zero-shot CoT appends a "think step by step" instruction that also names the closing line (Kojima
et al. 2022 use the trigger; the closing line makes the answer extractable in one pass); with
`--cot-demos`, the first `--cot-shots` CoT examples (e.g. `instruct synth --method cot` output) come
first as earlier turns (few-shot CoT, Wei et al. 2022). Examples built by a CoT template already ask for
reasoning and carry their own `answer_pattern` in meta; their reference answer is extracted from the
target. Self-consistency (Wang et al. 2023) samples K rationales at a temperature and takes the majority
answer. The metrics go beside the direct ones: `cot_accuracy` (greedy), `sc_accuracy` (vote).
"""
from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from instruct.schema import load_meta
from instruct.templates.answers import DEFAULT_ANSWER_PATTERN, extract_answer, normalize_answer, same_answer

ZERO_SHOT_TRIGGER = "Let's think step by step, then finish with \"So the answer is\" and your answer."


def majority_vote(answers: list[str | None]) -> str | None:
    """The most frequent answer after normalisation; a tie goes to the answer seen first; None if none."""
    normalized = [normalize_answer(a) for a in answers if a is not None and normalize_answer(a)]
    if not normalized:
        return None
    counts = Counter(normalized)
    best = max(counts.values())
    winner = next(a for a in normalized if counts[a] == best)
    return next(a for a in answers if a is not None and normalize_answer(a) == winner)


def cot_prompt(example: dict[str, Any], demos: list[list[dict[str, str]]]) -> tuple[list[dict[str, str]], str, str]:
    """(messages to generate from, answer pattern, reference answer) for one example."""
    meta = load_meta(example.get("meta"))
    messages = [dict(m) for m in example["messages"][:-1]]
    target = example["messages"][-1]["content"]
    pattern = meta.get("answer_pattern")
    if pattern:  # a CoT template: its prompt asks for reasoning, its target ends in the answer line
        reference = extract_answer(target, pattern) or target
    else:
        pattern, reference = DEFAULT_ANSWER_PATTERN, target
        messages[-1] = {"role": messages[-1]["role"], "content": f"{messages[-1]['content'].rstrip()}\n"
                                                                 f"{ZERO_SHOT_TRIGGER}"}
    system = [m for m in messages if m["role"] == "system"]
    rest = [m for m in messages if m["role"] != "system"]
    return system + [turn for demo in demos for turn in demo] + rest, pattern, reference


def load_demos(path: str | None, shots: int) -> list[list[dict[str, str]]]:
    """The last user + assistant turns of the first `shots` examples at `path`."""
    if not path or shots < 1:
        return []
    from instruct.io.examples import load_examples

    demos = []
    for example in load_examples(path):
        turns = [{"role": m["role"], "content": m["content"]} for m in example["messages"] if m["role"] != "system"]
        if len(turns) >= 2 and turns[-2]["role"] == "user" and turns[-1]["role"] == "assistant":
            demos.append(turns[-2:])
        if len(demos) == shots:
            break
    if not demos:
        raise ValueError(f"{path}: no user/assistant example to use as a CoT demonstration")
    return demos


def score_cot(model: Any, tokenizer: Any, examples: list[dict[str, Any]], config: Any,
              per_item: dict[str, np.ndarray], rows: dict[int, dict[str, Any]]) -> None:
    """Add cot_accuracy (and sc_accuracy when config.samples > 1) to `per_item`, and the answers to `rows`."""
    import torch

    from instruct.evaluate.scoring import generate

    demos = load_demos(config.cot_demos, config.cot_shots)
    prompts = [cot_prompt(e, demos) for e in examples]
    messages = [p for p, _, _ in prompts]
    batch = max(1, config.batch_size // 2)
    greedy = generate(model, tokenizer, messages, config.cot_max_new_tokens, batch)
    answers = [extract_answer(reply, pattern) for reply, (_, pattern, _) in zip(greedy, prompts)]
    per_item["cot_accuracy"] = np.array([float(same_answer(a, ref)) for a, (_, _, ref) in zip(answers, prompts)])
    voted: list[str | None] = [None] * len(examples)
    if config.samples > 1:
        torch.manual_seed(config.seed)
        sampled = generate(model, tokenizer, messages, config.cot_max_new_tokens, batch,
                           num_samples=config.samples, temperature=config.temperature)
        for i, (_, pattern, _) in enumerate(prompts):
            voted[i] = majority_vote([extract_answer(r, pattern) for r in sampled[i]])
        per_item["sc_accuracy"] = np.array([float(same_answer(v, ref)) for v, (_, _, ref) in zip(voted, prompts)])
    for i, example in enumerate(examples):
        row = rows.setdefault(i, {"id": example["id"], "target": example["messages"][-1]["content"]})
        row.update(cot_reply=greedy[i], cot_answer=answers[i], reference_answer=prompts[i][2])
        if config.samples > 1:
            row["sc_answer"] = voted[i]
