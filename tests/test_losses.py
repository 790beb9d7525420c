"""The distillation loss on small hand-made tensors: KL, CE, masking, T² scaling, cached top-k targets."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from speechkd.losses import (
    IGNORE_INDEX,
    LossWeights,
    cross_entropy,
    distillation_loss,
    hidden_state_mse,
    kl_divergence,
    kl_divergence_topk,
    topk_targets,
)


@pytest.fixture()
def logits() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(2, 4, 11, generator=generator)
    teacher = torch.randn(2, 4, 11, generator=generator) * 3
    return student, teacher


LABELS = torch.tensor([[IGNORE_INDEX, 3, 5, 1], [IGNORE_INDEX, IGNORE_INDEX, 7, IGNORE_INDEX]])


def test_kl_is_zero_when_the_student_equals_the_teacher(logits):
    student, _ = logits
    assert kl_divergence(student, student.clone(), LABELS, temperature=2.0).item() == pytest.approx(
        0.0, abs=1e-6
    )


def test_kl_matches_its_definition_averaged_over_real_tokens(logits):
    student, teacher = logits
    expected = []
    for b, t in [(0, 1), (0, 2), (0, 3), (1, 2)]:
        p = torch.softmax(teacher[b, t] / 2.0, -1)
        q = torch.softmax(student[b, t] / 2.0, -1)
        expected.append((p * (p.log() - q.log())).sum())
    assert kl_divergence(student, teacher, LABELS, 2.0).item() == pytest.approx(
        torch.stack(expected).mean().item(), rel=1e-5
    )


def test_masked_positions_do_not_count(logits):
    student, teacher = logits
    scrambled = teacher.clone()
    scrambled[LABELS == IGNORE_INDEX] = 1e4  # garbage where there is no label
    student_scrambled = student.clone()
    student_scrambled[LABELS == IGNORE_INDEX] = -1e4
    assert torch.allclose(
        kl_divergence(student_scrambled, scrambled, LABELS, 2.0), kl_divergence(student, teacher, LABELS, 2.0)
    )
    assert torch.allclose(cross_entropy(student_scrambled, LABELS), cross_entropy(student, LABELS))


def test_cross_entropy_averages_over_label_tokens(logits):
    student, _ = logits
    picked = [(0, 1, 3), (0, 2, 5), (0, 3, 1), (1, 2, 7)]
    expected = -sum(F.log_softmax(student[b, t], -1)[y] for b, t, y in picked) / len(picked)
    assert cross_entropy(student, LABELS).item() == pytest.approx(expected.item(), rel=1e-6)


def test_total_weights_kl_by_temperature_squared(logits):
    student, teacher = logits
    for temperature in (1.0, 2.0, 4.0):
        weights = LossWeights(ce=0.8, kl=1.0, temperature=temperature)
        terms = distillation_loss(student, LABELS, weights, teacher_logits=teacher)
        expected = 0.8 * terms.ce + temperature**2 * terms.kl
        assert terms.loss.item() == pytest.approx(expected.item(), rel=1e-6)
        assert terms.n_tokens == 4


def test_kl_is_float32_under_bfloat16_logits(logits):
    student, teacher = logits
    kl = kl_divergence(student.bfloat16(), teacher.bfloat16(), LABELS, 2.0)
    assert kl.dtype == torch.float32
    assert math.isfinite(kl.item())


def test_topk_kl_is_exact_with_the_whole_vocabulary(logits):
    student, teacher = logits
    targets = topk_targets(teacher, LABELS, temperature=2.0, k=11)
    assert torch.allclose(
        kl_divergence_topk(student, targets, LABELS, 2.0), kl_divergence(student, teacher, LABELS, 2.0)
    )


def test_topk_kl_keeps_the_rest_as_one_bucket(logits):
    student, teacher = logits
    targets = topk_targets(teacher, LABELS, temperature=2.0, k=3)
    mass = targets.logprobs.exp().sum(-1) + targets.rest_logprob.exp()
    assert torch.allclose(mass, torch.ones_like(mass), atol=1e-5)
    # coarsening never increases KL (data processing inequality), and it vanishes for an equal student
    assert (
        kl_divergence_topk(student, targets, LABELS, 2.0)
        <= kl_divergence(student, teacher, LABELS, 2.0) + 1e-6
    )
    assert kl_divergence_topk(teacher, targets, LABELS, 2.0).item() == pytest.approx(0.0, abs=1e-5)


def test_topk_kl_has_gradients_for_the_student(logits):
    student, teacher = logits
    student = student.clone().requires_grad_(True)
    kl_divergence_topk(student, topk_targets(teacher, LABELS, 2.0, 4), LABELS, 2.0).backward()
    assert student.grad[LABELS != IGNORE_INDEX].abs().sum() > 0
    assert student.grad[LABELS == IGNORE_INDEX].abs().sum() == 0


def test_hidden_state_mse_pairs_layers_at_label_tokens():
    generator = torch.Generator().manual_seed(1)
    student = [torch.randn(2, 4, 8, generator=generator) for _ in range(3)]  # embeddings + 2 layers
    teacher = [torch.randn(2, 4, 8, generator=generator) for _ in range(5)]  # embeddings + 4 layers
    mask = LABELS != IGNORE_INDEX
    expected = (
        F.mse_loss(student[1][mask], teacher[1][mask]) + F.mse_loss(student[2][mask], teacher[4][mask])
    ) / 2
    assert hidden_state_mse(student, teacher, [(0, 0), (1, 3)], LABELS).item() == pytest.approx(
        expected.item()
    )
    twin = hidden_state_mse(teacher[:2] + [teacher[4]], teacher, [(0, 0), (1, 3)], LABELS)
    assert twin.item() == 0.0


def test_kl_without_a_teacher_is_refused(logits):
    student, _ = logits
    with pytest.raises(ValueError, match="teacher"):
        distillation_loss(student, LABELS, LossWeights())
    terms = distillation_loss(student, LABELS, LossWeights(ce=1.0, kl=0.0))
    assert terms.loss.item() == pytest.approx(cross_entropy(student, LABELS).item())


def test_logits_at_label_tokens_give_the_same_loss_as_full_logits(tiny_en_dir):
    from transformers import WhisperForConditionalGeneration

    from speechkd.distill.loop import logits_at

    torch.manual_seed(0)
    model = WhisperForConditionalGeneration.from_pretrained(tiny_en_dir).eval()
    states = torch.randn(2, 1500, model.config.d_model)
    inputs = torch.randint(0, 1000, (2, 7))
    labels = torch.tensor(
        [[IGNORE_INDEX, IGNORE_INDEX, 5, 6, 7, 8, 9], [IGNORE_INDEX, 3, 4, IGNORE_INDEX] + [IGNORE_INDEX] * 3]
    )
    with torch.no_grad():
        full = model(encoder_outputs=(states,), decoder_input_ids=inputs).logits
        with logits_at(model, labels != IGNORE_INDEX):
            gathered = model(encoder_outputs=(states,), decoder_input_ids=inputs).logits
    assert gathered.shape == (7, model.config.vocab_size)
    assert torch.allclose(gathered, full[labels != IGNORE_INDEX], atol=1e-4)
    teacher = full.flip(-1)
    weights = LossWeights()
    whole = distillation_loss(full, labels, weights, teacher_logits=teacher)
    part = distillation_loss(
        gathered, labels[labels != IGNORE_INDEX], weights, teacher_logits=teacher[labels != IGNORE_INDEX]
    )
    assert torch.allclose(whole.loss, part.loss, atol=1e-4) and whole.n_tokens == part.n_tokens == 7
    assert (
        model(encoder_outputs=(states,), decoder_input_ids=inputs).logits.shape == full.shape
    )  # hook removed
