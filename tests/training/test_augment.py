"""Batch augmentation: identity, exact flips, rotation, shift, zoom, intensity jitter, and the
global-batch slicing DDP relies on."""

import math

import pytest
import torch

from training.augment import BatchAugmenter, Jitter, apply_affine, apply_photometric, draw_jitter, draw_params


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


def test_shift_moves_the_content_by_the_given_fraction():
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 6:10, 4:8] = 1.0
    out = apply_affine(
        x, torch.tensor([False]), torch.zeros(1), torch.ones(1), torch.tensor([0.25]), torch.zeros(1)
    )
    torch.testing.assert_close(out, torch.roll(x, 4, dims=-1), atol=1e-5, rtol=0)


def test_zoom_above_one_magnifies_about_the_centre():
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 6:10, 6:10] = 1.0  # a 4-pixel square in the middle
    out = apply_affine(x, torch.tensor([False]), torch.zeros(1), torch.tensor([2.0]))
    assert (out[0, 0] > 0.5).sum() == 64  # 8 × 8 after magnifying twice
    assert out[0, 0, 8, 8] == 1.0 and out[0, 0, 2, 2] == 0.0


def test_photometric_jitter_changes_contrast_about_the_mean_and_clips():
    x = torch.tensor([0.2, 0.4, 0.6, 0.8]).view(1, 1, 2, 2)
    out = apply_photometric(x, torch.tensor([0.1]), torch.tensor([2.0]))
    torch.testing.assert_close(out.flatten(), torch.tensor([0.0, 0.4, 0.8, 1.0]))


def test_jitter_ranges_are_respected_and_off_options_draw_nothing():
    g = torch.Generator().manual_seed(0)
    p = draw_jitter(g, 2000, Jitter(scale=0.1, translate=0.05, brightness=0.0, contrast=0.2))
    assert p["zoom"].min() >= 0.9 and p["zoom"].max() <= 1.1
    assert p["tx"].abs().max() <= 0.05 and p["ty"].abs().max() <= 0.05
    assert (p["brightness"] == 0).all()
    assert p["contrast"].min() >= 0.8 and p["contrast"].max() <= 1.2
    # all options off: the paper's augmentation consumes exactly the same random numbers as before
    a, b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    draw_params(a, 8, True, 10.0)
    draw_jitter(a, 8, Jitter())
    draw_params(b, 8, True, 10.0)
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))


def test_out_of_range_jitter_is_rejected():
    with pytest.raises(ValueError, match="contrast"):
        Jitter(contrast=1.5)


def test_two_ranks_augment_like_one_process_with_jitter():
    x = torch.rand(8, 1, 12, 12)
    j = Jitter(scale=0.1, translate=0.05, brightness=0.1, contrast=0.2)
    single = BatchAugmenter(5, True, 10.0, jitter=j)(x)
    parts = [BatchAugmenter(5, True, 10.0, rank=r, world=2, jitter=j)(x[r::2]) for r in range(2)]
    torch.testing.assert_close(parts[0], single[0::2])
    torch.testing.assert_close(parts[1], single[1::2])
