"""Batch augmentation on tensors: the paper's horizontal flip and ±10° rotation, plus optional
zoom, shift and brightness/contrast jitter (off by default; see ``TrainConfig``).

Parameters are drawn for the *global* batch from one generator that every DDP rank seeds alike;
each rank applies the slice for its own samples (``rank::world``, the DistributedSampler's
interleaving). A two-process run therefore augments every image exactly as a one-process run
with the same global batch does. The optional ranges are a :class:`training.config.Jitter`; an
option that is off draws nothing, so the paper's settings
give the same random stream as before the options existed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from training.config import Jitter
from training.reproducibility import derived_seed


def _uniform(gen: torch.Generator, n: int, half_width: float, centre: float = 0.0) -> torch.Tensor:
    return centre + (torch.rand(n, generator=gen) * 2.0 - 1.0) * half_width


def draw_params(
    gen: torch.Generator, n: int, hflip: bool, degrees: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip flags (bool, n) and rotation angles in radians (float, n), uniform in ±degrees."""
    flips = torch.rand(n, generator=gen) < 0.5
    angles = _uniform(gen, n, math.radians(degrees))
    if not hflip:
        flips = torch.zeros_like(flips)
    return flips, angles


def draw_jitter(gen: torch.Generator, n: int, jitter: Jitter) -> dict[str, torch.Tensor]:
    """Per-image zoom, shift (x, y as fractions of the size), brightness and contrast; only the
    enabled ones are drawn (the others are returned as their neutral values)."""
    one, zero = torch.ones(n), torch.zeros(n)
    out = {"zoom": one, "tx": zero, "ty": zero, "brightness": zero, "contrast": one}
    if jitter.scale > 0:
        out["zoom"] = _uniform(gen, n, jitter.scale, 1.0)
    if jitter.translate > 0:
        out["tx"] = _uniform(gen, n, jitter.translate)
        out["ty"] = _uniform(gen, n, jitter.translate)
    if jitter.brightness > 0:
        out["brightness"] = _uniform(gen, n, jitter.brightness)
    if jitter.contrast > 0:
        out["contrast"] = _uniform(gen, n, jitter.contrast, 1.0)
    return out


def apply_photometric(x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor) -> torch.Tensor:
    """``(x − mean)·contrast + mean + brightness`` per image of ``x`` (N, C, H, W), clipped to [0, 1]."""
    shape = (-1, 1, 1, 1)
    b = brightness.to(x.device, x.dtype).view(shape)
    c = contrast.to(x.device, x.dtype).view(shape)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * c + mean + b).clamp_(0.0, 1.0)


def apply_affine(
    x: torch.Tensor,
    flips: torch.Tensor,
    angles: torch.Tensor,
    zoom: torch.Tensor | None = None,
    tx: torch.Tensor | None = None,
    ty: torch.Tensor | None = None,
) -> torch.Tensor:
    """Flip, rotate about the centre, zoom and shift each image of ``x`` (N, C, H, W); outside pixels are 0.

    ``zoom`` > 1 magnifies; ``tx``/``ty`` shift the content by that fraction of the width/height.
    Bilinear sampling; an image left unchanged by all parameters is returned exactly.
    """
    n = x.shape[0]
    zoom = torch.ones(n) if zoom is None else zoom
    tx = torch.zeros(n) if tx is None else tx
    ty = torch.zeros(n) if ty is None else ty
    cos, sin = torch.cos(angles) / zoom, torch.sin(angles) / zoom
    sx = torch.where(flips, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, dtype=torch.float32)
    # output (u, v) samples input at R(θ)·(sx·u, v)/zoom − 2·shift: a flip, a rotation, a zoom, a shift
    # (normalised coordinates span 2 across the image).
    theta[:, 0, 0] = cos * sx
    theta[:, 0, 1] = -sin
    theta[:, 1, 0] = sin * sx
    theta[:, 1, 1] = cos
    theta[:, 0, 2] = -2.0 * tx
    theta[:, 1, 2] = -2.0 * ty
    identity = (~flips) & (angles == 0) & (zoom == 1) & (tx == 0) & (ty == 0)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if identity.any():
        keep = identity.to(x.device)
        out[keep] = x[keep]
    return out


def draw_all(
    gen: torch.Generator, n: int, hflip: bool, degrees: float, jitter: Jitter
) -> dict[str, torch.Tensor]:
    """Every augmentation parameter of ``n`` images, drawn in the one order the augmenter uses:
    ``flip``, ``angle`` (radians), ``zoom``, ``tx``, ``ty``, ``brightness``, ``contrast``."""
    flips, angles = draw_params(gen, n, hflip, degrees)
    return {"flip": flips, "angle": angles, **draw_jitter(gen, n, jitter)}


def apply_params(
    x: torch.Tensor, p: dict[str, torch.Tensor], hflip: bool, degrees: float, jitter: Jitter
) -> torch.Tensor:
    """Augment ``x`` (N, C, H, W) with the parameters ``p`` of its N images (see :func:`draw_all`).

    Intensity jitter is applied first (so the zero padding of the geometric step stays black).
    """
    if jitter.photometric:
        x = apply_photometric(x, p["brightness"], p["contrast"])
    if not hflip and degrees == 0 and not jitter.geometric:
        return x
    return apply_affine(x, p["flip"], p["angle"], p["zoom"], p["tx"], p["ty"])


class BatchAugmenter:
    """Draws global-batch parameters and applies this rank's share; its state is checkpointed."""

    def __init__(
        self,
        seed: int,
        hflip: bool,
        degrees: float,
        rank: int = 0,
        world: int = 1,
        jitter: Jitter | None = None,
    ):
        self.gen = torch.Generator().manual_seed(seed)
        self.hflip, self.degrees, self.rank, self.world = hflip, degrees, rank, world
        self.jitter = jitter or Jitter()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        p = draw_all(self.gen, x.shape[0] * self.world, self.hflip, self.degrees, self.jitter)
        mine = {k: v[self.rank :: self.world] for k, v in p.items()}
        return apply_params(x, mine, self.hflip, self.degrees, self.jitter)

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])


class AugmentedViews:
    """K fixed augmented views of every training image: the parameters of view ``v`` are drawn for
    all images at once from a generator seeded with ``(seed, v)``, so a view is a function of the
    seed and the image's position only (not of the batch order, the rank or a resumed run).

    Consistent teaching uses them: the teacher scores each view once, before training, and epoch
    ``e`` of the student trains on view ``e mod K`` with the teacher's targets for exactly that view.
    """

    def __init__(self, seed: int, k: int, n: int, hflip: bool, degrees: float, jitter: Jitter | None = None):
        if k < 1:
            raise ValueError(f"need at least one view, got {k}")
        self.hflip, self.degrees, self.jitter = hflip, degrees, jitter or Jitter()
        self.params = [
            draw_all(torch.Generator().manual_seed(derived_seed(seed, v)), n, hflip, degrees, self.jitter)
            for v in range(k)
        ]

    def __len__(self) -> int:
        return len(self.params)

    def __call__(self, x: torch.Tensor, positions: torch.Tensor, view: int) -> torch.Tensor:
        """View ``view`` of the images at dataset ``positions`` (``x`` holds them in that order)."""
        p = {k: v[positions.cpu()] for k, v in self.params[view].items()}
        return apply_params(x, p, self.hflip, self.degrees, self.jitter)
