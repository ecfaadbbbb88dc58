"""Forward-pass runtimes: a cached ONNX Runtime session (fast path) and eager PyTorch (reference).

Both return, from one forward pass, the logits *and* the post-activation feature map
(``model.forward_features``), so class activation maps for every finding come at almost no
extra cost (see :mod:`kdviewer.core.explain`).

A model card that ships its ONNX graph (``kdviewer-train export`` writes one beside the weights)
runs from that graph, verified by its SHA-256 (:meth:`OnnxRuntime.from_graph`), and PyTorch is never
imported. For a card without one, the graph is exported on first use and cached in :func:`cache_dir`
with the weights' SHA-256 in its name; a sidecar file holds the ONNX file's own SHA-256 so that a
truncated or corrupted cache is detected and rebuilt. The thread budget is resolved once per process
(:func:`thread_count`: ``KDVIEWER_THREADS`` or the number of physical cores); PyTorch uses all of it,
and each model's ONNX Runtime session gets its share (:func:`model_threads`): one intra-op thread for
the student, the rest of the budget for the teacher.

This is the only module that imports onnxruntime, and it turns the runtime's telemetry off before
the import (:func:`onnxruntime_module`): see :data:`TELEMETRY_ENV`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from threadpoolctl import threadpool_limits

from kdviewer.core.extras import require_torch
from kdviewer.core.hashing import sha256_file
from kdviewer.core.machine import physical_cores

log = logging.getLogger(__name__)

# ONNX Runtime's official builds (1.32 measured with strace) send usage telemetry: about 10 s after
# the first session, a DNS lookup of Microsoft's collector, and a device id and an event database
# under ~/.cache/Microsoft. Only this variable stops both, and only when it is set before
# onnxruntime is imported (set after the import, or ort.disable_telemetry_events() alone, did not).
# It is forced, not defaulted: kdviewer promises zero sockets. tests/test_offline.py checks it.
TELEMETRY_ENV = "ORT_DISABLE_TELEMETRY"
_ORT_IMPORTED_WITH_TELEMETRY = "onnxruntime" in sys.modules and os.environ.get(TELEMETRY_ENV) != "1"
os.environ[TELEMETRY_ENV] = "1"

RUNTIMES = ("onnxruntime", "torch-eager")
ONNX_OPSET = 17
# Bump when the exported graph changes (inputs/outputs/opset), so old cache files are not reused.
EXPORT_FORMAT = 1

_threads_lock = threading.Lock()
_threads: int | None = None


def _positive_int(variable: str, value: str | None) -> int | None:
    """``value`` (of the environment variable ``variable``) as a positive integer; None, with a
    warning, for anything else (None or blank: no warning)."""
    if value and value.strip():
        try:
            n = int(value)
        except ValueError:
            log.warning("ignoring %s=%r (not an integer)", variable, value)
        else:
            if n > 0:
                return n
            log.warning("ignoring %s=%r (not positive)", variable, value)
    return None


def resolve_thread_count(env_value: str | None = None) -> int:
    """Thread count from a ``KDVIEWER_THREADS`` value (a positive integer) or the physical cores."""
    n = _positive_int("KDVIEWER_THREADS", env_value)
    return n if n is not None else int(physical_cores() or os.cpu_count() or 1)


def thread_count() -> int:
    """The thread budget of this process, resolved once: PyTorch's thread count, and what
    :func:`model_threads` shares between the models' ONNX Runtime sessions.

    ``KDVIEWER_THREADS`` (a positive integer) wins; otherwise the number of physical cores. The first
    call limits numpy's BLAS to one thread for the rest of the process. Every
    call also makes PyTorch use that count when torch has been imported by then (an engine that
    started from its cached ONNX export imports torch only later, for gradient heat maps), so
    the eager path always uses the same count. Later changes to the variable have no effect.
    """
    global _threads
    with _threads_lock:
        if _threads is None:
            _threads = resolve_thread_count(os.environ.get("KDVIEWER_THREADS"))
            log.info("thread budget: %d", _threads)
            # numpy's BLAS (the preprocessing's resize products) single-threaded: the runtime owns
            # the cores, and OpenBLAS workers that spin after each small product took them from it
            # (1024² preprocessing median 15 ms instead of 1.5 ms on 2 busy cores).
            threadpool_limits(1, user_api="blas")
        torch = sys.modules.get("torch")
        # imported by now (None marks a blocked import)
        if torch is not None and torch.get_num_threads() != _threads:
            torch.set_num_threads(_threads)
        return _threads


TEACHER = "teacher"  # the background model's card name; every other card is interactive (a student)
STUDENT_THREADS = 1


def model_role(name: str) -> str:
    """The role of the model card ``name``: "teacher" for the card named so (the viewer's
    background model, the comparison), "student" for every other (``student``, ``student_plain``:
    the model the reader waits for)."""
    return TEACHER if name == TEACHER else "student"


def model_threads(name: str, budget: int | None = None, *, together: bool = True) -> int:
    """Intra-op threads of the ONNX Runtime session of the model card ``name``; ``budget`` defaults
    to :func:`thread_count`.

    The student gets :data:`STUDENT_THREADS` (1), the teacher ``max(1, budget - 1)``: the two
    never share a core when they run together (the viewer), and the student spends no CPU time on
    a second thread that does not pay for itself. Where the models take turns (``together=False``:
    ``kdviewer predict`` and ``report``, one image after the other), the teacher gets the whole
    budget. ``chrt -r 5 python -m kdviewer.bench --runs 50
    --no-eager`` (its "forward alone by intra-op threads" lines, 30 interleaved runs per count;
    2-core development machine, 2026-12-02, 4 runs, scheduled ahead of two background training
    jobs): the int8 student took 3.16-3.33 ms on 1 thread and 3.24-3.41 ms on 2 back to back
    (CPU time per inference 3.2-3.3 against 5.9-6.3 ms), and 4.02-4.22 against 3.98-4.22 ms with
    a 50 ms pause before each, as in the viewer (CPU 4.0-4.2 against 7.0-7.4 ms). The teacher,
    10x the multiply-adds, does gain from a second thread (29.6-31.7 against 40.5-44.0 ms), which
    it gives up on 2 cores.

    ``KDVIEWER_STUDENT_THREADS`` / ``KDVIEWER_TEACHER_THREADS`` (positive integers) override the
    role's count. The PyTorch path does not use this: PyTorch's pool is process-wide
    (:class:`TorchEagerRuntime` runs on the whole budget).
    """
    role = model_role(name)
    variable = f"KDVIEWER_{role.upper()}_THREADS"
    override = _positive_int(variable, os.environ.get(variable))
    if override is not None:
        return override
    if role == "student":
        return STUDENT_THREADS
    budget = budget if budget is not None else thread_count()
    return budget if not together else max(1, budget - 1)


BACKGROUND_NICE = 19


def lower_thread_priority() -> bool:
    """Run the calling thread, and the threads it starts from now on (an ONNX Runtime session's pool
    created here inherits it), at the lowest CPU priority; return whether that was possible.

    The teacher's worker calls it before loading its engine: the teacher then computes on the cores
    the student leaves idle, so the student is not slowed while both are busy (measured by `kdviewer
    bench`: "student beside a busy teacher") and the teacher keeps every core when the student is
    idle. Linux only (a thread's nice value, ``setpriority`` on its thread id); elsewhere a no-op.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
    except OSError as exc:
        log.info("cannot lower this thread's priority: %s", exc)
        return False
    return True


def cache_dir() -> Path:
    """Folder for derived files (exported ONNX graphs); created on demand.

    ``KDVIEWER_CACHE`` wins; otherwise the platform's user cache folder
    (``$XDG_CACHE_HOME/kdviewer`` or ``~/.cache/kdviewer`` on Linux, ``~/Library/Caches/kdviewer`` on
    macOS, ``%LOCALAPPDATA%\\kdviewer\\cache`` on Windows).
    """
    env = os.environ.get("KDVIEWER_CACHE")
    if env:
        d = Path(env)
    elif sys.platform == "win32":
        d = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "kdviewer" / "cache"
    elif sys.platform == "darwin":
        d = Path.home() / "Library" / "Caches" / "kdviewer"
    else:
        d = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kdviewer"
    d.mkdir(parents=True, exist_ok=True)
    return d


def state_sha256(model) -> str:
    """SHA-256 of a model's state dict (names, dtypes, shapes and bytes, in order).

    Identifies weights that do not come from a file (untrained engines) for the ONNX cache.
    """
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        t = v.detach().contiguous().cpu()
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


class ForwardRuntime(Protocol):
    """One forward pass: a (1, C, S, S) float32 input → (logits (F,), features (K, h, w))."""

    name: str

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def two_output_module(model):
    """Wrap a FindingsNet so that one call returns ``(logits, features)`` (eval mode: the wrapper's
    own ``training`` flag matters to the exporter); the wrapped model is its ``m``."""
    import torch  # optional (the light install has no PyTorch): only exports need it

    class LogitsAndFeatures(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            feats = self.m.forward_features(x)
            return self.m.forward_head(feats), feats

    return LogitsAndFeatures(model).eval()


class TorchEagerRuntime:
    """The reference path: the PyTorch model itself, no gradients, on PyTorch's process-wide pool
    of :func:`thread_count` threads (``threads``), whichever model it runs."""

    name = "torch-eager"

    def __init__(self, model):
        self.model = model.eval()
        self.threads = thread_count()

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch  # optional, as in two_output_module (this runtime is built on a torch model)

        with torch.inference_mode():
            feats = self.model.forward_features(torch.from_numpy(np.ascontiguousarray(x)))
            logits = self.model.forward_head(feats)
        return logits.numpy()[0], feats.numpy()[0]


def onnx_path(architecture: str, weights_sha256: str, size: int) -> Path:
    """Cache location of the ONNX export of given weights at a given input size."""
    return cache_dir() / f"{architecture}-{weights_sha256[:16]}-{size}px-v{EXPORT_FORMAT}.onnx"


def export_module(module, path: str | Path, dummy, output_names: Sequence[str]) -> None:
    """Export a torch module taking one input (named ``input``) to the ONNX file ``path``.

    Uses the TorchScript-based exporter (fast, no extra dependencies at run time) and falls back
    to the dynamo exporter when it is unavailable.
    """
    import torch  # optional, as in two_output_module

    with warnings.catch_warnings():
        # Only the deprecation notices of the TorchScript exporter, chosen on purpose above;
        # anything else the export says still reaches the user.
        warnings.filterwarnings(
            "ignore",
            message=r"You are using the legacy TorchScript-based ONNX export",
            category=DeprecationWarning,
        )
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx\.")
        kwargs = dict(input_names=["input"], output_names=list(output_names), opset_version=ONNX_OPSET)
        try:
            torch.onnx.export(module, (dummy,), str(path), dynamo=False, **kwargs)
        except Exception as exc:  # legacy exporter removed or failing: use the dynamo one
            log.info("TorchScript ONNX export failed (%s); trying the dynamo exporter", exc)
            torch.onnx.export(module, (dummy,), str(path), dynamo=True, external_data=False, **kwargs)


def export_onnx(model, path: str | Path, size: int = 224, channels: int = 3, *, sidecar: bool = True) -> Path:
    """Export ``model`` to ONNX with two outputs, ``logits`` and ``features``; write atomically.

    See :func:`export_module`. A sidecar ``.sha256`` file (for the cache; a model card records its
    graph's hash itself) holds the graph's own hash so a corrupted cache file is detected later.
    """
    import torch  # optional, as in two_output_module

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(1, channels, size, size)
    fd, tmp = tempfile.mkstemp(suffix=".onnx.tmp", dir=path.parent)
    os.close(fd)
    try:
        export_module(two_output_module(model.eval()), tmp, dummy, ("logits", "features"))
        digest = sha256_file(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a shipped graph is read by every user
        os.replace(tmp, path)
        if sidecar:
            Path(str(path) + ".sha256").write_text(digest + "\n", encoding="ascii")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.info("exported %s to %s", getattr(model, "arch", "model"), path)
    return path


def _cache_intact(path: Path) -> bool:
    side = Path(str(path) + ".sha256")
    if not (path.is_file() and side.is_file()):
        return False
    try:
        return side.read_text(encoding="ascii").strip() == sha256_file(path)
    except OSError:
        return False


def onnxruntime_module():
    """The onnxruntime module, imported with its telemetry off (see :data:`TELEMETRY_ENV`).

    Raises RuntimeError when something imported onnxruntime before this module could turn the
    telemetry off: no session is then created (``make_runtime("auto")`` falls back to PyTorch).
    """
    if _ORT_IMPORTED_WITH_TELEMETRY:
        raise RuntimeError(
            f"onnxruntime was imported before kdviewer.core.runtime set {TELEMETRY_ENV}=1, so "
            "its telemetry may be on; refusing to create a session"
        )
    # Imported here, not at the top: only after the check above, and not in processes that never
    # create a session (its import takes about 40 ms here, `python -X importtime`).
    import onnxruntime as ort

    ort.disable_telemetry_events()  # the non-essential events as well, should the variable ever be ignored
    return ort


SPINNING_MODES = ("off", "run", "on")
DEFAULT_SPINNING = "off"
_SPINNING_ALIASES = {"0": "off", "false": "off", "no": "off", "1": "on", "true": "on", "yes": "on"}


def spinning_mode(env_value: str | None = None) -> str:
    """How ONNX Runtime's idle worker threads wait, from ``KDVIEWER_ORT_SPINNING`` (or
    ``env_value``): "off" (they sleep), "run" (they busy-wait between the operators of a run and
    sleep as soon as it returns: ONNX Runtime's ``session.force_spinning_stop``) or "on" (they
    also busy-wait for a while after each run). Unknown values fall back to
    :data:`DEFAULT_SPINNING` with a warning."""
    raw = os.environ.get("KDVIEWER_ORT_SPINNING", "") if env_value is None else env_value
    value = raw.strip().lower()
    mode = _SPINNING_ALIASES.get(value, value) or DEFAULT_SPINNING
    if mode not in SPINNING_MODES:
        log.warning("ignoring KDVIEWER_ORT_SPINNING=%r (known: %s)", raw, ", ".join(SPINNING_MODES))
        return DEFAULT_SPINNING
    return mode


def session_options(threads: int | None = None, *, spinning: bool | str | None = None):
    """ONNX Runtime options used by the engine: all graph optimisations, sequential execution,
    ``threads`` intra-op threads (default :func:`thread_count`; an engine passes its model's
    :func:`model_threads`), idle threads waiting as
    ``spinning`` says (a :func:`spinning_mode`; True is "on", False "off"; default the
    environment's).

    The default stays "off". ``benchmarks/engine_study.py --spinning
    resources/models/student.int8.onnx --runs 80`` (int8 student, 2 threads, one inference every
    10 ms, the settings interleaved; 2-core development machine, 2026-12-02, other jobs running,
    load average 4-6): scheduled ahead of the other jobs (``chrt -f 5``, as on a quiet machine) "run"
    took 6.55 ms against 6.88 ms for "off" (median; CPU time per inference 13.0 against 12.7 ms);
    scheduled normally beside them, 21.7 ms against 11.7 ms (p90 31.9 against 17.7 ms): a thread
    that busy-waits for a sibling that lost its core wastes its own. Bounding the spin
    (``session.intra_op.spin_duration_us`` 50 or 200) kept part of that loss (14.1 and 16.8 ms).
    Spinning after each run as well ("on") was measured before (float32 student, one image every
    50 ms, as in the viewer): 5.6 against 8.4 ms, but 47 against 11 ms of CPU time per inference.
    """
    ort = onnxruntime_module()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads or thread_count()
    so.inter_op_num_threads = 1
    if spinning is None:
        mode = spinning_mode()
    elif isinstance(spinning, bool):
        mode = "on" if spinning else "off"
    elif spinning in SPINNING_MODES:
        mode = spinning
    else:
        raise ValueError(f"unknown spinning mode {spinning!r}; known: {', '.join(SPINNING_MODES)}")
    so.add_session_config_entry("session.intra_op.allow_spinning", "0" if mode == "off" else "1")
    if mode == "run":
        so.add_session_config_entry("session.force_spinning_stop", "1")
    so.log_severity_level = 3
    return so


class OnnxRuntime:
    """ONNX Runtime (CPU) session over the cached export of a FindingsNet.

    ``model`` may be ``None`` when the cache already holds an intact export of these weights (then
    PyTorch is never imported: see :meth:`from_cache`); otherwise it is exported first.
    """

    name = "onnxruntime"

    def __init__(
        self,
        model,
        weights_sha256: str,
        size: int = 224,
        channels: int = 3,
        *,
        threads: int | None = None,
        spinning: bool | str | None = None,
        architecture: str | None = None,
    ):
        ort = onnxruntime_module()
        if model is not None:
            require_torch("exporting a model to ONNX")
        arch = architecture or model.arch
        self.threads = threads or thread_count()
        self.path = onnx_path(arch, weights_sha256, size)
        self.rebuilt = False
        for attempt in (0, 1):
            if attempt or not _cache_intact(self.path):
                if model is None:
                    raise FileNotFoundError(f"no intact ONNX export at {self.path} and no model to export")
                export_onnx(model, self.path, size, channels)
                self.rebuilt = True
            try:
                self.session = ort.InferenceSession(
                    str(self.path),
                    session_options(self.threads, spinning=spinning),
                    providers=["CPUExecutionProvider"],
                )
                break
            except Exception as exc:  # corrupt despite the hash (or a different ORT): rebuild once
                if attempt or model is None:
                    raise
                log.warning("cached ONNX graph %s does not load (%s); rebuilding", self.path, exc)
        self._input = self.session.get_inputs()[0].name

    @classmethod
    def from_graph(
        cls, graph: bytes, path: str | Path, *, threads: int | None = None, spinning: bool | str | None = None
    ) -> OnnxRuntime:
        """A session over an already verified graph (its bytes; ``path`` is where they came from,
        for messages): how a card that ships its graph runs, without PyTorch."""
        ort = onnxruntime_module()
        self = cls.__new__(cls)
        self.threads = threads or thread_count()
        self.path = Path(path)
        self.rebuilt = False
        self.session = ort.InferenceSession(
            graph, session_options(self.threads, spinning=spinning), providers=["CPUExecutionProvider"]
        )
        self._input = self.session.get_inputs()[0].name
        return self

    @classmethod
    def from_cache(
        cls, architecture: str, weights_sha256: str, size: int = 224, *, threads: int | None = None
    ) -> OnnxRuntime | None:
        """A session over an intact cached export, without PyTorch; ``None`` if there is none."""
        if not _cache_intact(onnx_path(architecture, weights_sha256, size)):
            return None
        try:
            return cls(None, weights_sha256, size, architecture=architecture, threads=threads)
        except Exception as exc:
            log.warning("cached ONNX graph for %s unusable (%s)", architecture, exc)
            return None

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, feats = self.session.run(None, {self._input: np.ascontiguousarray(x, dtype=np.float32)})
        return logits[0], feats[0]


def make_runtime(
    kind: str,
    model,
    weights_sha256: str,
    size: int = 224,
    channels: int = 3,
    *,
    threads: int | None = None,
) -> ForwardRuntime:
    """Build the forward runtime ``kind``: "onnxruntime", "torch-eager" or "auto".

    "auto" is ONNX Runtime, falling back (with a warning) to eager PyTorch if the export or the
    session fails. ``threads``: the ONNX Runtime session's intra-op threads (default
    :func:`thread_count`); eager PyTorch always runs on the whole budget.
    """
    if kind not in ("auto", *RUNTIMES):
        raise ValueError(f"unknown runtime {kind!r}; known: auto, {', '.join(RUNTIMES)}")
    if kind == "torch-eager":
        return TorchEagerRuntime(model)
    try:
        return OnnxRuntime(model, weights_sha256, size, channels, threads=threads)
    except Exception as exc:
        if kind == "onnxruntime":
            raise
        log.warning(
            "ONNX Runtime unavailable for %s (%s); using eager PyTorch", getattr(model, "arch", "model"), exc
        )
        return TorchEagerRuntime(model)
