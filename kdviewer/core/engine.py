"""The inference engine: one model (student or teacher) → immutable predictions with heat maps.

An :class:`InferenceEngine` owns a verified model, the card's input spec and a forward runtime
(:mod:`kdviewer.core.runtime`: ONNX Runtime by default, on the graph the card ships or else a
cached export; eager PyTorch as reference). A card that ships its graph needs no PyTorch at all.
``predict`` runs the one preprocessing path, one forward pass that yields logits and the feature
map, and heat maps for the requested findings (:mod:`kdviewer.core.explain`), timing every stage
and recording a telemetry sample. It is safe to call from one worker thread (calls are serialised
by a lock); results are read-only.

At start-up each engine built from a card scores a reference input that needs no data files
(:func:`reference_image`, an analytic smooth pattern) and compares with the scores recorded in the
card (``card.reference``); a mismatch disables the engine (``status.state == "selftest_failed"``)
and ``predict`` refuses to run. :func:`reference_scores` is what the training export calls to fill
``card.reference``.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from safetensors import safe_open

from kdviewer.core.errors import KdviewerError, ModelLoadError
from kdviewer.core.explain import (
    CAM_METHODS,
    DEFAULT_CAM_METHOD,
    cam_weights,
    check_method,
    class_activation_maps,
    library_cams,
    normalize_for_upsampling,
    require_library_methods,
    upsample,
)
from kdviewer.core.extras import require_torch
from kdviewer.core.findings import finding
from kdviewer.core.image import ImageMetadata, LoadedImage
from kdviewer.core.modelcard import (
    ModelCard,
    find_cards,
    graph_path,
    int8_graph_path,
    load_model,
    model_from_weights,
    verified_card,
    verified_graph,
    verified_int8_graph,
)
from kdviewer.core.power import EnergyMeasurement, shared_meter
from kdviewer.core.preprocess import image_to_model_input
from kdviewer.core.runtime import OnnxRuntime, make_runtime, model_threads, state_sha256, thread_count
from kdviewer.core.telemetry import InferenceSample, Telemetry

__all__ = [
    "CAM_METHODS",
    "EngineStatus",
    "EngineUnavailableError",
    "InferenceEngine",
    "Prediction",
    "REFERENCE_INPUT",
    "SELFTEST_TOLERANCE",
    "load_engine",
    "precision_of",
    "reference_image",
    "reference_scores",
    "with_reference",
]

log = logging.getLogger(__name__)

SELFTEST_TOLERANCE = 1e-3
PRECISION_ENV = "KDVIEWER_PRECISION"  # "float32" or "int8": overrides the card's default graph
PRECISIONS = ("float32", "int8")
DEFAULT_ARCH = {"student": "mobilenet_v2", "teacher": "densenet121"}

# The stored reference input, described so anyone can regenerate it (no data files).
REFERENCE_SHAPE = (320, 256)
REFERENCE_INPUT: dict[str, Any] = {
    "generator": "kdviewer.core.engine.reference_image",
    "version": 1,
    "shape": list(REFERENCE_SHAPE),
    "value_range": [0.0, 4095.0],
    "description": "analytic smooth pattern (two Gaussian blobs on a sloped sinusoid), 12-bit range",
}


class EngineUnavailableError(KdviewerError):
    """``predict`` was called on an engine whose status is not usable (e.g. failed self-test)."""


@dataclass(frozen=True)
class EngineStatus:
    """Whether an engine may be used and why: ``ok``, ``untrained``, ``selftest_failed`` or ``error``."""

    state: str
    message: str

    @property
    def usable(self) -> bool:
        return self.state in ("ok", "untrained")


@dataclass(frozen=True)
class Prediction:
    """One immutable result. Heat maps are read-only float32 arrays in the image's geometry."""

    request_id: int | None
    model_name: str
    architecture: str
    weights_sha256: str
    trained: bool
    findings: tuple[str, ...]
    scores: Mapping[str, float]
    thresholds: Mapping[str, float]
    positive: Mapping[str, bool]
    heatmaps: Mapping[str, np.ndarray]
    cam_method: str | None
    timings_ms: Mapping[str, float]
    energy: EnergyMeasurement | None = None
    # The feature map's global average (read-only, (K,)): what the scope check scores (kdviewer.core.scope).
    features: np.ndarray | None = None
    precision: str = "float32"  # the graph that ran: "float32" or "int8" (see InferenceEngine.precision)


