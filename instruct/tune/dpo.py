"""The DPO family on preference pairs: DPO, IPO, SimPO, ORPO and KTO, as one loss hook of the shared loop.

Formulas, with pi/ref the summed log-probs of an answer under the policy and the reference,
|y| its trained token count, and h = (pi_c - ref_c) - (pi_r - ref_r):
- DPO (Rafailov et al. 2023):  -log sigmoid(beta * h)
- IPO (Azar et al. 2023):      (h - 1 / (2 beta))^2
- SimPO (Meng et al. 2024):    -log sigmoid(beta * (pi_c/|y_c| - pi_r/|y_r|) - gamma)   (no reference)
- ORPO (Hong et al. 2024):     -pi_c/|y_c| + lambda * -log sigmoid(log odds_c - log odds_r),
                               odds = p / (1 - p) with p = exp(mean token log-prob)    (no reference)
- KTO (Ethayarajh et al. 2024): the chosen answer as desirable, the rejected one as undesirable, each
  against the reference point z = max(0, mean (pi - ref) of mismatched prompt/answer pairs), detached:
  (lambda_D (1 - sigmoid(beta (pi_c - ref_c - z))) + lambda_U (1 - sigmoid(beta (z - pi_r + ref_r)))) / 2
  per pair, i.e. TRL's mean over examples; z comes from this micro-batch (pair i's prompt with pair
  i + 1's chosen answer), so KTO wants micro-batches of several pairs. Unpaired KTO data (one answer
  with a desirable/undesirable label per row) takes the one term its label names, per example.
For adapters the reference is the base with the adapter disabled (no second copy in memory),
run under no_grad once per micro-batch before the policy's forward; for full fine-tuning a
frozen copy of the initial weights is kept.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from instruct.tune.config import PEFT_ADAPTERS
from instruct.tune.objective import Objective
from instruct.tune.preference_data import PairBatch, collate_pairs, prepare_preferences, sequence_logps

REFERENCE_FREE = ("simpo", "orpo")


def preference_losses(loss: str, policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
                      reference_chosen: torch.Tensor | None, reference_rejected: torch.Tensor | None,
                      chosen_tokens: torch.Tensor, rejected_tokens: torch.Tensor, beta: float, gamma: float = 0.5,
                      orpo_lambda: float = 0.1, kl: torch.Tensor | None = None,
                      weights: tuple[float, float] = (1.0, 1.0)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair losses and the (chosen, rejected) rewards each loss implies, from summed log-probs
    (`kl`, `weights`: KTO's reference point and its (desirable, undesirable) weights)."""
    if loss == "kto":
        chosen = policy_chosen - reference_chosen
        rejected = policy_rejected - reference_rejected
        losses = (weights[0] * (1 - torch.sigmoid(beta * (chosen - kl)))
                  + weights[1] * (1 - torch.sigmoid(beta * (kl - rejected)))) / 2
        return losses, beta * chosen.detach(), beta * rejected.detach()
    if loss in ("dpo", "ipo"):
        chosen = policy_chosen - reference_chosen
        rejected = policy_rejected - reference_rejected
        h = chosen - rejected
        losses = -F.logsigmoid(beta * h) if loss == "dpo" else (h - 1 / (2 * beta)) ** 2
        return losses, beta * chosen.detach(), beta * rejected.detach()
    mean_chosen, mean_rejected = policy_chosen / chosen_tokens, policy_rejected / rejected_tokens
    if loss == "simpo":
        losses = -F.logsigmoid(beta * (mean_chosen - mean_rejected) - gamma)
        return losses, beta * mean_chosen.detach(), beta * mean_rejected.detach()
    if loss == "orpo":
        log_odds = (mean_chosen - mean_rejected) - (_log1m_exp(mean_chosen) - _log1m_exp(mean_rejected))
        losses = -mean_chosen - orpo_lambda * F.logsigmoid(log_odds)
        return losses, mean_chosen.detach(), mean_rejected.detach()
    raise ValueError(f"unknown preference loss {loss!r}")


