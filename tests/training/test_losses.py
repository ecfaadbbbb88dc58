"""Loss values against numbers computed by hand."""

import math

import numpy as np
import pytest
import torch

from training.losses import bernoulli_kl, distillation_loss, kd_term, masked_bce, pos_weight_from_labels


def _sig(x):
    return 1 / (1 + math.exp(-x))


def test_pos_weight_is_neg_over_pos_of_known_labels():
    labels = np.array(
        [[1, 0, np.nan, 1, 0], [0, 0, 1, 1, 0], [0, 1, 0, np.nan, 0], [1, 0, np.nan, 0, 0]], dtype=np.float32
    )
    w = pos_weight_from_labels(labels)
    # atelectasis 2 pos 2 neg; cardiomegaly 1 pos 3 neg; consolidation 1/1 (2 unknown); edema 2 pos 1 neg;
    # effusion: no positive -> 1.0
    np.testing.assert_allclose(w, [1.0, 3.0, 1.0, 0.5, 1.0])


def test_masked_bce_with_pos_weight_matches_hand_computation():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.0]])
    targets = torch.tensor([[1.0, 0.0], [float("nan"), 1.0]])
    pw = torch.tensor([3.0, 2.0])
    # known: (2.0, y=1, w=3), (-1.0, y=0), (0.0, y=1, w=2); the NaN label is masked out of sum and count
    expected = (-3 * math.log(_sig(2.0)) - math.log(1 - _sig(-1.0)) - 2 * math.log(_sig(0.0))) / 3
    assert masked_bce(logits, targets, pw).item() == pytest.approx(expected, rel=1e-6)
    # an explicit normaliser (DDP: global count / world) replaces the local count
    assert masked_bce(logits, targets, pw, normaliser=6.0).item() == pytest.approx(expected * 3 / 6, rel=1e-6)


def test_all_unknown_labels_give_zero_loss_not_nan():
    out = masked_bce(torch.zeros(2, 5), torch.full((2, 5), float("nan")))
    assert out.item() == 0.0


def test_kd_term_is_T_squared_times_mean_bernoulli_kl():
    s = torch.tensor([[1.0, -2.0]])
    t = torch.tensor([[3.0, 0.5]])
    T = 2.0

    def kl(pt, ps):
        return pt * math.log(pt / ps) + (1 - pt) * math.log((1 - pt) / (1 - ps))

    expected = T**2 * (kl(_sig(3.0 / T), _sig(1.0 / T)) + kl(_sig(0.5 / T), _sig(-2.0 / T))) / 2
    assert kd_term(s, t, T).item() == pytest.approx(expected, rel=1e-5)
    assert kd_term(t, t, T).item() == pytest.approx(0.0, abs=1e-7)
    ref = bernoulli_kl(torch.sigmoid(t / T), torch.sigmoid(s / T)).mean().item() * T**2
    assert kd_term(s, t, T).item() == pytest.approx(ref, rel=1e-5)


def test_distillation_loss_combines_terms_with_alpha():
    s = torch.tensor([[0.3, -0.7, 1.2, 0.0, 2.0]])
    t = torch.tensor([[1.0, -1.0, 0.0, 0.5, 3.0]])
    y = torch.tensor([[1.0, 0.0, float("nan"), 1.0, 1.0]])
    pw = torch.tensor([2.0, 1.0, 1.0, 4.0, 0.5])
    alpha, T = 0.7, 6.0
    got = distillation_loss(s, t, y, pw, alpha, T).item()
    want = alpha * masked_bce(s, y, pw).item() + (1 - alpha) * kd_term(s, t, T).item()
    assert got == pytest.approx(want, rel=1e-6)
    # alpha = 1 is the plain student's loss
    assert distillation_loss(s, t, y, pw, 1.0, T).item() == pytest.approx(
        masked_bce(s, y, pw).item(), rel=1e-6
    )


def test_kd_gradient_pulls_student_towards_teacher():
    s = torch.zeros(1, 5, requires_grad=True)
    t = torch.full((1, 5), 4.0)
    kd_term(s, t, 6.0).backward()
    assert (s.grad < 0).all()  # increasing the student's logits lowers the loss