# --------------------------------------------------------------------------- reference input


def reference_image(shape: tuple[int, int] = REFERENCE_SHAPE) -> LoadedImage:
    """The self-test's reference input: a deterministic smooth grey pattern (no RNG, no files).

    Values lie in [0, 4095] like a 12-bit radiograph; ``value_range`` is fixed to that range so
    the model input does not depend on the pattern's own extremes.
    """
    rows, cols = shape
    y = (np.arange(rows, dtype=np.float64) + 0.5) / rows
    x = (np.arange(cols, dtype=np.float64) + 0.5) / cols
    yy, xx = np.meshgrid(y, x, indexing="ij")
    v = 0.45 + 0.15 * np.sin(2 * np.pi * (1.5 * xx + 0.7 * yy)) + 0.2 * yy
    v += 0.35 * np.exp(-((xx - 0.3) ** 2 + (yy - 0.55) ** 2) / 0.01)
    v -= 0.25 * np.exp(-((xx - 0.72) ** 2 + (yy - 0.35) ** 2) / 0.03)
    pixels = (np.clip(v, 0.0, 1.0) * 4095.0).astype(np.float32)
    meta = ImageMetadata(source_format="synthetic", rows=rows, cols=cols, photometric="MONOCHROME2")
    return LoadedImage(path="<reference input>", pixels=pixels, value_range=(0.0, 4095.0), metadata=meta)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def reference_scores(model, card: ModelCard) -> dict[str, float]:
    """Scores of ``model`` (eager PyTorch, the reference path) on :func:`reference_image`.

    The training export stores them as ``card.reference = {"input": REFERENCE_INPUT, "scores": …}``
    (see :func:`with_reference`).
    """
    import torch  # an optional extra: only card writers (training export, untrained cards) call this

    x = image_to_model_input(reference_image(), card.input)[None]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            logits = model(torch.from_numpy(x)).numpy()[0]
    finally:
        model.train(was_training)
    return {k: float(s) for k, s in zip(card.findings, _sigmoid(logits), strict=True)}


def with_reference(model, card: ModelCard) -> ModelCard:
    """``card`` with ``reference`` filled from :func:`reference_scores`."""
    scores = reference_scores(model, card)
    return card.with_updates(reference={"input": dict(REFERENCE_INPUT), "scores": scores})


# --------------------------------------------------------------------------- engine


def precision_of(card: ModelCard) -> str:
    """The graph to run: ``KDVIEWER_PRECISION`` when set (int8 only where the card has an int8 graph),
    else the card's default (int8 where its ``int8`` section says so, otherwise float32)."""
    wanted = os.environ.get(PRECISION_ENV, "").strip().lower()
    if wanted and wanted not in PRECISIONS:
        log.warning("ignoring %s=%r (not one of %s)", PRECISION_ENV, wanted, ", ".join(PRECISIONS))
        wanted = ""
    if card.int8 is None:
        if wanted == "int8":
            log.warning(
                "%s: %s=int8 but the card has no int8 graph; running float32", card.name, PRECISION_ENV
            )
        return "float32"
    return wanted or ("int8" if card.int8.get("default") else "float32")


def _head_weights(wpath: Path, n_findings: int) -> np.ndarray | None:
    """The final linear layer's weight ``(findings, channels)`` read from a safetensors file."""
    try:
        with safe_open(str(wpath), framework="numpy") as f:
            keys = [k for k in f.keys() if k.startswith("classifier") and k.endswith("weight")]
            for k in sorted(keys, key=lambda k: (k.count("."), k), reverse=True):
                w = f.get_tensor(k)
                if w.ndim == 2 and w.shape[0] == n_findings and np.isfinite(w).all():
                    return np.ascontiguousarray(w, dtype=np.float32)
    except Exception as exc:
        log.warning("cannot read the head weights from %s (%s)", wpath, exc)
    return None


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


