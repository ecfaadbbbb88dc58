"""Two CPU processes (gloo, torchrun) against one process with the same global batch.

Both runs see the same images in the same steps (DistributedSampler's shuffle is the same on one
or two ranks; a rank takes every second image) and augment them identically (parameters drawn
for the global batch from one seeded generator). Gradients are averaged by DDP and the masked
BCE is normalised by the global count of known labels, so the update is the global-batch update.
What differs is BatchNorm: PyTorch's SyncBatchNorm is CUDA-only, so on CPU each rank normalises
with the statistics of its own half batch. The trajectories therefore agree within a tolerance,
not exactly; on CUDA the trainer uses SyncBatchNorm (train.sync_bn). The teacher stage is used
because DenseNet-121 has no dropout (MobileNetV2's dropout masks are drawn per rank).
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from training.cli import main
from training.runlog import read_jsonl

from .conftest import TINY_OVERRIDES

REPO = Path(__file__).resolve().parents[2]


def _sets(extra):
    out = []
    for o in (*TINY_OVERRIDES, *extra):
        out += ["--set", o]
    return out


def test_two_gloo_ranks_follow_the_single_process_loss_trajectory(tiny_data, tmp_path):
    args = ["teacher", "--data-root", str(tiny_data), *_sets(["train.epochs=2", "train.batch_size=8"])]
    assert main([*args, "--workdir", str(tmp_path / "single")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        "--nproc_per_node=2",
        "-m",
        "training",
        *args,
        "--workdir",
        str(tmp_path / "ddp"),
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = read_jsonl(tmp_path / "single" / "teacher" / "log.jsonl")
    ddp = read_jsonl(tmp_path / "ddp" / "teacher" / "log.jsonl")
    assert len(single) == len(ddp) == 2
    s = np.array([[r["train_loss"], r["val_loss"]] for r in single])
    d = np.array([[r["train_loss"], r["val_loss"]] for r in ddp])
    np.testing.assert_allclose(d, s, rtol=0.1)
    # each rank measured its own process; the epoch's energy is their sum, and says so
    assert all(r["energy_method"].startswith("sum over 2 ranks of: ") for r in ddp)
    assert all(r["energy_j"] > 0 for r in ddp)
    # rank 0 alone wrote the run folder; both ranks' random states are in the checkpoint
    from training import checkpoint

    ck = checkpoint.load(tmp_path / "ddp" / "teacher" / checkpoint.LAST)
    assert ck["world"] == 2 and len(ck["rng"]) == 2
    assert (tmp_path / "ddp" / "splits.csv").read_text() == (tmp_path / "single" / "splits.csv").read_text()
