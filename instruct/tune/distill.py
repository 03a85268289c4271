"""Knowledge distillation (Hinton et al. 2015): the student matches a teacher's token distributions.

Per trained token, with p = softmax(teacher / T) and q = softmax(student / T):
- `forward_kl`: KL(p || q), mean-seeking (the classic recipe);
- `reverse_kl`: KL(q || p), mode-seeking (MiniLLM);
- `jsd`: the generalised Jensen-Shannon divergence of GKD (Agarwal et al. 2024),
  beta KL(p || m) + (1 - beta) KL(q || m), m = beta p + (1 - beta) q.
Each is multiplied by T^2 so its gradient keeps the scale of cross-entropy as T changes, and
mixed with cross-entropy on the labels: alpha * T^2 * divergence + (1 - alpha) * CE.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from instruct.config import ConfigError
from instruct.tune.config import DistillConfig


def divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, config: DistillConfig) -> torch.Tensor:
    """Summed divergence over tokens ([tokens, vocab] logits), already multiplied by T^2."""
    t = config.temperature
    log_q = F.log_softmax(student_logits.float() / t, dim=-1)
    log_p = F.log_softmax(teacher_logits.float() / t, dim=-1)
    if config.loss == "forward_kl":
        value = F.kl_div(log_q, log_p, log_target=True, reduction="sum")
    elif config.loss == "reverse_kl":
        value = F.kl_div(log_p, log_q, log_target=True, reduction="sum")
    else:
        beta = config.jsd_beta
        log_m = torch.logsumexp(torch.stack([log_p + torch.log(torch.tensor(beta)),
                                             log_q + torch.log(torch.tensor(1 - beta))]), dim=0)
        value = (beta * F.kl_div(log_m, log_p, log_target=True, reduction="sum")
                 + (1 - beta) * F.kl_div(log_m, log_q, log_target=True, reduction="sum"))
    return value * t * t


def distill_loss_sum(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                     config: DistillConfig) -> torch.Tensor:
    """alpha * T^2 * divergence + (1 - alpha) * cross-entropy, summed over the given trained tokens."""
    ce = F.cross_entropy(student_logits.float(), targets, reduction="sum")
    return config.alpha * divergence(student_logits, teacher_logits, config) + (1 - config.alpha) * ce


def check_tokenizers(student: Any, teacher: Any, teacher_path: str) -> None:
    """Distributions over different vocabularies cannot be compared: refuse up front, naming the difference."""
    if student.get_vocab() != teacher.get_vocab():
        only = len(set(teacher.get_vocab()) ^ set(student.get_vocab()))
        raise ConfigError(f"distill.teacher: {teacher_path} has a different tokenizer from the student "
                          f"({len(teacher.get_vocab())} vs {len(student.get_vocab())} tokens, {only} differ); "
                          "distillation needs a shared vocabulary")


def load_teacher(path: str, student_tokenizer: Any, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """The teacher in eval mode without gradients (bf16 where the student computes in bf16)."""
    from instruct.tune.methods import load_base

    teacher, tokenizer = load_base(path, dtype=dtype, device=device)
    check_tokenizers(student_tokenizer, tokenizer, path)
    teacher.eval().requires_grad_(False)
    return teacher