class Heatmaps(Mapping):
    """Heat maps by finding key, at the original image geometry, upsampled when first read.

    ``predict`` computes and normalises the class activation maps of every requested finding at
    the feature map's resolution (7×7 for a 224 input); the full-size bilinear upsampling (about
    4 ms for a 1955×1841 image) happens for the maps that are actually read, once each, and the
    result is cached read-only. Thread-safe.
    """

    def __init__(self, keys: Sequence[str], normed: np.ndarray, shape: tuple[int, int]):
        self._index = {k: i for i, k in enumerate(keys)}
        self._normed = _readonly(np.ascontiguousarray(normed, dtype=np.float32))
        self.shape = (int(shape[0]), int(shape[1]))
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def __getitem__(self, key: str) -> np.ndarray:
        with self._lock:
            hit = self._cache.get(key)
            if hit is None:
                hit = _readonly(upsample(self._normed[self._index[key]], self.shape))
                self._cache[key] = hit
            return hit

    def __iter__(self):
        return iter(self._index)

    def __contains__(self, key) -> bool:
        # Mapping's default reads the item, i.e. upsamples and keeps a full-size map per test
        return key in self._index

    def __len__(self) -> int:
        return len(self._index)

    def low_resolution(self, key: str) -> np.ndarray:
        """The normalised map at feature resolution (read-only)."""
        return self._normed[self._index[key]]