def unpaired_kto_losses(logratios: torch.Tensor, desirable: torch.Tensor, beta: float, kl: torch.Tensor,
                        weights: tuple[float, float] = (1.0, 1.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """KTO on unpaired examples (TRL's unpaired form): per example, from log pi - log ref of its answer,
    lambda_D (1 - sigmoid(beta (r - z))) if desirable else lambda_U (1 - sigmoid(beta (z - r))); and beta r."""
    losses = torch.where(desirable, weights[0] * (1 - torch.sigmoid(beta * (logratios - kl))),
                         weights[1] * (1 - torch.sigmoid(beta * (kl - logratios))))
    return losses, beta * logratios.detach()


def _log1m_exp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, accurate near 0."""
    return torch.log(-torch.expm1(x.clamp(max=-1e-7)))


class PreferenceObjective(Objective):
    """`data.objective: dpo`: the loss named by `method.loss` over packed (chosen, rejected) pairs."""

    name = "dpo"

    def __init__(self, config: Any):
        super().__init__(config)
        self.loss = config.method.loss
        self.reference: nn.Module | None = None  # only for full-weight methods with a reference-based loss
        self.reference_cache: dict[tuple[int, int], torch.Tensor] = {}  # PairBatch.pair_keys -> (chosen, rejected)

    def setup(self, model: nn.Module) -> None:
        if self.loss not in REFERENCE_FREE and self.config.method.name not in PEFT_ADAPTERS:
            self.reference = copy.deepcopy(model).eval().requires_grad_(False)

    def prepare(self, tokenizer: Any, show_progress: bool) -> tuple[Any, Any]:
        train_set, eval_set = prepare_preferences(self.config, tokenizer, show_progress)
        train_set.mismatched = eval_set.mismatched = self.loss == "kto"
        return train_set, eval_set

    def collate(self, data: Any, indices: list[int]) -> PairBatch:
        return collate_pairs(data, indices, self.config.packing, mismatched=self.loss == "kto")

    @torch.no_grad()
    def reference_logps(self, model: nn.Module, batch: PairBatch, select_logits: bool) -> torch.Tensor | None:
        """The reference's summed log-probs: base with the adapter disabled, or the frozen copy.

        The reference never changes, so each pair's (chosen, rejected) sums are kept (by set and index) and a
        micro-batch of pairs all seen before (every epoch after the first) skips the reference forward.
        KTO's mismatched sequences depend on the batch's neighbours, so KTO always runs it."""
        if self.loss in REFERENCE_FREE:
            return None
        cacheable = self.loss != "kto" and len(batch.pair_keys) == batch.pairs
        if cacheable and all(pair in self.reference_cache for pair in batch.pair_keys):
            return torch.cat([self.reference_cache[pair] for pair in batch.pair_keys])
        chunk = self.config.train.loss_chunk_tokens
        if self.reference is not None:
            sums = sequence_logps(self.reference, batch, select_logits, chunk)[0]
        else:
            policy = getattr(model, "module", model)  # under DDP
            with policy.disable_adapter():
                sums = sequence_logps(policy, batch, select_logits, chunk)[0]
        if cacheable:
            self.reference_cache.update((pair, sums[2 * k:2 * k + 2]) for k, pair in enumerate(batch.pair_keys))
        return sums

    def loss_sum(self, model: nn.Module, batch: PairBatch, select_logits: bool) -> torch.Tensor:
        reference = self.reference_logps(model, batch, select_logits)
        logps, counts = sequence_logps(model, batch, select_logits, self.config.train.loss_chunk_tokens)
        method = self.config.method
        pairs = batch.pairs if batch.labels is not None else 2 * batch.pairs  # sequences before the mismatched
        kl = None
        if self.loss == "kto":  # the mismatched sequences follow the pairs
            mismatched = (logps[pairs:] - reference[pairs:]).mean().detach()
            self.record("kl", mismatched[None])
            kl = mismatched.clamp(min=0)
            logps, reference, counts = logps[:pairs], reference[:pairs], counts[:pairs]
        if batch.labels is not None:
            losses, rewards = unpaired_kto_losses(logps - reference, batch.labels, method.preference_beta, kl,
                                                  (method.desirable_weight, method.undesirable_weight))
            self.record("desirable_reward", rewards[batch.labels])
            self.record("undesirable_reward", rewards[~batch.labels])
            return losses.sum()
        losses, chosen, rejected = preference_losses(
            self.loss, logps[0::2], logps[1::2], None if reference is None else reference[0::2],
            None if reference is None else reference[1::2], counts[0::2], counts[1::2],
            method.preference_beta, method.gamma, method.orpo_lambda, kl,
            (method.desirable_weight, method.undesirable_weight))
        self.record("reward_accuracy", (chosen > rejected).float())
        self.record("reward_margin", chosen - rejected)
        self.record("chosen_logp", logps[0::2].detach())
        self.record("rejected_logp", logps[1::2].detach())
        return losses.sum()
