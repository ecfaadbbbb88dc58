"""``kdviewer bench``: the engine's speed, memory and energy beside eager PyTorch, in one run.

For student and teacher, in one process: the engine (its shipped runtime, ONNX Runtime by
default) and the eager PyTorch baseline (the paper code's way: the torch model, default threads)
each run the full path from decoded pixels to five scores and five heat maps, timed per stage
(preprocess, forward, heat map) and in total, with the process's CPU time per inference (all
threads); median and p90 over ``runs`` after warm-up. Each engine runs on its model's intra-op
threads (:func:`~kdviewer.core.runtime.model_threads`), as in the viewer. Also:
opening the built-in 1955×1841 JPEG 2000 chest DICOM to scores + heat maps ready, peak RSS (this
process, and a separate student-only process), energy per inference from the power meter (with
how it was obtained), the machine and library versions.

Benchmarks print numbers; tests never assert on them. ``bench_command(runs, as_json)`` is what the
CLI calls; ``python -m kdviewer.bench --runs 30 --json`` works too.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import numpy as np
import psutil
from threadpoolctl import threadpool_limits

from kdviewer.core.engine import InferenceEngine, load_engine, reference_image
from kdviewer.core.extras import torch_available
from kdviewer.core.imageio import read_image
from kdviewer.core.machine import physical_cores
from kdviewer.core.modelcard import find_cards
from kdviewer.core.power import shared_meter
from kdviewer.core.power.estimate import cpu_model
from kdviewer.core.preprocess import MODEL_READ_MIN_SIDE, image_to_model_input
from kdviewer.core.resources import example_image
from kdviewer.core.runtime import (
    TEACHER,
    lower_thread_priority,
    model_role,
    onnxruntime_module,
    session_options,
    spinning_mode,
    thread_count,
)
from kdviewer.core.versions import library_versions

try:
    import resource
except ImportError:  # Windows
    resource = None

# The libraries that decide the numbers (those not installed are left out).
BENCH_DISTRIBUTIONS = (
    "numpy",
    "torch",
    "torchvision",
    "onnxruntime",
    "onnx",
    "grad-cam",
    "opencv-python-headless",
    "pillow",
    "pydicom",
    "pylibjpeg-openjpeg",
)

log = logging.getLogger(__name__)

STAGES = ("preprocess", "forward", "heatmap", "total")
DEFAULT_RUNS = 30
DEFAULT_SHAPE = (1024, 1024)  # the geometry of an NIH ChestX-ray14 PNG
TARGETS = {
    "student_total_median_ms": 5.0,
    "teacher_over_student_ratio": 10.0,
    "open_example_ms": 250.0,
    "student_slowdown_beside_teacher_pct": 20.0,
}


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {
        "median_ms": round(float(np.median(a)), 3),
        "p90_ms": round(float(np.percentile(a, 90)), 3),
        "min_ms": round(float(a.min()), 3),
    }


def _time_engine(engine, image, runs: int, warmup: int) -> dict[str, Any]:
    """Per-stage timings of ``predict`` (5 scores + 5 heat maps at feature resolution), plus
    ``upsample_one``: reading one heat map at the image's geometry, as the viewer does for the
    map it shows (maps are upsampled when first read, see ``engine.Heatmaps``), and ``cpu``: the
    process's CPU time (all its threads) during ``predict``, which is the engine's own while
    nothing else runs in the process."""
    for _ in range(warmup):
        engine.predict(image, measure_energy=False)
    per_stage: dict[str, list[float]] = {s: [] for s in (*STAGES, "upsample_one", "cpu")}
    for _ in range(runs):
        c0 = time.process_time()
        pred = engine.predict(image, measure_energy=False)
        per_stage["cpu"].append((time.process_time() - c0) * 1e3)
        t0 = time.perf_counter()
        pred.heatmaps[pred.findings[0]]
        per_stage["upsample_one"].append((time.perf_counter() - t0) * 1e3)
        for s in STAGES:
            per_stage[s].append(pred.timings_ms[s])
    out: dict[str, Any] = {s: _stats(v) for s, v in per_stage.items()}
    out.update(
        runtime=engine.runtime_name,
        threads=engine.threads,
        architecture=engine.card.architecture,
        trained=bool(engine.card.trained),
        status=engine.status.state,
    )
    return out


def _energy(engine, image, runs: int) -> dict[str, Any]:
    meter = shared_meter()
    if meter is None:
        return {"available": False}
    engine.predict(image, measure_energy=False)
    with meter.measure() as rec:
        for _ in range(runs):
            engine.predict(image, measure_energy=False)
    per = rec.marginal_energy_j / runs if rec.marginal_energy_j == rec.marginal_energy_j else math.nan
    tot = rec.energy_j / runs if rec.energy_j == rec.energy_j else math.nan
    return {
        "available": True,
        "per_inference_mj": round(per * 1e3, 4),
        "per_inference_total_mj": round(tot * 1e3, 4),
        "avg_power_w": round(rec.avg_power_w, 3),
        "idle_power_w": round(rec.idle_power_w, 3),
        "runs": runs,
        "meter": rec.meter,
        "method": rec.method,
        "is_estimate": bool(rec.is_estimate),
    }


def multiply_adds(engine) -> float | None:
    """Multiply-accumulates of one forward pass at the card's input size, in G (PyTorch's FLOP counter
    / 2 on the eager model), or None without PyTorch."""
    if not torch_available():
        return None
    # optional (the light install has no PyTorch), checked above
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    size = engine.card.input.size
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        engine.model(torch.zeros(1, engine.card.input.channels, size, size))
    return round(counter.get_total_flops() / 2e9, 4)


def matmul_peak(threads: int, seconds: float = 0.3) -> dict[str, float | None]:
    """This machine's measured matrix-multiply throughput in G multiply-adds per second with
    ``threads`` threads: float32 (numpy's BLAS, 512² · 512²) and int8 (ONNX Runtime's
    MatMulInteger, uint8 × int8, the int8 graph's kernel; None where the ``onnx`` package that builds
    the probe's graph is absent). The best of repeated runs over about ``seconds`` each."""
    n = 512
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)

    def best(fn) -> float:
        fn()
        times, t_end = [], time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return n**3 / min(times) / 1e9

    with threadpool_limits(threads, user_api="blas"):
        fp32 = best(lambda: a @ b)
    int8 = None
    try:
        from onnx import TensorProto, helper  # optional: absent from the light install

        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["a", "b"], ["c"])],
            "probe",
            [
                helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n]),
                helper.make_tensor_value_info("b", TensorProto.INT8, [n, n]),
            ],
            [helper.make_tensor_value_info("c", TensorProto.INT32, [n, n])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        session = onnxruntime_module().InferenceSession(model.SerializeToString(), session_options(threads))
        feeds = {
            "a": rng.integers(0, 255, (n, n), dtype=np.uint8),
            "b": rng.integers(-127, 127, (n, n), dtype=np.int8),
        }
        int8 = best(lambda: session.run(None, feeds))
    except ImportError:
        log.info("int8 matmul probe skipped: the onnx package is not installed")
    return {
        "fp32_gmacs_per_s": round(fp32, 1),
        "int8_gmacs_per_s": None if int8 is None else round(int8, 1),
        "threads": threads,
    }


THREAD_STUDY_PAUSES_S = {"student": (0.0, 0.05), "teacher": (0.0,)}


def _thread_study(engine, image, runs: int, budget: int) -> dict[str, Any] | None:
    """The forward pass of ``engine``'s ONNX graph alone with each intra-op thread count in
    {its model's, 1, ``budget``}, one session per count, interleaved, back to back and (the
    student) with a 50 ms pause before each, as in the viewer: median ms and CPU ms per
    inference. The evidence for :func:`~kdviewer.core.runtime.model_threads`; None for an engine
    without an ONNX graph file."""
    path = engine.describe().get("onnx")
    if engine.runtime_name != "onnxruntime" or path is None:
        return None
    ort = onnxruntime_module()
    counts = sorted({engine.threads, 1, budget})
    sessions = {
        n: ort.InferenceSession(str(path), session_options(n), providers=["CPUExecutionProvider"])
        for n in counts
    }
    feed = {sessions[counts[0]].get_inputs()[0].name: image_to_model_input(image, engine.card.input)[None]}
    out: dict[str, Any] = {}
    for pause in THREAD_STUDY_PAUSES_S["teacher" if model_role(engine.name) == TEACHER else "student"]:
        wall: dict[int, list[float]] = {n: [] for n in counts}
        cpu: dict[int, list[float]] = {n: [] for n in counts}
        for i in range(runs + 2):  # the first two of each session are warm-up
            for n, session in sessions.items():
                time.sleep(pause)
                c0, t0 = time.process_time(), time.perf_counter()
                session.run(None, feed)
                if i >= 2:
                    wall[n].append((time.perf_counter() - t0) * 1e3)
                    cpu[n].append((time.process_time() - c0) * 1e3)
        out[f"pause_{pause * 1e3:.0f}ms"] = {
            str(n): {"median_ms": _stats(wall[n])["median_ms"], "cpu_ms": _stats(cpu[n])["median_ms"]}
            for n in counts
        }
    return {"runs": runs, "threads_used": engine.threads, **out}


TOGETHER_PAUSE_S = 0.02  # between the student's images beside the teacher, as a reader paging quickly


def _student_beside_teacher(
    student,
    image,
    runs: int,
    *,
    pause_s: float = TOGETHER_PAUSE_S,
    min_teacher_runs: int = 3,
    max_seconds: float = 10.0,
) -> dict[str, Any]:
    """The student's total time while a teacher predicts without pause in another thread (the
    viewer's worst case: the reader opens images while the teacher is busy), against its time
    alone just before, one image every ``pause_s`` in both. The teacher runs as the viewer runs it:
    loaded and served by a thread at the lowest priority
    (:func:`~kdviewer.core.runtime.lower_thread_priority`), each engine on its model's intra-op
    threads (:func:`~kdviewer.core.runtime.model_threads`), and has predicted once before the
    student is timed. The student goes on past ``runs`` until the teacher has finished
    ``min_teacher_runs`` inferences meanwhile (or ``max_seconds`` have passed: a teacher that gets
    no core, as at the lowest priority beside other work, is reported, not waited for).

    The pause matters: beside a student predicting back to back, a teacher thread at the lowest
    priority hardly ran on the 2-core development machine (the version without the pause,
    ``kdviewer bench --runs 50`` at 5ec038b, 3 runs on 2026-12-02: 1 teacher inference during the
    student's 50 each time; likely the interpreter lock, which the student holds for all but its
    forward pass), so the student was timed beside an idle teacher."""

    def student_totals(n: int, until=lambda: True) -> list[float]:
        out: list[float] = []
        while len(out) < n or not until():
            time.sleep(pause_s)
            out.append(student.predict(image, measure_energy=False).timings_ms["total"])
        return out

    for _ in range(2):
        student.predict(image, measure_energy=False)
    alone = _stats(student_totals(runs))["median_ms"]
    ready, stop = threading.Event(), threading.Event()
    state: dict[str, Any] = {"runs": 0}

    def keep_teacher_busy():
        try:
            state["lowered"] = lower_thread_priority()
            teacher = load_engine("teacher")
            state["threads"] = teacher.threads
            teacher.predict(image, measure_energy=False)  # warm, as after the viewer's first image
        except Exception as exc:
            state["error"] = exc
            return
        finally:
            ready.set()
        while not stop.is_set():
            teacher.predict(image, measure_energy=False)
            state["runs"] += 1

    worker = threading.Thread(target=keep_teacher_busy, name="bench teacher", daemon=True)
    worker.start()
    ready.wait()
    if "error" in state:
        raise state["error"]
    try:
        teacher_before, deadline = state["runs"], time.perf_counter() + max_seconds
        totals = student_totals(
            runs,
            lambda: state["runs"] - teacher_before >= min_teacher_runs or time.perf_counter() > deadline,
        )
        teacher_runs = state["runs"] - teacher_before
    finally:
        stop.set()
        worker.join()
    together = _stats(totals)["median_ms"]
    return {
        "pause_ms": round(pause_s * 1e3, 1),
        "student_alone_ms": alone,
        "student_beside_teacher_ms": together,
        "slowdown_pct": round(100.0 * (together / alone - 1.0), 1),
        "student_runs": len(totals),
        "teacher_runs_meanwhile": teacher_runs,
        "teacher_priority_lowered": bool(state.get("lowered")),
        "threads": {"student": student.threads, "teacher": state.get("threads")},
    }


def _open_example(engine, repeats: int = 3) -> dict[str, Any]:
    path = example_image()
    reads, preds, totals = [], [], []
    shape = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        img = read_image(path, reduce_to=MODEL_READ_MIN_SIDE)  # the model path's read
        t1 = time.perf_counter()
        pred = engine.predict(img, measure_energy=False)
        pred.heatmaps[pred.findings[0]]  # the map the viewer shows, at full geometry
        t2 = time.perf_counter()
        assert len(pred.heatmaps) == len(pred.findings)
        shape = img.geometry
        reads.append((t1 - t0) * 1e3)
        preds.append((t2 - t1) * 1e3)
        totals.append((t2 - t0) * 1e3)
    return {
        "path": os.path.basename(str(path)),
        "shape": list(shape),
        "runs": repeats,
        "first_ms": round(totals[0], 2),
        "read": _stats(reads),
        "predict": _stats(preds),
        "total": _stats(totals),
    }


_CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from kdviewer.core.engine import load_engine, reference_image
eng = load_engine("student")
img = reference_image(tuple(int(v) for v in sys.argv[1:3]))
pred = eng.predict(img, measure_energy=False)
t1 = time.perf_counter()
assert len(pred.heatmaps) == 5
def peak_mb():
    # VmHWM: this process's own high-water mark (ru_maxrss can carry the parent's across fork+exec)
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"peak_rss_mb": peak_mb(), "first_scores_ms": (t1 - t0) * 1e3, "runtime": eng.runtime_name,
                  "torch_imported": "torch" in sys.modules, "status": eng.status.state}))