class InferenceEngine:
    """One model behind one forward runtime; see the module docstring.

    Attributes: ``name`` (card name), ``card``, ``status``, ``runtime_name`` ("onnxruntime" or
    "torch-eager"), ``threads`` (its runtime's intra-op threads: :func:`~kdviewer.core.runtime.model_threads`
    for ONNX Runtime, PyTorch's process-wide count for eager PyTorch), ``telemetry`` (bounded buffer
    of samples), ``model`` (the eager PyTorch model, for explanations that need gradients).
    """

    def __init__(
        self,
        model,
        card: ModelCard,
        *,
        runtime: str = "auto",
        status: EngineStatus | None = None,
        card_path: str | Path | None = None,
        forward=None,
        head_weights: np.ndarray | None = None,
        threads: int | None = None,
    ):
        self._model = model.eval() if model is not None else None
        self._model_lock = threading.Lock()
        self.card = card
        self.name = card.name
        self.card_path = Path(card_path) if card_path else None
        if forward is None:
            forward = make_runtime(
                runtime,
                self.model,
                card.weights_sha256,
                card.input.size,
                card.input.channels,
                threads=threads or model_threads(card.name),
            )
        self._runtime = forward
        self.threads: int = getattr(forward, "threads", None) or thread_count()
        self.runtime_name: str = self._runtime.name
        self._weights = head_weights if head_weights is not None else cam_weights(self.model)
        self._class_index = {k: i for i, k in enumerate(card.findings)}
        self._lock = threading.Lock()
        self._meter = None
        self._meter_ready = False
        self.telemetry = Telemetry()
        if status is None:
            status = (
                EngineStatus("ok", f"{self.name}: ready")
                if card.trained
                else EngineStatus("untrained", f"{self.name}: UNTRAINED weights, scores are meaningless")
            )
        self.status = status
        self.precision = "float32"  # set to "int8" by _without_torch when the card's int8 graph runs

    @property
    def model(self):
        """The eager PyTorch model (loaded on first use when the engine started from a cached
        ONNX export without PyTorch)."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    if self.card_path is None:
                        raise ModelLoadError(self.name, "no PyTorch model and no model card to load it from")
                    self._model, _ = load_model(self.card_path)
                    thread_count()  # torch was imported just now: PyTorch gets the whole budget
        return self._model

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_card(
        cls, card_path: str | Path, *, runtime: str = "auto", threads: int | None = None
    ) -> InferenceEngine:
        """Engine for the model card at ``card_path`` (weights checked and verified by SHA-256,
        strict load; see :func:`~kdviewer.core.modelcard.verified_weights`), its ONNX Runtime
        session on ``threads`` intra-op threads (default :func:`~kdviewer.core.runtime.model_threads`).

        Raises :class:`ModelLoadError` when the card or weights do not load. Always scores the
        reference input and disables the engine (``status.state == "selftest_failed"``) on a
        mismatch with ``card.reference`` or a non-finite score: there is no way to skip it.
        """
        card, wpath = verified_card(card_path)
        threads = threads or model_threads(card.name)
        lean = runtime in ("auto", "onnxruntime")
        engine = cls._without_torch(card, wpath, card_path, threads) if lean else None
        if engine is None:
            model = model_from_weights(card, wpath, Path(card_path).name)  # MissingExtraError without PyTorch
            engine = cls(model, card, runtime=runtime, card_path=card_path, threads=threads)
        engine.status = engine.self_test()
        log.info(
            "%s engine: %s (%s, %d threads)",
            engine.name,
            engine.status.message,
            engine.runtime_name,
            engine.threads,
        )
        return engine

    @classmethod
    def _without_torch(
        cls, card: ModelCard, wpath: Path, card_path: str | Path, threads: int
    ) -> InferenceEngine | None:
        """The lean start, PyTorch never imported: the verified weights ``wpath`` (for the heat maps'
        head) and the card's own ONNX graph, verified by its SHA-256, or else an intact cached export.

        A graph the card names that is missing, altered or does not load is a ModelLoadError
        naming it, never a fall-back. Returns ``None`` when the card ships no graph and nothing is
        cached yet (the caller loads PyTorch and exports).
        """
        head = _head_weights(wpath, len(card.findings))
        graph = verified_graph(card, card_path)
        if graph is not None:
            if head is None:
                raise ModelLoadError(wpath, "the weights hold no classifier layer for the heat maps")
            precision = precision_of(card)
            gpath = graph_path(card, card_path)
            if precision == "int8":
                graph = verified_int8_graph(card, card_path)
                gpath = int8_graph_path(card, card_path)
            try:
                forward = OnnxRuntime.from_graph(graph, gpath, threads=threads)
            except Exception as exc:  # onnxruntime's own errors: this file's failure
                raise ModelLoadError(gpath, f"ONNX graph does not load: {exc}") from exc
            log.info(
                "%s: started from its %s ONNX graph %s (PyTorch not loaded)", card.name, precision, gpath
            )
            engine = cls(None, card, card_path=card_path, forward=forward, head_weights=head)
            engine.precision = precision
            return engine
        forward = OnnxRuntime.from_cache(
            card.architecture, card.weights_sha256, card.input.size, threads=threads
        )
        if forward is None or head is None:
            return None
        log.info("%s: started from cached ONNX export %s (PyTorch not loaded)", card.name, forward.path)
        return cls(None, card, card_path=card_path, forward=forward, head_weights=head)

    @classmethod
    def untrained(
        cls,
        name: str = "student",
        architecture: str = "mobilenet_v2",
        *,
        seed: int = 0,
        runtime: str = "auto",
        threads: int | None = None,
    ) -> InferenceEngine:
        """Engine with deterministic random weights (see
        :func:`~kdviewer.core.untrained.untrained_model`), loudly labelled: ``status.state ==
        "untrained"`` and ``card.trained is False``."""
        require_torch("running without any model card (untrained random weights)")
        from kdviewer.core.untrained import untrained_model  # needs PyTorch, an optional extra

        model = untrained_model(architecture, seed)
        card = ModelCard(
            name=name,
            architecture=architecture,
            weights_file="",
            weights_sha256=state_sha256(model),
            trained=False,
            description=f"UNTRAINED {architecture} (random weights, seed {seed}); for testing only",
        )
        status = EngineStatus(
            "untrained",
            f"{name}: UNTRAINED {architecture} (random weights, seed {seed}): "
            "scores and heat maps are meaningless",
        )
        log.warning("%s", status.message)
        return cls(model, card, runtime=runtime, status=status, threads=threads)

    def self_test(self) -> EngineStatus:
        """Score the reference input with this engine's runtime and compare with the card.

        Returns the status the engine should have; does not change ``self.status``.
        """
        ref = self.card.reference
        base = (
            EngineStatus("ok", f"{self.name}: ready")
            if self.card.trained
            else EngineStatus(
                "untrained",
                f"{self.name}: UNTRAINED weights (card says trained=false), scores are meaningless",
            )
        )
        if not ref:  # cards read from files always have one (ModelCard.from_dict)
            return EngineStatus(
                "selftest_failed",
                f"{self.name}: the card records no self-test reference "
                "scores, so the weights cannot be checked; refused",
            )
        desc = ref.get("input") or {}
        known = (REFERENCE_INPUT["generator"], REFERENCE_INPUT["version"])
        if (desc.get("generator"), desc.get("version")) != known:
            return EngineStatus(
                "selftest_failed", f"{self.name}: self-test cannot run: unknown reference input {desc}"
            )
        try:
            shape = tuple(int(v) for v in desc.get("shape", REFERENCE_SHAPE))
            x = image_to_model_input(reference_image(shape), self.card.input)[None]
            logits, _ = self._runtime.run(x)
            got = dict(zip(self.card.findings, _sigmoid(logits), strict=True))
            # the int8 graph is checked against its own scores, recorded when it was made
            scores = self.card.int8["reference_scores"] if self.precision == "int8" else ref["scores"]
            want = {k: float(v) for k, v in scores.items()}
        except Exception as exc:
            return EngineStatus("selftest_failed", f"{self.name}: self-test could not run: {exc}")
        if set(want) != set(got):
            return EngineStatus(
                "selftest_failed",
                f"{self.name}: self-test failed: reference findings {sorted(want)} differ from the model's",
            )
        diffs = {k: abs(got[k] - want[k]) for k in got}
        worst = max(diffs, key=diffs.get)
        if not diffs[worst] <= SELFTEST_TOLERANCE:  # NaN fails too
            return EngineStatus(
                "selftest_failed",
                f"{self.name}: self-test failed: score for {worst} is {got[worst]:.5f}, the card records "
                f"{want[worst]:.5f} (tolerance {SELFTEST_TOLERANCE}); the weights or the preprocessing "
                "changed. This model is disabled.",
            )
        return EngineStatus(
            base.state, base.message + f" (self-test passed, max deviation {diffs[worst]:.1e})"
        )

    # -- prediction --------------------------------------------------------------------------

    def _heatmap_classes(self, heatmaps: bool | Sequence[str] | None) -> list[str]:
        if heatmaps is True:
            return list(self.card.findings)
        if not heatmaps:
            return []
        if isinstance(heatmaps, str):
            heatmaps = [heatmaps]
        keys = [finding(h).key for h in heatmaps]
        unknown = [k for k in keys if k not in self._class_index]
        if unknown:
            raise KeyError(f"{self.name} does not score {unknown}")
        return [k for k in self.card.findings if k in keys]  # registry order, no duplicates

    def _meter_or_none(self):
        if not self._meter_ready:
            self._meter = shared_meter()
            self._meter_ready = True
        return self._meter

    def predict(
        self,
        image: LoadedImage,
        *,
        heatmaps: bool | Sequence[str] = True,
        cam_method: str = DEFAULT_CAM_METHOD,
        request_id: int | None = None,
        measure_energy: bool = True,
    ) -> Prediction:
        """Scores for every finding and heat maps (in ``image``'s geometry) for those asked.

        ``heatmaps``: True (all findings), False (none) or finding keys/names. ``cam_method`` is one
        of :data:`CAM_METHODS`; "gradcam" comes from the forward pass itself, the others run the
        eager model with gradients. Raises :class:`EngineUnavailableError` if the engine is not
        usable (failed self-test).
        """
        return self._predict(image, image.geometry, heatmaps, cam_method, request_id, measure_energy)

    def predict_pixels(
        self,
        x: np.ndarray,
        *,
        image_shape: tuple[int, int] | None = None,
        heatmaps: bool | Sequence[str] = True,
        cam_method: str = DEFAULT_CAM_METHOD,
        request_id: int | None = None,
        measure_energy: bool = False,
    ) -> Prediction:
        """Like :meth:`predict` from an already-built model input ``(C, S, S)`` or ``(1, C, S, S)``;
        heat maps are sized ``image_shape`` (default ``(S, S)``). The preprocess time is 0."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        shape = tuple(image_shape) if image_shape is not None else tuple(x.shape[-2:])
        return self._predict(x, shape, heatmaps, cam_method, request_id, measure_energy)

    def _predict(self, source, shape, heatmaps, cam_method, request_id, measure_energy) -> Prediction:
        """:meth:`predict` (``source`` the image) and :meth:`predict_pixels` (``source`` the model input)."""
        if not self.status.usable:
            raise EngineUnavailableError(self.status.message)
        check_method(cam_method)
        wanted = self._heatmap_classes(heatmaps)
        meter = self._meter_or_none() if measure_energy else None
        # No lock across engines: the student never waits for the teacher. The shared meter reads
        # its counters at the window's ends and splits any overlap between the windows open.
        with self._lock, meter.measure() if meter is not None else nullcontext(None) as energy:
            t0 = time.perf_counter()
            if isinstance(source, np.ndarray):
                x = source
            else:
                x = image_to_model_input(source, self.card.input)[None]
            t1 = time.perf_counter()
            logits, feats = self._runtime.run(x)
            t2 = time.perf_counter()
            maps: Mapping[str, np.ndarray] = MappingProxyType({})
            if wanted:
                idx = [self._class_index[k] for k in wanted]
                if cam_method == DEFAULT_CAM_METHOD:
                    low = class_activation_maps(feats, self._weights, idx)
                else:
                    require_library_methods(cam_method)  # before loading PyTorch for it
                    low = library_cams(self.model, x, cam_method, idx)
                maps = Heatmaps(wanted, normalize_for_upsampling(low, shape), shape)
            t3 = time.perf_counter()
        probs = _sigmoid(logits)
        scores = {k: float(p) for k, p in zip(self.card.findings, probs, strict=True)}
        thresholds = {k: float(self.card.thresholds.get(k, 0.5)) for k in self.card.findings}
        timings = {
            "preprocess": (t1 - t0) * 1e3,
            "forward": (t2 - t1) * 1e3,
            "heatmap": (t3 - t2) * 1e3,
            "total": (t3 - t0) * 1e3,
        }
        pred = Prediction(
            request_id=request_id,
            model_name=self.name,
            architecture=self.card.architecture,
            weights_sha256=self.card.weights_sha256,
            trained=bool(self.card.trained),
            findings=tuple(self.card.findings),
            scores=MappingProxyType(scores),
            thresholds=MappingProxyType(thresholds),
            positive=MappingProxyType({k: scores[k] >= thresholds[k] for k in scores}),
            heatmaps=maps,
            cam_method=cam_method if wanted else None,
            timings_ms=MappingProxyType(timings),
            energy=energy,
            features=_readonly(np.asarray(feats, dtype=np.float32).mean(axis=(-2, -1))),
            precision=self.precision,
        )
        self._record(pred)
        return pred

    def _record(self, pred: Prediction) -> None:
        e = pred.energy
        energy_mj = power_w = idle_w = None
        if e is not None and getattr(e, "complete", True):
            ej = getattr(e, "marginal_energy_j", math.nan)
            energy_mj = None if ej is None or math.isnan(ej) else ej * 1e3
            pw = getattr(e, "avg_power_w", math.nan)
            power_w = None if pw is None or math.isnan(pw) else pw
            iw = getattr(e, "idle_power_w", math.nan)
            idle_w = None if iw is None or math.isnan(iw) else iw
        self.telemetry.append(
            InferenceSample(
                t=time.monotonic(),
                model_name=pred.model_name,
                timings_ms=pred.timings_ms,
                energy_mj=energy_mj,
                power_w=power_w,
                energy_method=getattr(e, "method", None),
                is_estimate=bool(getattr(e, "is_estimate", False)),
                request_id=pred.request_id,
                idle_power_w=idle_w,
            )
        )

    def describe(self) -> dict[str, Any]:
        """What ``kdviewer info`` prints: model, runtime, threads, status."""
        d = {
            "name": self.name,
            "architecture": self.card.architecture,
            "trained": self.card.trained,
            "weights_sha256": self.card.weights_sha256,
            "runtime": self.runtime_name,
            "threads": self.threads,
            "precision": self.precision,
            "status": self.status.state,
            "message": self.status.message,
        }
        path = getattr(self._runtime, "path", None)
        if path is not None:
            d["onnx"] = str(path)
        return d

    def __repr__(self) -> str:
        return (
            f"InferenceEngine({self.name!r}, {self.card.architecture}, {self.runtime_name}, "
            f"{self.status.state})"
        )


def load_engine(
    name: str, *, runtime: str = "auto", allow_untrained: bool = True, threads: int | None = None
) -> InferenceEngine:
    """Engine for the model card named ``name`` (see :func:`~kdviewer.core.modelcard.find_cards`),
    its ONNX Runtime session on ``threads`` intra-op threads (default
    :func:`~kdviewer.core.runtime.model_threads`, as in the viewer).

    Without a card, returns an untrained engine (MobileNetV2 for "student", DenseNet-121 for
    "teacher") when ``allow_untrained`` and no model card at all is installed (a build without
    trained weights); once any card is installed, a missing one raises :class:`ModelLoadError`
    naming what was found, so that random weights never stand in beside trained ones.
    """
    cards = find_cards()
    if name in cards:
        return InferenceEngine.from_card(cards[name], runtime=runtime, threads=threads)
    if not allow_untrained or cards:
        found = ", ".join(sorted(cards)) or "none"
        raise ModelLoadError(name, f"no model card named {name!r} (found: {found})")
    return InferenceEngine.untrained(
        name, DEFAULT_ARCH.get(name, "mobilenet_v2"), runtime=runtime, threads=threads
    )
