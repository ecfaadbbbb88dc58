"""Seconds per training image on this machine, per architecture, batch size and precision.

A planning aid (``kdviewer-train speed``), not a test: it times forward + backward + AdamW steps
on random 224×224 inputs (after one warm-up step) and prints the median per image.
"""

from __future__ import annotations

import logging
import time

import torch

from kdviewer.core.models import build_model
from training.config import Config
from training.precision import autocast, cpu_has_native_bf16

log = logging.getLogger(__name__)


def time_train_steps(
    arch: str, batch: int, precision: str, channels_last: bool, size: int, steps: int, device: torch.device
) -> float:
    """Median seconds per image of a full training step."""
    torch.manual_seed(0)
    model = build_model(arch).to(device).train()
    x = torch.rand(batch, 3, size, size, device=device)
    y = (torch.rand(batch, 5, device=device) < 0.3).float()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        with autocast(precision, device):
            out = model(x)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2] / batch


def run_speed(archs: list[str], batches: list[int], cfg: Config, steps: int = 3) -> list[dict]:
    """Time every combination and print a table; returns the rows."""
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.train.device != "cpu" else "cpu")
    precisions = ["fp32"] + (["bf16"] if device.type == "cuda" or cpu_has_native_bf16() else [])
    rows = []
    print(
        f"device {device}, {torch.get_num_threads()} threads, input {cfg.input.size}px, {steps} timed steps"
    )
    for arch in archs:
        for batch in batches:
            for precision in precisions:
                for cl in (False, True):
                    s = time_train_steps(arch, batch, precision, cl, cfg.input.size, steps, device)
                    rows.append(
                        {
                            "arch": arch,
                            "batch": batch,
                            "precision": precision,
                            "channels_last": cl,
                            "s_per_img": s,
                        }
                    )
                    print(
                        f"{arch:13s} batch {batch:3d} {precision} channels_last={cl!s:5s} {s:.4f} s/img",
                        flush=True,
                    )
    return rows
