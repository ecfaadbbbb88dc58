"""The paper's losses: masked BCE with per-finding pos_weight, and the distillation loss.

Unknown labels (NaN) are masked: they add nothing to the loss and nothing to its normaliser.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def pos_weight_from_labels(labels: np.ndarray) -> np.ndarray:
    """Per-finding ``neg / pos`` over the known labels of the training split (1.0 where pos or neg is 0)."""
    labels = np.asarray(labels, dtype=np.float64)
    pos = np.nansum(labels == 1, axis=0).astype(np.float64)
    neg = np.nansum(labels == 0, axis=0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where((pos > 0) & (neg > 0), neg / np.maximum(pos, 1), 1.0)
    return w.astype(np.float32)


def masked_bce_terms(
    logits: torch.Tensor, targets: torch.Tensor, pos_weight: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of BCE-with-logits over known labels and the number of known labels.

    Per element: ``-(w·y·log σ(x) + (1−y)·log(1−σ(x)))`` with ``w = pos_weight[finding]``.
    """
    known = ~torch.isnan(targets)
    y = torch.where(known, targets, torch.zeros_like(targets))
    per = F.binary_cross_entropy_with_logits(logits.float(), y, pos_weight=pos_weight, reduction="none")
    return (per * known).sum(), known.sum()


def masked_bce(
    logits: torch.Tensor,
    targets: torch.Tensor,
    pos_weight: torch.Tensor | None = None,
    normaliser: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Mean BCE-with-logits over the known labels (or the sum over ``normaliser`` when given).

    Under DDP the normaliser is the global count of known labels / world size, so that DDP's
    gradient averaging yields exactly the global mean.
    """
    total, count = masked_bce_terms(logits, targets, pos_weight)
    denom = normaliser if normaliser is not None else count.clamp(min=1)
    return total / denom


def bernoulli_kl(p_teacher: torch.Tensor, p_student: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Elementwise KL(Bernoulli(p_t) ‖ Bernoulli(p_s))."""
    pt = p_teacher.clamp(eps, 1 - eps)
    ps = p_student.clamp(eps, 1 - eps)
    return pt * (torch.log(pt) - torch.log(ps)) + (1 - pt) * (torch.log1p(-pt) - torch.log1p(-ps))


def kd_term(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T² · mean KL(σ(t/T) ‖ σ(s/T))`` over every sample and finding (labels not needed).

    Computed from log-sigmoids for stability: log σ(z) and log(1−σ(z)) = log σ(−z).
    """
    s = student_logits.float() / temperature
    t = teacher_logits.float() / temperature
    pt = torch.sigmoid(t)
    kl = pt * (F.logsigmoid(t) - F.logsigmoid(s)) + (1 - pt) * (F.logsigmoid(-t) - F.logsigmoid(-s))
    return temperature**2 * kl.mean()


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    pos_weight: torch.Tensor | None,
    alpha: float,
    temperature: float,
    normaliser: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """The paper's loss: ``alpha·BCE(student, labels) + (1−alpha)·T²·mean Bernoulli-KL``.

    The BCE term is the same masked, pos-weighted BCE the teacher and plain student train with.
    """
    bce = masked_bce(student_logits, targets, pos_weight, normaliser)
    return alpha * bce + (1 - alpha) * kd_term(student_logits, teacher_logits, temperature)
