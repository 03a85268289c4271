"""Perplexity of text under a small causal LM (CCNet style; default: the embedded SmolLM2).

Documents are scored on their first `max_tokens` tokens, in length-sorted batches so padding
stays small. Perplexity = exp(mean token negative log-likelihood).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


class PerplexityScorer:
    """Loads the model once; `perplexities(texts)` returns one float per text (nan for empty)."""

    def __init__(self, model: str | None = None, max_tokens: int = 256, batch_size: int = 16,
                 threads: int = 0, device: str = "auto", min_tokens: int = 2) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from instruct.models import resolve_model

        if threads:
            torch.set_num_threads(threads)
        path = resolve_model(model)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval().to(self.device)
        self.max_tokens, self.batch_size, self.min_tokens = max_tokens, batch_size, max(2, min_tokens)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    def perplexities(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        encoded = self.tokenizer([t or "" for t in texts], add_special_tokens=False, truncation=True,
                                 max_length=self.max_tokens)["input_ids"]
        result = np.full(len(texts), math.nan, dtype=np.float64)
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
        order = [i for i in order if len(encoded[i]) >= self.min_tokens]  # one token predicts nothing
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                width = max(len(encoded[i]) for i in rows)
                ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(rows), width), dtype=torch.long)
                for r, i in enumerate(rows):
                    ids[r, :len(encoded[i])] = torch.tensor(encoded[i])
                    mask[r, :len(encoded[i])] = 1
                ids, mask = ids.to(self.device), mask.to(self.device)
                logits = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
                losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
                target_mask = mask[:, 1:].float()
                mean_nll = (losses * target_mask).sum(1) / target_mask.sum(1)
                result[rows] = torch.exp(mean_nll).cpu().numpy()
        return result
