"""Judging answers: an LLM rubric (absolute scores, UltraFeedback-style), an LLM pairwise comparison
(MT-Bench-style verdicts, asked in both orders), and a trained reward model.

The prompts are ours, written in the shape of the published ones (UltraFeedback's rated rubric with a
rationale, MT-Bench's `[[A]]` / `[[B]]` / `[[C]]` verdict); parsers are lenient about small models'
formatting but never guess: text without a readable score or verdict is counted as unparsed.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, Sequence

Messages = list[dict[str, str]]

RUBRIC_TEMPLATE = """Evaluate the quality of an AI assistant's answer to the user's instruction.
Rate it on instruction following, helpfulness, truthfulness and honesty, all together, on this 5-point scale:
1: irrelevant, wrong or harmful; ignores the instruction.
2: addresses the instruction only in part, or has major errors.
3: acceptable, with noticeable gaps or minor errors.
4: good: correct, relevant and helpful, with small room for improvement.
5: excellent: fully follows the instruction, accurate, clear and complete.

Instruction:
{instruction}

Answer:
{answer}

Write one or two sentences of rationale, then the rating on the last line as "Rating: <1-5>"."""

PAIRWISE_TEMPLATE = """Please act as an impartial judge and compare two AI assistants' answers to the user's instruction.
Choose the answer that follows the instruction better and is more helpful, accurate and clear. Do not let the
order of the answers, their length or the assistants' names influence you.

[Instruction]
{instruction}

[The Start of Assistant A's Answer]
{first}
[The End of Assistant A's Answer]

[The Start of Assistant B's Answer]
{second}
[The End of Assistant B's Answer]

After a short explanation, give your verdict strictly in this format: "[[A]]" if A is better, "[[B]]" if B is
better, "[[C]]" for a tie."""

# "Score: 4", "**Rating:** 4", and the prose small models write instead: "the score is 4", "a rating of 4"
_LABELLED_SCORE = re.compile(r"(?:rating|score)\s*(?:\*\*)?\s*(?:[:=]|\bis\b|\bof\b)?\s*(?:\*\*)?\s*"
                             r"(\d+(?:\.\d+)?)\b(?!\.\d)", re.IGNORECASE)
_BARE_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*\d+)?\s*\.?\s*$")
_VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")


def instruction_text(prompt: Messages) -> str:
    """A conversation as the judge sees it: the last user turn, after any earlier turns."""
    if len(prompt) == 1:
        return prompt[0]["content"]
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in prompt)


def rubric_prompt(prompt: Messages, answer: str) -> str:
    return RUBRIC_TEMPLATE.format(instruction=instruction_text(prompt), answer=answer)


def pairwise_prompt(prompt: Messages, first: str, second: str) -> str:
    return PAIRWISE_TEMPLATE.format(instruction=instruction_text(prompt), first=first, second=second)


def parse_score(text: str, low: int = 1, high: int = 5) -> float | None:
    """The last 'Rating: N' / 'Score: N' / 'the score is N' in range, else a reply that is only a number;
    None otherwise."""
    labelled = [float(m) for m in _LABELLED_SCORE.findall(text) if low <= float(m) <= high]
    if labelled:
        return labelled[-1]
    bare = _BARE_NUMBER.match(text)
    if bare and low <= float(bare.group(1)) <= high:
        return float(bare.group(1))
    return None


def parse_verdict(text: str) -> str | None:
    """'A', 'B' or 'tie' from the last [[A]] / [[B]] / [[C]], else a reply that is just A or B."""
    verdicts = _VERDICT.findall(text)
    if verdicts:
        return {"A": "A", "B": "B", "C": "tie"}[verdicts[-1]]
    bare = text.strip().strip(".*\"'").upper()
    return bare if bare in ("A", "B") else None


def reconcile(forward: str | None, backward: str | None) -> str | None:
    """Verdicts on (x, y) shown as (A, B) and then as (B, A) -> 'x', 'y', 'tie' (including disagreement:
    a judge that prefers a position cancels out), or None when either verdict is unreadable."""
    if forward is None or backward is None:
        return None
    swapped = {"A": "B", "B": "A", "tie": "tie"}[backward]
    if forward == swapped and forward != "tie":
        return "x" if forward == "A" else "y"
    return "tie"


def reward_scorer(path: str | Path, batch_size: int = 8) -> Callable[[Sequence[Messages], Sequence[str]], list[float]]:
    """score(prompts, answers) -> one scalar each, from an `AutoModelForSequenceClassification` folder
    (a peft adapter folder over one, too: its `base_model_name_or_path` is loaded first)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no reward model folder")
    adapter = path / "adapter_config.json"
    base = json.loads(adapter.read_text())["base_model_name_or_path"] if adapter.exists() else str(path)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, dtype=torch.float32)
    if adapter.exists():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(path))
    tokenizer = AutoTokenizer.from_pretrained(path if (path / "tokenizer_config.json").exists() else base)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    model.config.pad_token_id = tokenizer.pad_token_id
    model.eval()

    def render(prompt: Messages, answer: str) -> str:
        conversation = [*prompt, {"role": "assistant", "content": answer}]
        if tokenizer.chat_template:
            return tokenizer.apply_chat_template(conversation, tokenize=False)
        return "\n\n".join(f"{m['role']}: {m['content']}" for m in conversation)

    def score(prompts: Sequence[Messages], answers: Sequence[str]) -> list[float]:
        texts = [render(p, a) for p, a in zip(prompts, answers)]
        scores: list[float] = []
        for start in range(0, len(texts), batch_size):
            encoded = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                                truncation=True, max_length=2048, add_special_tokens=False)
            with torch.inference_mode():
                scores.extend(model(**encoded).logits[:, 0].float().tolist())
        return scores

    return score