"""


def _student_only_process(student, shape) -> dict[str, Any]:
    """Peak RSS and time to first scores of a fresh process that loads only the student.

    That process starts as the shipped app does: from a model card whose ONNX export is already
    cached (the first start exports it once). Without a bundled student card, the untrained
    student is written to a temporary card for the measurement.
    """
    if getattr(sys, "frozen", False):  # the desktop bundle: its executable is no Python interpreter
        return {"error": "not measured in the bundle (it needs a Python interpreter)"}
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="kdviewer-bench-") as tmp:
        cards = find_cards()
        if "student" in cards:
            card_path = cards["student"]
        else:
            from kdviewer.core.untrained import write_untrained_card  # PyTorch: absent from the light install

            card_path = write_untrained_card(tmp, "student")
            env["KDVIEWER_MODELS"] = tmp
        InferenceEngine.from_card(card_path)  # the one-off export, as on a first start
        try:
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, str(shape[0]), str(shape[1])],
                capture_output=True,
                text=True,
                timeout=600,
                check=True,
                env=env,
            ).stdout
            d = json.loads(out.strip().splitlines()[-1])
        except Exception as exc:  # report, don't fail the whole benchmark
            log.warning("student-only process failed: %s", exc)
            return {"error": str(exc)}
    return {
        "peak_rss_mb": round(d["peak_rss_mb"], 1),
        "first_scores_ms": round(d["first_scores_ms"], 1),
        "runtime": d["runtime"],
        "torch_imported": d["torch_imported"],
        "status": d["status"],
    }


def _peak_rss_mb() -> float | None:
    if resource is not None:
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(kb / (1024 * 1024) if sys.platform == "darwin" else kb / 1024, 1)
    try:  # Windows
        return round(psutil.Process().memory_info().peak_wset / 2**20, 1)
    except Exception:
        return None


def machine_info(threads: int, intra_op: dict[str, int] | None = None) -> dict[str, Any]:
    """CPU model, cores, threads used (the budget ``threads``; ``intra_op``: each model's ONNX
    Runtime threads) and load (the machine may be shared)."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = cpu_model() or cpu
    except Exception:
        pass
    physical, logical = physical_cores(), os.cpu_count()
    info = {
        "cpu_model": cpu,
        "physical_cores": physical,
        "logical_cpus": logical,
        "threads": {
            "budget": threads,
            "intra_op": dict(intra_op or {}),
            "torch": sys.modules["torch"].get_num_threads() if sys.modules.get("torch") else None,
            "ort_spinning": spinning_mode(),
        },
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    if hasattr(os, "getloadavg"):
        info["load_avg_1_5_15"] = [round(v, 2) for v in os.getloadavg()]
    return info


def versions() -> dict[str, str | None]:
    """Versions of the libraries that decide the numbers."""
    return library_versions(BENCH_DISTRIBUTIONS)


def run_bench(
    runs: int = DEFAULT_RUNS,
    *,
    warmup: int = 5,
    image_shape: tuple[int, int] = DEFAULT_SHAPE,
    eager: bool = True,
    example: bool = True,
    subprocess_rss: bool = True,
    energy: bool = True,
    student_sizes: tuple[tuple[int, int], ...] | None = None,
    thread_study: bool = True,
) -> dict[str, Any]:
    """Run the benchmark; return a JSON-ready dict (see the module docstring and :func:`format_text`).

    Keys: ``student``/``teacher`` → stage → ``median_ms``/``p90_ms``; ``eager`` → the same for the
    eager baseline; ``ratio``, ``open_example_ms``, ``open_example``, ``rss``, ``energy``,
    ``machine``, ``versions``, ``targets``.
    """
    runs = max(1, int(runs))
    if eager and not torch_available():  # the light install: the engine alone
        log.warning("eager PyTorch baseline skipped: PyTorch is not installed")
        eager = False
    image = reference_image(tuple(image_shape))
    description = "synthetic smooth grey image (kdviewer.core.engine.reference_image), decoded pixels"
    result: dict[str, Any] = {
        "schema": 1,
        "runs": runs,
        "warmup": warmup,
        "input": {"shape": list(image.shape), "description": description},
    }
    engines = {}
    for name in ("student", "teacher"):
        t0 = time.perf_counter()
        engines[name] = load_engine(name)
        result.setdefault("load_ms", {})[name] = round((time.perf_counter() - t0) * 1e3, 1)
    for name, eng in engines.items():
        result[name] = _time_engine(eng, image, runs, warmup)
    # the student's whole path at other decoded sizes (model size up to the example's geometry)
    result["student_sizes"] = {}
    if student_sizes is None:
        student_sizes = ((224, 224), (512, 512), tuple(image_shape), (1955, 1841))
    for shape in student_sizes:
        key = f"{shape[0]}x{shape[1]}"
        if key not in result["student_sizes"]:
            d = _time_engine(engines["student"], reference_image(shape), runs, warmup)
            result["student_sizes"][key] = {s: d[s]["median_ms"] for s in (*STAGES, "upsample_one")}
    if eager:
        result["eager"] = {}
        for name, eng in engines.items():
            ref = InferenceEngine(eng.model, eng.card, runtime="torch-eager", status=eng.status)
            result["eager"][name] = _time_engine(ref, image, runs, warmup)
    result["together"] = _student_beside_teacher(engines["student"], image, runs)
    if thread_study:
        n = min(runs, 30)
        result["thread_study"] = {
            name: _thread_study(eng, image, n, thread_count()) for name, eng in engines.items()
        }
    # the probe on each model's own thread count: the floor of a 1-thread forward is 1 thread's peak
    probes = {n: matmul_peak(n) for n in sorted({eng.threads for eng in engines.values()})}
    result["floor"] = {"probes": list(probes.values())}
    for name, eng in engines.items():
        peak = probes[eng.threads]
        gmacs = multiply_adds(eng) if eager else None
        rate = peak["int8_gmacs_per_s"] if eng.precision == "int8" else peak["fp32_gmacs_per_s"]
        fwd = result[name]["forward"]["median_ms"]
        result[name]["precision"] = eng.precision
        result["floor"][name] = {
            "threads": eng.threads,
            "gmacs": gmacs,
            "precision": eng.precision,
            "peak_gmacs_per_s": rate,
            "floor_ms": None if not (gmacs and rate) else round(gmacs / rate * 1e3, 3),
            "share_of_peak": None if not (gmacs and rate) else round(gmacs / (fwd / 1e3) / rate, 3),
        }
    s, t = result["student"], result["teacher"]
    result["ratio"] = {
        "teacher_over_student_total": round(t["total"]["median_ms"] / s["total"]["median_ms"], 2),
        "teacher_over_student_forward": round(t["forward"]["median_ms"] / s["forward"]["median_ms"], 2),
        "teacher_over_student_cpu": round(t["cpu"]["median_ms"] / s["cpu"]["median_ms"], 2),
    }
    if eager:
        for name in engines:
            result["ratio"][f"eager_over_engine_{name}_forward"] = round(
                result["eager"][name]["forward"]["median_ms"] / result[name]["forward"]["median_ms"], 2
            )
    if example:
        try:
            ex = _open_example(engines["student"])
            result["open_example"] = ex
            result["open_example_ms"] = ex["total"]["median_ms"]
        except Exception as exc:
            log.warning("example image benchmark skipped: %s", exc)
            result["open_example"] = {"error": str(exc)}
            result["open_example_ms"] = None
    if energy:
        n = min(runs, 20)
        result["energy"] = {name: _energy(eng, image, n) for name, eng in engines.items()}
    result["rss"] = {"peak_mb_this_process": _peak_rss_mb()}
    if subprocess_rss:
        result["rss"]["student_only_process"] = _student_only_process(engines["student"], image.shape)
    result["machine"] = machine_info(thread_count(), {name: eng.threads for name, eng in engines.items()})
    result["versions"] = versions()
    result["targets"] = {
        "student_total_median_ms": {
            "target": TARGETS["student_total_median_ms"],
            "measured": s["total"]["median_ms"],
        },
        "teacher_over_student_ratio": {
            "target": TARGETS["teacher_over_student_ratio"],
            "measured": result["ratio"]["teacher_over_student_total"],
        },
        "open_example_ms": {"target": TARGETS["open_example_ms"], "measured": result.get("open_example_ms")},
        "student_slowdown_beside_teacher_pct": {
            "target": TARGETS["student_slowdown_beside_teacher_pct"],
            "measured": result["together"]["slowdown_pct"],
        },
    }
    for k, v in result["targets"].items():
        m = v["measured"]
        v["met"] = None if m is None else (m >= v["target"] if k.endswith("ratio") else m <= v["target"])
    return result


def format_text(r: dict[str, Any]) -> str:
    """A human-readable report of :func:`run_bench`'s result."""
    m = r["machine"]
    lines = [
        f"kdviewer bench: {r['runs']} runs after {r['warmup']} warm-up, input {r['input']['shape'][0]}x"
        f"{r['input']['shape'][1]} decoded pixels -> 5 scores + 5 heat maps",
        f"machine: {m['cpu_model']}, {m['physical_cores']} cores / {m['logical_cpus']} CPUs, threads: budget "
        f"{m['threads']['budget']}, ONNX Runtime intra-op "
        + ", ".join(f"{n} {k}" for n, k in m["threads"]["intra_op"].items())
        + f" (spinning {m['threads'].get('ort_spinning')}), "
        f"torch {m['threads']['torch']}"
        + (f", load {m['load_avg_1_5_15']}" if "load_avg_1_5_15" in m else ""),
        "versions: " + ", ".join(f"{k} {v}" for k, v in r["versions"].items()),
        "",
        f"{'model':<9}{'runtime':<13}{'threads':>7}"
        + "".join(f"{s + ' med/p90 ms':>24}" for s in STAGES)
        + f"{'CPU ms/inference':>18}",
    ]
    rows = [(n, r[n]) for n in ("student", "teacher")] + [(f"{n}", v) for n, v in r.get("eager", {}).items()]
    for name, d in rows:
        lines.append(
            f"{name:<9}{d['runtime']:<13}{d['threads']:>7}"
            + "".join(f"{d[s]['median_ms']:>15.2f} /{d[s]['p90_ms']:>7.2f}" for s in STAGES)
            + f"{d['cpu']['median_ms']:>18.2f}"
        )
    lines.append(
        "(heat map = 5 class activation maps at feature resolution; reading one at the image's "
        "geometry, as the viewer does for the map it shows, adds: "
        + ", ".join(f"{n} {d['upsample_one']['median_ms']:.2f} ms" for n, d in rows[:2])
        + ")"
    )
    if r.get("student_sizes"):
        lines += [
            "",
            "student median ms by decoded size: "
            + "; ".join(
                f"{k}: total {v['total']:.2f} (pre {v['preprocess']:.2f}, fwd {v['forward']:.2f}, "
                f"maps {v['heatmap']:.2f}, +1 map upsampled {v['upsample_one']:.2f})"
                for k, v in r["student_sizes"].items()
            ),
        ]
    rt = r["ratio"]
    lines += [
        "",
        f"teacher/student (engine): total {rt['teacher_over_student_total']:.1f}x, "
        f"forward {rt['teacher_over_student_forward']:.1f}x, CPU time {rt['teacher_over_student_cpu']:.1f}x",
    ]
    fl = r.get("floor") or {}
    if fl:
        for pk in fl["probes"]:
            lines.append(
                f"matmul probe ({pk['threads']} threads): fp32 {pk['fp32_gmacs_per_s']} GMAC/s, int8 "
                f"{pk['int8_gmacs_per_s'] if pk['int8_gmacs_per_s'] is not None else 'n/a'} GMAC/s"
            )
        for name in ("student", "teacher"):
            f = fl[name]
            if f["share_of_peak"] is not None:
                lines.append(
                    f"{name} ({f['precision']}, {f['threads']} threads): {f['gmacs']} GMACs, floor "
                    f"{f['floor_ms']:.2f} ms at the probe's peak; forward reaches "
                    f"{100 * f['share_of_peak']:.0f} % of it"
                )
    tg = r.get("together")
    if tg:
        lines.append(
            f"student beside a busy teacher ({tg['pause_ms']:.0f} ms pause between images; threads student "
            f"{tg['threads']['student']}, teacher "
            f"{tg['threads']['teacher']}, teacher at lowest priority: "
            f"{'yes' if tg['teacher_priority_lowered'] else 'no'}): "
            f"{tg['student_beside_teacher_ms']:.2f} ms vs {tg['student_alone_ms']:.2f} ms alone "
            f"({tg['slowdown_pct']:+.0f} %, target <= "
            f"+{TARGETS['student_slowdown_beside_teacher_pct']:.0f} %; "
            f"{tg['teacher_runs_meanwhile']} teacher inferences during {tg['student_runs']} of the student)"
        )
    for name, st in (r.get("thread_study") or {}).items():
        if not st:
            continue
        parts = []
        for key, by_count in st.items():
            if key.startswith("pause_"):
                how = "back to back" if key == "pause_0ms" else f"{key[6:-2]} ms pause before each"
                counts = ", ".join(
                    f"{k} thread{'s' if k != '1' else ''} {v['median_ms']:.2f} ms (CPU {v['cpu_ms']:.2f})"
                    for k, v in by_count.items()
                )
                parts.append(f"{how}: {counts}")
        lines.append(
            f"{name} forward alone by intra-op threads ({st['runs']} runs each, interleaved; the engine "
            f"uses {st['threads_used']}): " + "; ".join(parts)
        )
    if "eager_over_engine_student_forward" in rt:
        lines.append(
            f"eager/engine forward: student {rt['eager_over_engine_student_forward']:.1f}x, "
            f"teacher {rt['eager_over_engine_teacher_forward']:.1f}x"
        )
    ex = r.get("open_example") or {}
    if "total" in ex:
        lines.append(
            f"open example {ex['path']} {ex['shape'][0]}x{ex['shape'][1]} -> scores + heat maps "
            f"(student, one map upsampled): median {ex['total']['median_ms']:.1f} ms "
            f"(read {ex['read']['median_ms']:.1f} + predict "
            f"{ex['predict']['median_ms']:.1f}), first {ex['first_ms']:.1f} ms"
        )
    rss = r.get("rss", {})
    child = rss.get("student_only_process", {})
    lines.append(
        f"peak RSS: this process {rss.get('peak_mb_this_process')} MB; student-only process "
        + (
            f"{child['peak_rss_mb']} MB (first scores {child['first_scores_ms']:.0f} ms after start, "
            f"PyTorch {'loaded' if child['torch_imported'] else 'not loaded'})"
            if "peak_rss_mb" in child
            else f"n/a ({child.get('error', 'not measured')})"
        )
    )
    for name, e in (r.get("energy") or {}).items():
        if e.get("available"):
            lines.append(
                f"energy {name}: {e['per_inference_mj']:.2f} mJ/inference above idle "
                f"(total {e['per_inference_total_mj']:.2f} mJ; idle baseline {e['idle_power_w']:.2f} W, "
                f"measured before) ({'ESTIMATE' if e['is_estimate'] else 'measured'}: {e['method']})"
            )
        else:
            lines.append(f"energy {name}: no power meter")
    lines.append("")
    for k, v in r["targets"].items():
        met = {True: "met", False: "NOT met", None: "n/a"}[v["met"]]
        lines.append(f"target {k}: {v['measured']} vs {v['target']} -> {met}")
    return "\n".join(lines)


def bench_command(runs: int = DEFAULT_RUNS, as_json: bool = False, **kwargs: Any) -> int:
    """Run the benchmark and print it (text or JSON) to stdout; return the exit code."""
    try:
        result = run_bench(runs=runs, **kwargs)
    except Exception as exc:
        log.error("benchmark failed: %s", exc, exc_info=True)
        sys.stderr.write(f"kdviewer bench: failed: {exc}\n")
        return 1
    sys.stdout.write((json.dumps(result, indent=2) if as_json else format_text(result)) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m kdviewer.bench [--runs N] [--json] [--size H W] [--no-eager]``."""
    p = argparse.ArgumentParser(prog="kdviewer bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="timed runs per model (after warm-up)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=DEFAULT_SHAPE,
        help="decoded image size (default 1024 1024)",
    )
    p.add_argument("--no-eager", action="store_true", help="skip the eager PyTorch baseline")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return bench_command(a.runs, a.json, image_shape=tuple(a.size), eager=not a.no_eager)


if __name__ == "__main__":
    sys.exit(main())
