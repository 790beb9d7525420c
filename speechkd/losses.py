"""Distillation losses: CE on pseudo-labels + T²-scaled KL to the teacher (+ optional hidden-state MSE).

Every term is averaged over real label tokens (label != -100) and computed in float32, so a bf16 forward
pass does not round the teacher's small probabilities away. Logits come as [B, L, vocab] with [B, L] labels,
or already gathered at the label tokens: [n, vocab] with [n] labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


@dataclass(frozen=True)
class LossWeights:
    """`ce·CE + kl·T²·KL(teacher_T ‖ student_T) + mse·MSE`; 0.8 / 1.0 / T=2 trained the released Distil-Whisper."""

    ce: float = 0.8
    kl: float = 1.0
    temperature: float = 2.0
    mse: float = 0.0


@dataclass(frozen=True)
class TopKTargets:
    """The teacher's tempered distribution at each real label token, kept as its top k plus the rest's mass.

    Rows follow the label tokens of the batch in row-major order (the order of `logits[labels != -100]`).
    """

    token_ids: torch.Tensor  # [n_tokens, k] int64
    logprobs: torch.Tensor  # [n_tokens, k] log p_T of those tokens
    rest_logprob: torch.Tensor  # [n_tokens] log of the probability mass outside the top k


@dataclass
class LossTerms:
    """The total loss to backpropagate and its unweighted parts (detached, for logging)."""

    loss: torch.Tensor
    ce: torch.Tensor
    kl: torch.Tensor
    mse: torch.Tensor
    n_tokens: int


def label_mask(labels: torch.Tensor) -> torch.Tensor:
    """True at the positions that carry a loss (real label tokens, not prompt or padding)."""
    return labels != IGNORE_INDEX


def cross_entropy(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean token cross-entropy of the student on the labels (logits [..., vocab], labels [...])."""
    logits = student_logits.float().reshape(-1, student_logits.shape[-1])
    return F.cross_entropy(logits, labels.reshape(-1), ignore_index=IGNORE_INDEX, reduction="mean")


def kl_divergence(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Mean over real label tokens of KL(softmax(teacher/T) ‖ softmax(student/T)), not yet scaled by T²."""
    mask = label_mask(labels)
    student = F.log_softmax(student_logits[mask].float() / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits[mask].float() / temperature, dim=-1)
    per_token = F.kl_div(student, teacher, log_target=True, reduction="none").sum(-1)
    return per_token.mean() if per_token.numel() else per_token.sum()


def topk_targets(
    teacher_logits: torch.Tensor, labels: torch.Tensor, temperature: float, k: int
) -> TopKTargets:
    """The teacher's top-k tempered log-probabilities at the real label tokens (what the teacher cache stores)."""
    logprobs = F.log_softmax(teacher_logits[label_mask(labels)].float() / temperature, dim=-1)
    top, ids = logprobs.topk(min(k, logprobs.shape[-1]), dim=-1)
    return TopKTargets(ids, top, _rest_logprob(logprobs, ids))


def _rest_logprob(logprobs: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    # log Σ_{v ∉ top-k} p_v, computed as a logsumexp so a near-zero remainder keeps its precision
    return logprobs.scatter(-1, ids, float("-inf")).logsumexp(-1)


def kl_divergence_topk(
    student_logits: torch.Tensor, targets: TopKTargets, labels: torch.Tensor, temperature: float
) -> torch.Tensor:
    """KL from cached top-k teacher targets: the top k tokens plus one bucket for the rest of the vocabulary.

    Exact when the teacher's mass outside the top k is 0; otherwise the KL of the two coarsened distributions.
    """
    student = F.log_softmax(student_logits[label_mask(labels)].float() / temperature, dim=-1)
    ids = targets.token_ids.long()
    student_top = student.gather(-1, ids)
    student_rest = _rest_logprob(student, ids)
    teacher_top, teacher_rest = targets.logprobs.float(), targets.rest_logprob.float()
    per_token = (teacher_top.exp() * (teacher_top - student_top)).sum(-1)
    # xlogy-style guard: a bucket the teacher gives no mass contributes nothing (and no NaN from -inf - -inf)
    rest_mass = teacher_rest.exp()
    per_token = per_token + torch.where(rest_mass > 0, rest_mass * (teacher_rest - student_rest), 0.0)
    return per_token.mean() if per_token.numel() else per_token.sum()


def hidden_state_mse(
    student_hidden: Sequence[torch.Tensor],
    teacher_hidden: Sequence[torch.Tensor],
    layer_pairs: Sequence[tuple[int, int]],
    labels: torch.Tensor,
) -> torch.Tensor:
    """Mean squared error between paired decoder hidden states at real label tokens, averaged over pairs.

    `*_hidden` are the models' `decoder_hidden_states` (index 0 = embeddings, i + 1 = output of layer i);
    `layer_pairs` holds (student layer, teacher layer).
    """
    mask = label_mask(labels)
    errors = [
        F.mse_loss(student_hidden[s + 1][mask].float(), teacher_hidden[t + 1][mask].float())
        for s, t in layer_pairs
    ]
    return torch.stack(errors).mean()


def distillation_loss(
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    weights: LossWeights,
    teacher_logits: torch.Tensor | None = None,
    teacher_topk: TopKTargets | None = None,
    mse: torch.Tensor | None = None,
) -> LossTerms:
    """`ce·CE + kl·T²·KL (+ mse·MSE)`; the teacher comes as full logits or as cached top-k targets."""
    zero = student_logits.new_zeros((), dtype=torch.float32)
    ce = cross_entropy(student_logits, labels) if weights.ce else zero
    kl = zero
    if weights.kl:
        if teacher_topk is not None:
            kl = kl_divergence_topk(student_logits, teacher_topk, labels, weights.temperature)
        elif teacher_logits is not None:
            kl = kl_divergence(student_logits, teacher_logits, labels, weights.temperature)
        else:
            raise ValueError("kl weight > 0 needs teacher logits or cached top-k targets")
    mse = zero if mse is None else mse.float()
    total = weights.ce * ce + weights.kl * weights.temperature**2 * kl + weights.mse * mse
    n_tokens = int(label_mask(labels).sum())
    return LossTerms(total, ce.detach(), kl.detach(), mse.detach(), n_tokens)
