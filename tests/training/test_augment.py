"""Batch augmentation: identity, exact flips, rotation, and the global-batch slicing DDP relies on."""

import math

import torch

from training.augment import BatchAugmenter, apply_affine, draw_params


def test_flip_is_exact_and_zero_rotation_is_identity():
    x = torch.rand(2, 1, 16, 16)
    out = apply_affine(x, torch.tensor([True, False]), torch.zeros(2))
    torch.testing.assert_close(out[0], x[0].flip(-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], x[1])


def test_rotation_by_90_degrees_turns_the_image():
    x = torch.rand(1, 1, 8, 8)
    out = apply_affine(x, torch.tensor([False]), torch.tensor([math.pi / 2]))
    # one of the two 90° turns, depending on the sign convention: either matches exactly
    ok = [torch.allclose(out[0, 0], torch.rot90(x[0, 0], k, (0, 1)), atol=1e-5) for k in (1, -1)]
    assert any(ok)


def test_angles_stay_within_range():
    g = torch.Generator().manual_seed(0)
    flips, angles = draw_params(g, 1000, True, 10.0)
    assert angles.abs().max() <= math.radians(10.0) + 1e-6
    assert 0.4 < flips.float().mean() < 0.6


def test_two_ranks_augment_like_one_process_with_the_global_batch():
    x = torch.rand(8, 1, 12, 12)
    single = BatchAugmenter(5, True, 10.0)(x)
    parts = [BatchAugmenter(5, True, 10.0, rank=r, world=2)(x[r::2]) for r in range(2)]
    torch.testing.assert_close(parts[0], single[0::2])
    torch.testing.assert_close(parts[1], single[1::2])
