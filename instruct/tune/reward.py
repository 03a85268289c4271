"""Reward models: a scalar score head on the base model, trained with the pairwise loss of InstructGPT.

loss = -log sigmoid(r(prompt, chosen) - r(prompt, rejected)) over every pair (a K-way ranking
arrives as its C(K,2) pairs, see instruct.preferences). The reward of a sequence is the score
head on the last token's hidden state (the newline after the end-of-turn token), computed the
same way in training (packed rows) and in `RewardScorer` (padded batches). The output folder
loads with transformers' AutoModelForSequenceClassification (+ peft for adapters: the score
head is saved beside the adapter as a peft `modules_to_save` module).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from instruct.tune.objective import Objective
from instruct.tune.preference_data import PairBatch, collate_pairs, prepare_preferences


def pooled_rewards(model: nn.Module, inputs: Mapping[str, Any], last: torch.Tensor) -> torch.Tensor:
    """Scalar rewards at flat token positions `last` (row * width + column) of a packed or padded batch."""
    inner = getattr(model, "module", model)
    inner = inner.get_base_model() if hasattr(inner, "get_base_model") else inner
    hidden = inner.base_model(**inputs, use_cache=False).last_hidden_state
    return inner.score(hidden.flatten(0, 1)[last]).squeeze(-1).float()


def pairwise_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Per-pair -log sigmoid(r_chosen - r_rejected)."""
    return -F.logsigmoid(chosen - rejected)


def last_positions(batch: PairBatch) -> torch.Tensor:
    """Flat index of each sequence's last token: packed rows from the example bounds, padded from the mask."""
    if "cu_seq_lens_q" in batch.inputs:
        return batch.inputs["cu_seq_lens_q"][1:].long().to(batch.targets.device) - 1
    mask = batch.inputs["attention_mask"]
    return torch.arange(mask.shape[0], device=mask.device) * mask.shape[1] + mask.sum(1) - 1


class RewardObjective(Objective):
    """`data.objective: reward`: pairwise ranking loss on a scalar head."""

    name = "reward"
    task_type = "SEQ_CLS"

    def load(self, **kwargs: Any) -> tuple[nn.Module, Any]:
        from instruct.tune.methods import load_base

        return load_base(self.config.model, scalar_head=True, **kwargs)

    def prepare(self, tokenizer: Any, show_progress: bool) -> tuple[Any, Any]:
        return prepare_preferences(self.config, tokenizer, show_progress)

    def collate(self, data: Any, indices: list[int]) -> PairBatch:
        return collate_pairs(data, indices, self.config.packing)

    def loss_sum(self, model: nn.Module, batch: PairBatch, select_logits: bool) -> torch.Tensor:
        rewards = pooled_rewards(model, batch.inputs, last_positions(batch))
        chosen, rejected = rewards[0::2], rewards[1::2]
        self.record("accuracy", (chosen > rejected).float())
        self.record("margin", (chosen - rejected).detach())
        return pairwise_loss(chosen, rejected).sum()


class RewardScorer:
    """Score (prompt, response) pairs with a model `instruct tune` trained with `data.objective: reward`.

        scorer = RewardScorer("out/reward")
        scorer.score(["What is 2+2?"], ["4"])   # -> [float]
    """

    def __init__(self, path: str | Path, device: torch.device | None = None, batch_size: int = 16):
        from instruct.tune.methods import default_device, is_adapter, load_base

        self.device = device or default_device()
        self.batch_size = batch_size
        if is_adapter(path):
            from peft import PeftModel

            from instruct.tune.methods import _adapter_settings

            base, self.tokenizer = load_base(_adapter_settings(path)["base_model_name_or_path"], scalar_head=True,
                                             device=self.device)
            self.model = PeftModel.from_pretrained(base, str(path)).eval()
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(path)
        else:
            self.model, self.tokenizer = load_base(path, scalar_head=True, device=self.device)
            self.model.eval()

    @torch.no_grad()
    def score(self, prompts: Sequence[str | list[dict[str, str]]], responses: Sequence[str]) -> list[float]:
        """One reward per (prompt, response); a prompt is a user message or a conversation ending with one."""
        from instruct.tune.data import tokenize_example

        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        sequences = []
        for prompt, response in zip(prompts, responses):
            messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
            context = sum(m["role"] == "assistant" for m in messages)
            sequences.append(tokenize_example(self.tokenizer, messages + [{"role": "assistant", "content": response}],
                                              context)[0])
        scores: list[float] = []
        for start in range(0, len(sequences), self.batch_size):
            chunk = sequences[start:start + self.batch_size]
            width = max(map(len, chunk))
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, sequence in enumerate(chunk):
                ids[row, :len(sequence)] = torch.tensor(sequence)
                mask[row, :len(sequence)] = 1
            last = torch.arange(len(chunk)) * width + mask.sum(1) - 1
            inputs = {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}
            scores += pooled_rewards(self.model, inputs, last.to(self.device)).tolist()
        return scores
