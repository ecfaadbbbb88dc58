"""Batch augmentation on tensors: random horizontal flip and rotation (the paper's ±10°).

Parameters are drawn for the *global* batch from one generator that every DDP rank seeds alike;
each rank applies the slice for its own samples (``rank::world``, the DistributedSampler's
interleaving). A two-process run therefore augments every image exactly as a one-process run
with the same global batch does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def draw_params(gen: torch.Generator, n: int, hflip: bool, degrees: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip flags (bool, n) and rotation angles in radians (float, n), uniform in ±degrees."""
    flips = torch.rand(n, generator=gen) < 0.5
    angles = (torch.rand(n, generator=gen) * 2.0 - 1.0) * math.radians(degrees)
    if not hflip:
        flips = torch.zeros_like(flips)
    return flips, angles


def apply_affine(x: torch.Tensor, flips: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Flip then rotate each image of ``x`` (N, C, H, W) about its centre; outside pixels are 0.

    Bilinear sampling; an unflipped image at angle 0 is returned unchanged.
    """
    n = x.shape[0]
    cos, sin = torch.cos(angles), torch.sin(angles)
    sx = torch.where(flips, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, dtype=torch.float32)
    # output (u, v) samples input at R(θ)·(sx·u, v): a flip followed by a rotation.
    theta[:, 0, 0] = cos * sx
    theta[:, 0, 1] = -sin
    theta[:, 1, 0] = sin * sx
    theta[:, 1, 1] = cos
    identity = (~flips) & (angles == 0)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if identity.any():
        out[identity.to(x.device)] = x[identity.to(x.device)]
    return out


class BatchAugmenter:
    """Draws global-batch parameters and applies this rank's share; its state is checkpointed."""

    def __init__(self, seed: int, hflip: bool, degrees: float, rank: int = 0, world: int = 1):
        self.gen = torch.Generator().manual_seed(seed)
        self.hflip, self.degrees, self.rank, self.world = hflip, degrees, rank, world

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flips, angles = draw_params(self.gen, x.shape[0] * self.world, self.hflip, self.degrees)
        sl = slice(self.rank, None, self.world)
        if not self.hflip and self.degrees == 0:
            return x
        return apply_affine(x, flips[sl], angles[sl])

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])
