"""Numeric precision of the training step: fp32, bf16 or fp16 autocast, chosen per device.

``auto`` means: on CUDA, bf16 autocast where the GPU supports it, else fp16 with a gradient
scaler; on CPU, bf16 autocast only if a short measurement on the actual model (a copy, with
random inputs, so the run's state and random streams are untouched) shows it at least 10 %
faster than fp32, and only on CPUs with native bf16 (AVX512-BF16/AMX); otherwise fp32.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time

import torch

log = logging.getLogger(__name__)

AUTO_MARGIN = 0.9  # bf16 must take at most 90 % of fp32's time


def cpu_has_native_bf16() -> bool:
    """True on CPUs with AVX512-BF16 or AMX (where bf16 matmuls are native, not emulated)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast(precision: str, device: torch.device):
    """The autocast context for ``precision`` on ``device`` (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _timed_steps(
    model: torch.nn.Module,
    precisions: tuple[str, ...],
    device: torch.device,
    batch: int,
    size: int,
    steps: int,
    channels_last: bool,
) -> dict[str, float]:
    """Median seconds of a forward+backward step per precision, on a copy of ``model``.

    The precisions are timed in alternation (after one warm-up step each) so that a machine whose
    load changes during the measurement biases none of them.
    """
    m = copy.deepcopy(model).to(device).train()
    gen = torch.Generator().manual_seed(1234)
    x = torch.rand(batch, 3, size, size, generator=gen).to(device)
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    times: dict[str, list[float]] = {p: [] for p in precisions}
    for i in range(steps + 1):
        for p in precisions:
            t0 = time.perf_counter()
            with autocast(p, device):
                out = m(x)
            out.float().mean().backward()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i:
                times[p].append(time.perf_counter() - t0)
    return {p: sorted(t)[len(t) // 2] for p, t in times.items()}


def resolve_precision(
    requested: str,
    device: torch.device,
    model: torch.nn.Module | None = None,
    batch: int = 8,
    size: int = 224,
    channels_last: bool = True,
) -> str:
    """Turn ``auto`` into a concrete precision for ``device`` (see the module docstring)."""
    if requested != "auto":
        if requested == "fp16" and device.type == "cpu":
            raise ValueError("fp16 autocast is for CUDA; use bf16 or fp32 on CPU")
        return requested
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type != "cpu" or model is None or not cpu_has_native_bf16():
        return "fp32"
    t = _timed_steps(model, ("fp32", "bf16"), device, batch, size, steps=3, channels_last=channels_last)
    fp32, bf16 = t["fp32"], t["bf16"]
    choice = "bf16" if bf16 <= AUTO_MARGIN * fp32 else "fp32"
    log.info(
        "precision auto: fp32 %.3f s/step, bf16 %.3f s/step (batch %d, %d px) -> %s",
        fp32,
        bf16,
        batch,
        size,
        choice,
    )
    return choice
