"""Precision selection: explicit choices, the CPU 'auto' measurement, and autocast."""

import pytest
import torch

from kdviewer.core.models import build_model
from training.precision import autocast, resolve_precision


def test_explicit_precisions_and_fp16_on_cpu_is_refused():
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(ValueError, match="fp16"):
        resolve_precision("fp16", cpu)


def test_auto_on_cpu_measures_without_touching_the_model_or_rng():
    model = build_model("mobilenet_v2")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    with torch.random.fork_rng(devices=[]):
        choice = resolve_precision("auto", torch.device("cpu"), model, batch=2, size=32)
    assert choice in ("fp32", "bf16")
    assert torch.equal(rng, torch.get_rng_state())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_bf16_autocast_runs_linear_layers_in_bf16():
    lin = torch.nn.Linear(4, 2)
    with autocast("bf16", torch.device("cpu")):
        assert lin(torch.ones(1, 4)).dtype == torch.bfloat16
    with autocast("fp32", torch.device("cpu")):
        assert lin(torch.ones(1, 4)).dtype == torch.float32
