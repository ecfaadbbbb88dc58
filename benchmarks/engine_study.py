"""Deeper engine study: what makes the forward pass and the heat maps fastest on this CPU.

    .venv/bin/python benchmarks/engine_study.py [--runs 30] [--json out.json]
    .venv/bin/python benchmarks/engine_study.py --spinning GRAPH [--runs 80]
    .venv/bin/python benchmarks/engine_study.py --preprocess [--runs 300]
    .venv/bin/python benchmarks/engine_study.py --profile GRAPH [--runs 100]

Prints median/p90 ms for: ONNX Runtime thread counts, thread spinning (back to back, and one
image every 50 ms with the CPU time each inference costs) and graph optimisation levels; the
multiply-adds of each network; heat maps computed in numpy (the engine's way) vs fused into the ONNX
graph; eager PyTorch default vs channels-last vs bfloat16 autocast; the whole pipeline at several input
sizes; and time to first scores in a fresh process (cold: export, warm: cached export).
Untrained (seeded) weights; the machine may be shared, so compare numbers from one run only.

``--spinning GRAPH`` times only the forward pass of one ONNX graph (a shipped one, e.g.
``resources/models/student.int8.onnx``) with the runtime's spinning "off", "run" and "run" with two
bounded spins, interleaved in random order (so a changing load on a shared machine hits all alike),
one inference every 10 ms: median, p90 and CPU time per inference. ("on" is left out: its threads
keep spinning after a run, into the next setting's.)

``--preprocess`` times the one preprocessing path (decoded pixels → model input) for a 1024×1024
image: float32 (what the image readers return), uint16, int16 and uint8 with the image's value range
and uint16 without it (a min/max pass more), warm (called back to back); float32 and uint16 also as
in the pipeline (each call right after a forward pass of the shipped student, which leaves the
caches cold); the path's parts (first resize pass from float32 and from uint16, second pass, scaling
and normalisation of the 224² result); and PIL's own ``Image.resize`` of the same float32 image (what
the path is tested equal to). numpy's BLAS runs on one thread, as in the engine.

``--profile GRAPH`` runs ONNX Runtime's profiler (``SessionOptions.enable_profiling``) over ``runs``
forward passes of one graph with the engine's session options and prints each operator type's share
of the kernel time and the costliest nodes (which nodes the int8 graph still runs in float32, what
the convolutions cost against the rest).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from kdviewer.core import explain
from kdviewer.core import runtime as rt
from kdviewer.core.engine import DEFAULT_ARCH, InferenceEngine, load_engine, reference_image
from kdviewer.core.preprocess import InputSpec, image_to_model_input, to_model_input
from kdviewer.core.untrained import untrained_model, write_untrained_card


def timeit(fn, runs, warmup=3):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": round(float(np.median(ts)), 3), "p90_ms": round(float(np.percentile(ts, 90)), 3)}


def ort_session(path, threads, spinning=False, level="all"):
    ort = rt.onnxruntime_module()  # telemetry off before onnxruntime is imported
    so = rt.session_options(threads, spinning=spinning)
    so.graph_optimization_level = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def sporadic(session, inp, n, pause_s=0.05):
    """One inference every ``pause_s`` (as the viewer scores): median latency and CPU time per run."""
    feed = {"input": inp}
    for _ in range(3):
        session.run(None, feed)
    ts = []
    c0 = time.process_time()
    for _ in range(n):
        t0 = time.perf_counter()
        session.run(None, feed)
        ts.append((time.perf_counter() - t0) * 1e3)
        time.sleep(pause_s)
    cpu = (time.process_time() - c0) / n * 1e3
    return {"median_ms": round(float(np.median(ts)), 3), "cpu_ms_per_inference": round(cpu, 3)}


def multiply_adds(model) -> float:
    """Multiply-accumulates of one 224×224 forward pass (torch's FLOP counter / 2), in G."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 224, 224))
    return round(counter.get_total_flops() / 2e9, 3)


def fused_cam_graph(model, path):
    """Export a graph whose outputs are logits and the raw class activation maps (F, 7, 7)."""
    wrapper = rt.two_output_module(model)

    class Fused(type(wrapper)):
        def forward(self, x):
            logits, f = super().forward(x)
            w = self.m.head_linear.weight
            cams = torch.relu(torch.einsum("fk,nkhw->nfhw", w, f)) / (f.shape[2] * f.shape[3])
            return logits, cams

    rt.export_module(Fused(model).eval(), path, torch.zeros(1, 3, 224, 224), ("logits", "cams"))
    return path


def study(runs):
    out = {"threads_default": rt.thread_count(), "cpu_count": os.cpu_count()}
    x = reference_image((224, 224))

    inp = image_to_model_input(x, InputSpec())[None]
    for name in ("student", "teacher"):
        arch = DEFAULT_ARCH[name]
        model = untrained_model(arch)
        sha = rt.state_sha256(model)
        r = rt.OnnxRuntime(model, sha)
        res = out.setdefault(name, {})
        n = runs if name == "student" else max(5, runs // 3)
        for threads in sorted({1, 2, rt.thread_count()}):
            for spinning in (True, False):
                s = ort_session(r.path, threads, spinning)
                key = f"ort_threads{threads}_spin{int(spinning)}"
                res[key] = timeit(lambda: s.run(None, {"input": inp}), n)
        for spinning in (False, True):
            s = ort_session(r.path, rt.thread_count(), spinning)
            res[f"ort_sporadic_spin{int(spinning)}"] = sporadic(s, inp, max(10, n // 2))
        res["gmacs"] = multiply_adds(model)
        for level in ("basic", "extended"):
            s = ort_session(r.path, rt.thread_count(), False, level)
            res[f"ort_opt_{level}"] = timeit(lambda: s.run(None, {"input": inp}), n)
        # heat maps: numpy from the feature map vs fused in the graph (both then upsampled the same way)
        w = explain.cam_weights(model)
        res["ort_forward_plus_numpy_cam"] = timeit(lambda: explain.class_activation_maps(r.run(inp)[1], w), n)
        with tempfile.TemporaryDirectory() as tmp:
            fs = ort_session(fused_cam_graph(model, Path(tmp) / "fused.onnx"), rt.thread_count())
            res["ort_forward_with_fused_cam"] = timeit(lambda: fs.run(None, {"input": inp}), n)
        # eager PyTorch variants
        xt = torch.from_numpy(inp)
        with torch.inference_mode():
            res["eager_default"] = timeit(lambda: model(xt), n)
            mcl = untrained_model(arch).to(memory_format=torch.channels_last)
            xcl = xt.contiguous(memory_format=torch.channels_last)
            res["eager_channels_last"] = timeit(lambda: mcl(xcl), n)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                res["eager_bf16_autocast"] = timeit(lambda: model(xt), n)
                res["eager_bf16_channels_last"] = timeit(lambda: mcl(xcl), n)
        # the full engine pipeline at several decoded sizes
        eng = InferenceEngine.untrained(name, arch)
        for shape in ((224, 224), (512, 512), (1024, 1024), (1955, 1841)):
            img = reference_image(shape)
            stages = {}
            for _ in range(3):
                eng.predict(img, measure_energy=False)
            samples = [eng.predict(img, measure_energy=False).timings_ms for _ in range(n)]
            for k in samples[0]:
                stages[k] = round(float(np.median([s[k] for s in samples])), 3)
            res[f"pipeline_{shape[0]}x{shape[1]}_median_ms"] = stages
    out["teacher_over_student_gmacs"] = round(out["teacher"]["gmacs"] / out["student"]["gmacs"], 2)
    out["first_scores"] = first_scores()
    return out


SPIN_SETTINGS = {
    "off": ("off", {}),
    "run": ("run", {}),
    "run, spin 50 us": ("run", {"session.intra_op.spin_duration_us": "50"}),
    "run, spin 200 us": ("run", {"session.intra_op.spin_duration_us": "200"}),
}


def spinning_study(graph: Path, runs: int, pause_s: float = 0.01) -> dict:
    """The forward pass of ``graph`` (2 threads) under each of :data:`SPIN_SETTINGS`, interleaved."""
    ort = rt.onnxruntime_module()
    sessions = {}
    for name, (mode, extra) in SPIN_SETTINGS.items():
        so = rt.session_options(2, spinning=mode)
        for key, value in extra.items():
            so.add_session_config_entry(key, value)
        sessions[name] = ort.InferenceSession(str(graph), so, providers=["CPUExecutionProvider"])
    feed = {"input": image_to_model_input(reference_image((224, 224)), InputSpec())[None]}
    for s in sessions.values():
        for _ in range(5):
            s.run(None, feed)
    times = {k: [] for k in sessions}
    cpu = dict.fromkeys(sessions, 0.0)
    order = list(sessions)
    rng = random.Random(0)
    for _ in range(runs):
        rng.shuffle(order)
        for name in order:
            c0, t0 = time.process_time(), time.perf_counter()
            sessions[name].run(None, feed)
            times[name].append((time.perf_counter() - t0) * 1e3)
            time.sleep(pause_s)  # the worker threads' CPU time after the run counts too
            cpu[name] += time.process_time() - c0
    return {
        name: {
            "median_ms": round(float(np.median(v)), 2),
            "p90_ms": round(float(np.percentile(v, 90)), 2),
            "cpu_ms_per_inference": round(cpu[name] / runs * 1e3, 2),
        }
        for name, v in times.items()
    } | {"load_avg_1_5_15": [round(v, 2) for v in os.getloadavg()], "runs": runs}


def preprocess_study(runs: int) -> dict:
    """Medians (ms) of the one preprocessing path for a 1024² image: per pixel type, warm and after a
    forward pass; its parts (first and second resize pass, scaling, normalisation); PIL's resize."""
    from kdviewer.core import preprocess as pp

    rt.thread_count()  # numpy's BLAS on one thread, as in the engine
    spec = InputSpec()
    student = load_engine("student")
    feed = image_to_model_input(reference_image((224, 224)), spec)[None]
    image = reference_image((1024, 1024))
    lo, hi = image.value_range
    pixels = {
        "float32": image.pixels,
        "uint16": image.pixels.astype(np.uint16),
        "int16": (image.pixels - 2048).astype(np.int16),
        "uint8": (image.pixels / 16).astype(np.uint8),
    }
    ranges = {"float32": (lo, hi), "uint16": (lo, hi), "int16": (lo - 2048, hi - 2048), "uint8": (0.0, 255.0)}
    cases = {n: (lambda px=px, vr=ranges[n]: to_model_input(px, spec, vr)) for n, px in pixels.items()}
    cases["uint16_no_value_range"] = lambda: to_model_input(pixels["uint16"], spec)
    plan1, plan2 = pp._resize_plans(image.pixels.shape, spec)
    cols = pp._resize_first_pass(image.pixels, plan1)[: spec.size]
    small = pp._resize_second_pass(cols, plan2)
    grey = pp.scale_and_resize(small, spec, (lo, hi))
    parts = {
        "first_pass_float32": lambda: pp._resize_first_pass(image.pixels, plan1),
        "first_pass_uint16": lambda: pp._resize_first_pass(pixels["uint16"], plan1),
        "second_pass": lambda: pp._resize_second_pass(cols, plan2),
        "scale_224": lambda: pp.scale_and_resize(small, spec, (lo, hi)),
        "normalize_224": lambda: pp.normalize(grey, spec),
        "pil_resize_float32": lambda: Image.fromarray(image.pixels, mode="F").resize(
            (spec.size, spec.size), Image.Resampling.BILINEAR, reducing_gap=spec.reducing_gap
        ),
    }
    out = {"load_avg_1_5_15": [round(v, 2) for v in os.getloadavg()], "runs": runs}
    for name, fn in cases.items():
        out[f"{name}_warm_ms"] = timeit(fn, runs)["median_ms"]
    for name, fn in parts.items():
        out[f"{name}_warm_ms"] = timeit(fn, runs)["median_ms"]
    for name in ("float32", "uint16", "pil_resize_float32"):
        fn = cases.get(name) or parts[name]

        def after_forward(fn=fn):
            student.predict_pixels(feed, heatmaps=False)
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0

        for _ in range(3):
            after_forward()
        times = [after_forward() for _ in range(runs)]
        out[f"{name}_after_forward_ms"] = round(float(np.median(times)) * 1e3, 3)
    out["load_avg_1_5_15_end"] = [round(v, 2) for v in os.getloadavg()]
    return out


def profile_study(graph: Path, runs: int) -> dict:
    """Kernel time per operator type and the ten costliest nodes of ``graph``, from ORT's profiler."""
    ort = rt.onnxruntime_module()
    with tempfile.TemporaryDirectory() as tmp:
        so = rt.session_options(2)
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(graph), so, providers=["CPUExecutionProvider"])
        feed = {"input": image_to_model_input(reference_image((224, 224)), InputSpec())[None]}
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    by_op, by_node, count = collections.Counter(), collections.Counter(), collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            by_op[e["args"]["op_name"]] += e["dur"]
            by_node[e["name"].removesuffix("_kernel_time")] += e["dur"]
            count[e["args"]["op_name"]] += 1
    total = sum(by_op.values())
    calls = runs
    return {
        "kernel_ms_per_run": round(total / calls / 1e3, 3),
        "ops": {
            op: {"share_pct": round(100 * t / total, 1), "nodes": round(count[op] / calls)}
            for op, t in by_op.most_common()
        },
        "costliest_nodes_pct": {n: round(100 * t / total, 1) for n, t in by_node.most_common(10)},
        "load_avg_1_5_15": [round(v, 2) for v in os.getloadavg()],
    }


_CHILD = r"""
import sys, time
t0 = time.perf_counter()
from kdviewer.core.engine import InferenceEngine, reference_image
eng = InferenceEngine.from_card(sys.argv[1])
eng.predict(reference_image((1024, 1024)), measure_energy=False)
print((time.perf_counter() - t0) * 1e3, 'torch' in sys.modules)
"""


def first_scores():
    """Fresh process → first scores from a student card: cold (ONNX export) and warm (cached)."""
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = write_untrained_card(tmp, "student")
        env = {**os.environ, "KDVIEWER_CACHE": str(Path(tmp) / "cache")}
        for label in ("cold_export", "warm_cache", "warm_cache_again"):
            o = subprocess.run(
                [sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, env=env, check=True
            ).stdout.split()
            res[label] = {"ms": round(float(o[0]), 1), "torch_imported": o[1] == "True"}
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--spinning", type=Path, metavar="GRAPH", help="only the spinning study of this graph")
    p.add_argument("--preprocess", action="store_true", help="only the preprocessing study")
    p.add_argument("--profile", type=Path, metavar="GRAPH", help="only ORT's profile of this graph")
    a = p.parse_args(argv)
    if a.profile:
        res = profile_study(a.profile, a.runs)
    elif a.spinning:
        res = spinning_study(a.spinning, a.runs)
    elif a.preprocess:
        res = preprocess_study(a.runs)
    else:
        res = study(a.runs)
    text = json.dumps(res, indent=2)
    print(text)
    if a.json:
        a.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
