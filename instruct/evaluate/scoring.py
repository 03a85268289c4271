"""Model-side evaluation: rank classification by log-likelihood (as T0 did) and greedy generation.

Prompts are rendered with the tokenizer's chat template, exactly as `instruct tune` trains on
them; a choice is scored as the assistant reply including its end-of-turn token, so that a
choice that is a prefix of another ("Yes" vs "Yes, but") cannot win by stopping early.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch


def render_prompt(tokenizer: Any, messages: Sequence[dict[str, str]]) -> str:
    """The conversation before the answer, ending with the assistant header."""
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)


def render_continuation(tokenizer: Any, messages: Sequence[dict[str, str]], answer: str, prompt: str) -> str:
    """The text the template adds after `prompt` for `answer`, up to and including end-of-turn."""
    full = tokenizer.apply_chat_template(list(messages) + [{"role": "assistant", "content": answer}],
                                         tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("the chat template renders the prompt differently with an answer appended")
    continuation = full[len(prompt):]
    end = tokenizer.eos_token or ""
    if end and end in continuation:
        continuation = continuation[: continuation.index(end) + len(end)]
    return continuation


@torch.no_grad()
def sequence_logprobs(model: Any, pairs: Sequence[tuple[list[int], list[int]]], batch_size: int = 16,
                      pad_id: int = 0) -> list[float]:
    """Sum of log p(continuation | prompt) for each (prompt ids, continuation ids) pair, one pass each.

    The reference implementation: `choice_logprobs` must agree with it (see the tests).
    """
    device = next(model.parameters()).device
    scores = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        input_ids, attention = right_pad([p + c for p, c in chunk], pad_id)
        logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
        for row, (prompt, continuation) in enumerate(chunk):
            positions = torch.arange(len(prompt) - 1, len(prompt) + len(continuation) - 1)
            scores.append(logprobs[row, positions, torch.tensor(continuation)].sum().item())
    return scores


@torch.no_grad()
def choice_logprobs(model: Any, prompts: Sequence[list[int]], continuations: Sequence[Sequence[list[int]]],
                    batch_size: int = 16, pad_id: int = 0) -> list[list[float]]:
    """log p(choice | prompt) for every choice of every prompt, encoding each prompt only once.

    Prompts run left-padded with the KV cache kept; the cache is then repeated once per choice
    and only the (short) choice tokens are run on top of it. With 5 choices this costs about a
    fifth of scoring every (prompt + choice) sequence from scratch.
    """
    device = next(model.parameters()).device
    scores: list[list[float]] = []
    for start in range(0, len(prompts), batch_size):
        batch_prompts = prompts[start:start + batch_size]
        batch_choices = continuations[start:start + batch_size]
        width = max(map(len, batch_prompts))
        input_ids = torch.full((len(batch_prompts), width), pad_id, dtype=torch.long)
        attention = torch.zeros_like(input_ids)
        for row, prompt in enumerate(batch_prompts):
            input_ids[row, width - len(prompt):] = torch.tensor(prompt)
            attention[row, width - len(prompt):] = 1
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                    position_ids=positions.to(device), use_cache=True)
        first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
        owners = torch.tensor([row for row, choices in enumerate(batch_choices) for _ in choices])
        cache_name = "cache" if "cache" in out else "past_key_values"  # transformers renamed it (5.x)
        cache = out[cache_name]
        cache.reorder_cache(owners.to(device))
        flat = [choice for choices in batch_choices for choice in choices]
        choice_ids, choice_mask = right_pad(flat, pad_id)
        lengths = attention.sum(-1)[owners]
        rest = model(input_ids=choice_ids.to(device),
                     attention_mask=torch.cat([attention[owners], choice_mask], dim=1).to(device),
                     position_ids=(lengths[:, None] + torch.arange(choice_ids.shape[1])).to(device),
                     **{cache_name: cache}).logits.float()
        rest = torch.log_softmax(rest, dim=-1)
        flat_scores = []
        for row, (owner, choice) in enumerate(zip(owners.tolist(), flat)):
            total = first[owner, choice[0]]
            if len(choice) > 1:
                total = total + rest[row, torch.arange(len(choice) - 1), torch.tensor(choice[1:])].sum()
            flat_scores.append(total.item())
        for choices in batch_choices:
            scores.append(flat_scores[:len(choices)])
            flat_scores = flat_scores[len(choices):]
    return scores


def right_pad(sequences: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, sequences))
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, sequence in enumerate(sequences):
        ids[row, :len(sequence)] = torch.tensor(sequence)
        mask[row, :len(sequence)] = 1
    return ids, mask


def rank_classify(model: Any, tokenizer: Any, items: Sequence[tuple[list[dict[str, str]], list[str]]],
                  batch_size: int = 16, length_normalize: bool = False) -> list[list[float]]:
    """For each (prompt messages, choices), the score of every choice (higher is better)."""
    prompts, continuations = [], []
    for messages, choices in items:
        prompt = render_prompt(tokenizer, messages)
        prompts.append(tokenizer(prompt, add_special_tokens=False).input_ids)
        continuations.append([tokenizer(render_continuation(tokenizer, messages, choice, prompt),
                                        add_special_tokens=False).input_ids for choice in choices])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    scores = choice_logprobs(model, prompts, continuations, batch_size, pad_id)
    if length_normalize:
        scores = [[s / len(c) for s, c in zip(row, conts)] for row, conts in zip(scores, continuations)]
    return scores


@torch.no_grad()
def generate(model: Any, tokenizer: Any, prompts: Sequence[list[dict[str, str]]], max_new_tokens: int = 64,
             batch_size: int = 8, num_samples: int = 0, temperature: float = 1.0) -> list[str] | list[list[str]]:
    """Greedy replies, batched with left padding; with `num_samples` > 0, that many sampled replies per prompt."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = next(model.parameters()).device
    texts = [render_prompt(tokenizer, messages) for messages in prompts]
    replies: list[str] = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(device)
        sampling = ({"do_sample": True, "temperature": temperature, "top_k": 0, "num_return_sequences": num_samples}
                    if num_samples else {"do_sample": False})
        output = model.generate(**batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                **sampling)
        new_tokens = output[:, batch["input_ids"].shape[1]:]
        replies.extend(t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
    if num_samples:  # generate() returns the samples of each prompt consecutively
        return [replies[i:i + num_samples] for i in range(0, len(replies), num_samples)]
    return replies
