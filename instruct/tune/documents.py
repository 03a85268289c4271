"""Documents -> training windows for continued pre-training (`data.objective: pretrain`).

A document is tokenised without chat template and ends with the tokenizer's end-of-text token,
so the model learns where a text stops. Its tokens t_0 .. t_{n-1} give n-1 next-token pairs
(t_i -> t_{i+1}); windows cut that stream into `max_length` inputs every `stride` tokens. Each
pair is trained in exactly one window: where windows overlap (stride < max_length), the overlap
is context only (targets masked), as in sliding-window perplexity. At stride == max_length the
windows partition the document. Windows then pack like SFT examples, positions restarting per
window, so no token attends across documents (or across windows of one document).
"""
from __future__ import annotations

from typing import Any

import numpy as np

IGNORE = -100


def end_of_text_id(tokenizer: Any) -> int:
    """`<|endoftext|>` where the vocabulary has one (instruct models end turns with their EOS), else EOS."""
    token_id = tokenizer.get_vocab().get("<|endoftext|>")
    if token_id is None:
        token_id = tokenizer.eos_token_id
    if token_id is None:
        raise ValueError("the tokenizer has neither <|endoftext|> nor an EOS token to end documents with")
    return int(token_id)


def tokenize_document(tokenizer: Any, text: str, end_id: int) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] + [end_id]


def document_windows(tokens: np.ndarray, max_length: int, stride: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(input_ids, targets) windows of at most `max_length` tokens, starting every `stride` tokens.

    targets[p] is the token after input p where this window is the first to reach it, else IGNORE.
    """
    if not 0 < stride <= max_length:
        raise ValueError(f"stride must be in [1, max_length={max_length}], got {stride}")
    tokens = np.asarray(tokens)
    pairs = len(tokens) - 1  # inputs tokens[:-1] predict targets tokens[1:]
    windows = []
    trained_until = 0  # pairs [0, trained_until) are trained already
    start = 0
    while trained_until < pairs:
        end = min(start + max_length, pairs)
        targets = tokens[start + 1: end + 1].astype(np.int64)
        targets[: max(0, trained_until - start)] = IGNORE
        windows.append((tokens[start:end].astype(np.int64), targets))
        trained_until = end
        start += stride
    return windows
