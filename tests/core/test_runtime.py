"""Forward runtimes: ONNX export equals PyTorch, cache location, reuse and repair, threads."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kdviewer.core import runtime as rt
from kdviewer.core.untrained import untrained_model
from tests.core import engine_helpers as H  # noqa: F401  (sets a private KDVIEWER_CACHE first)


def _input(seed=0):
    return np.random.default_rng(seed).standard_normal((1, 3, 224, 224)).astype(np.float32)


def _torch_outputs(model, x):
    with torch.inference_mode():
        feats = model.forward_features(torch.from_numpy(x))
        return model.forward_head(feats).numpy()[0], feats.numpy()[0]


def _assert_close(got, want, atol=1e-4):
    logits, feats = got
    ref_logits, ref_feats = want
    np.testing.assert_allclose(logits, ref_logits, rtol=0, atol=atol)
    # the feature map's scale is O(1-10): compare relative to its largest value
    scale = max(1.0, float(np.abs(ref_feats).max()))
    np.testing.assert_allclose(feats, ref_feats, rtol=0, atol=atol * scale)


def test_student_onnx_matches_pytorch(tmp_path, monkeypatch):
    monkeypatch.setenv("KDVIEWER_CACHE", str(tmp_path))
    model = untrained_model("mobilenet_v2")
    sha = rt.state_sha256(model)
    run = rt.OnnxRuntime(model, sha)
    assert run.name == "onnxruntime" and run.rebuilt
    assert run.path.parent == tmp_path and sha[:16] in run.path.name
    for seed in (0, 1):
        x = _input(seed)
        _assert_close(run.run(x), _torch_outputs(model, x))
    eager = rt.TorchEagerRuntime(model)
    x = _input(2)
    _assert_close(eager.run(x), _torch_outputs(model, x), atol=1e-6)
    assert run.run(x)[1].shape == (1280, 7, 7)


def test_teacher_onnx_matches_pytorch():
    eng = H.engine("teacher")  # exported once per session into the private cache
    x = _input(3)
    _assert_close(eng._runtime.run(x), _torch_outputs(eng.model, x))


def test_cache_is_reused_and_a_corrupt_file_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("KDVIEWER_CACHE", str(tmp_path))
    model = untrained_model("mobilenet_v2")
    sha = rt.state_sha256(model)
    first = rt.OnnxRuntime(model, sha)
    assert first.rebuilt
    second = rt.OnnxRuntime(model, sha)
    assert not second.rebuilt
    data = first.path.read_bytes()
    first.path.write_bytes(data[: len(data) // 2])  # truncated file: hash no longer matches
    third = rt.OnnxRuntime(model, sha)
    assert third.rebuilt
    x = _input()
    _assert_close(third.run(x), _torch_outputs(model, x))
    Path(str(first.path) + ".sha256").unlink()  # missing sidecar: rebuilt too
    assert rt.OnnxRuntime(model, sha).rebuilt


def test_different_weights_get_different_cache_files():
    a = rt.state_sha256(untrained_model("mobilenet_v2", seed=0))
    b = rt.state_sha256(untrained_model("mobilenet_v2", seed=1))
    assert a != b
    assert rt.onnx_path("mobilenet_v2", a, 224) != rt.onnx_path("mobilenet_v2", b, 224)


def test_cache_dir_env_and_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("KDVIEWER_CACHE", str(tmp_path / "c"))
    assert rt.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()
    monkeypatch.delenv("KDVIEWER_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if rt.sys.platform.startswith("linux"):
        assert rt.cache_dir() == tmp_path / "xdg" / "kdviewer"


def test_thread_count_resolution():
    assert rt.resolve_thread_count("3") == 3
    cores = rt.resolve_thread_count(None)
    assert cores >= 1
    assert rt.resolve_thread_count("zero") == cores
    assert rt.resolve_thread_count("-2") == cores
    n = rt.thread_count()
    assert n >= 1 and rt.thread_count() == n  # resolved once


@pytest.mark.parametrize(("budget", "teacher"), [(1, 1), (2, 1), (4, 3)])
def test_model_threads_one_for_the_student_the_rest_for_the_teacher(budget, teacher, monkeypatch):
    for role in ("STUDENT", "TEACHER"):
        monkeypatch.delenv(f"KDVIEWER_{role}_THREADS", raising=False)
    assert rt.model_threads("student", budget) == rt.model_threads("student_plain", budget) == 1
    assert rt.model_threads("teacher", budget) == teacher
    assert rt.model_threads("teacher") == max(1, rt.thread_count() - 1)  # the process's budget
    # taking turns (predict, report): the student keeps its one thread, the teacher gets every core
    assert rt.model_threads("student", budget, together=False) == 1
    assert rt.model_threads("teacher", budget, together=False) == budget


def test_model_threads_per_role_override(monkeypatch):
    monkeypatch.setenv("KDVIEWER_TEACHER_THREADS", "3")
    monkeypatch.setenv("KDVIEWER_STUDENT_THREADS", "2")
    assert rt.model_threads("teacher", 2) == 3 and rt.model_threads("student_plain", 2) == 2
    for bad in ("0", "two", " "):
        monkeypatch.setenv("KDVIEWER_TEACHER_THREADS", bad)
        assert rt.model_threads("teacher", 4) == 3  # ignored: the policy's count


def test_sessions_get_their_models_threads_from_the_budget_in_kdviewer_threads(monkeypatch):
    """KDVIEWER_THREADS sets the budget; the shipped cards' sessions get their model's share."""
    for role in ("STUDENT", "TEACHER"):
        monkeypatch.delenv(f"KDVIEWER_{role}_THREADS", raising=False)
    code = (
        "import json, sys\n"
        "from kdviewer.core.engine import load_engine\n"
        "out = {}\n"
        "for name in ('student', 'teacher'):\n"
        "    e = load_engine(name)\n"
        "    opts = e._runtime.session.get_session_options()\n"
        "    out[name] = [e.threads, opts.intra_op_num_threads, e.describe()['threads']]\n"
        "print(json.dumps(out))\n"
    )
    for budget, teacher in ((1, 1), (4, 3)):
        env = {**os.environ, "KDVIEWER_THREADS": str(budget)}
        run = dict(check=True, capture_output=True, text=True, env=env)
        out = subprocess.run([sys.executable, "-c", code], **run)
        got = json.loads(out.stdout.strip().splitlines()[-1])
        assert got == {"student": [1, 1, 1], "teacher": [teacher] * 3}, budget


@pytest.mark.parametrize(
    ("value", "mode"),
    [("0", "off"), ("off", "off"), ("1", "on"), ("TRUE", "on"), (" run ", "run"), ("sometimes", None)],
)
def test_spinning_mode_from_the_environment(value, mode):
    assert rt.spinning_mode(value) == (mode or rt.DEFAULT_SPINNING)
    assert rt.spinning_mode("") == rt.DEFAULT_SPINNING


@pytest.mark.parametrize(
    ("spinning", "allow", "stop"),
    [("off", "0", None), (False, "0", None), ("run", "1", "1"), (True, "1", None)],
)
def test_session_options_spin_as_asked(spinning, allow, stop):
    so = rt.session_options(2, spinning=spinning)
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == allow
    if stop is None:
        with pytest.raises(RuntimeError, match="does not have configuration"):
            so.get_session_config_entry("session.force_spinning_stop")
    else:
        assert so.get_session_config_entry("session.force_spinning_stop") == stop
    with pytest.raises(ValueError):
        rt.session_options(2, spinning="sometimes")


def test_make_runtime_kinds():
    model = untrained_model("mobilenet_v2")
    assert rt.make_runtime("torch-eager", model, "x" * 64).name == "torch-eager"
    with pytest.raises(ValueError):
        rt.make_runtime("tensorrt", model, "x" * 64)


def test_onnxruntime_imported_before_its_telemetry_was_off_is_refused():
    # ORT reads ORT_DISABLE_TELEMETRY when it is imported: a session created after an earlier
    # import would phone home (tests/test_offline.py), so the runtime refuses to make one.
    code = (
        "import os; os.environ.pop('ORT_DISABLE_TELEMETRY', None); import onnxruntime\n"
        "from kdviewer.core import runtime\n"
        "try:\n    runtime.onnxruntime_module()\nexcept RuntimeError as exc:\n    print('refused:', exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert out.startswith("refused:") and "ORT_DISABLE_TELEMETRY=1" in out
    code = (
        "from kdviewer.core import runtime; import os; runtime.onnxruntime_module(); "
        "print(os.environ['ORT_DISABLE_TELEMETRY'])"
    )
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
        ).stdout.strip()
        == "1"
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_lower_thread_priority_applies_to_the_thread_and_those_it_starts():
    """The teacher's worker lowers its own priority; threads it starts (ONNX Runtime's pool) inherit
    it, and the rest of the process keeps its priority."""
    import os
    import threading

    from kdviewer.core.runtime import BACKGROUND_NICE, lower_thread_priority

    seen = {}

    def child():
        seen["child"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def worker():
        seen["lowered"] = lower_thread_priority()
        seen["worker"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        t = threading.Thread(target=child)
        t.start()
        t.join()

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen["lowered"] and seen["worker"] == seen["child"] == BACKGROUND_NICE
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
