"""Command-line entry point: the viewer by default, and headless sub-commands.

``kdviewer [PATH...]`` starts the viewer; ``predict``, ``info`` and ``bench`` never import Qt.
``screenshot`` renders the viewer offscreen.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any, Sequence

from kdviewer import RESEARCH_NOTICE, __version__

log = logging.getLogger("kdviewer")

SUBCOMMANDS = ("predict", "info", "bench", "screenshot")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kdviewer",
        description=(
            "Offline chest X-ray viewer with a knowledge-distilled CNN. "
            f"{RESEARCH_NOTICE} Run without a sub-command to open the viewer "
            "(kdviewer [PATH...]); with no PATH it opens the built-in example."
        ),
    )
    p.add_argument("--version", action="version", version=f"kdviewer {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    pr = sub.add_parser("predict", help="score image files or folders without the GUI")
    pr.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (recursed); default: the built-in example")
    pr.add_argument("--teacher", action="store_true", help="also score with the teacher model")
    pr.add_argument("--format", choices=("json", "csv"), default="json", help="output format (default: json)")
    pr.add_argument("--runtime", choices=("auto", "onnxruntime", "torch-eager"), default="auto")
    pr.add_argument("-o", "--output", type=Path, help="write the records here instead of standard output")

    info = sub.add_parser("info", help="versions, threads, power meter and the models found")
    info.add_argument("--json", action="store_true", help="machine-readable output")

    bench = sub.add_parser("bench", help="time student vs teacher, engine runtime vs eager PyTorch")
    bench.add_argument("--runs", type=int, default=50, help="timed runs per configuration (default: 50)")
    bench.add_argument("--json", action="store_true", help="machine-readable output")

    shot = sub.add_parser("screenshot", help="render the viewer offscreen once scoring is done")
    shot.add_argument("out", type=Path, metavar="OUT.png", help="PNG, or JPEG for .jpg/.jpeg")
    shot.add_argument("path", nargs="?", help="image to open (default: the built-in example)")
    shot.add_argument("--scale", type=float, default=1.0, help="resize the picture (default: 1)")
    return p


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Anything that is not a sub-command or an option is a path for the viewer.
    first_positional = next((a for a in argv if not a.startswith("-")), None)
    if first_positional is not None and first_positional not in SUBCOMMANDS:
        return _run_viewer(argv)
    args = _parser().parse_args(argv)
    _setup_logging(args.verbose)
    if args.command is None:
        return _run_viewer([])
    if args.command == "predict":
        return predict_command(args.paths, teacher=args.teacher, fmt=args.format, runtime=args.runtime, output=args.output)
    if args.command == "info":
        return info_command(as_json=args.json)
    if args.command == "bench":
        from kdviewer.core.bench import bench_command

        return bench_command(runs=args.runs, as_json=args.json)
    if args.command == "screenshot":
        from kdviewer.qt.app import screenshot

        return screenshot(str(args.out), args.path, scale=args.scale)
    raise AssertionError(args.command)


def _run_viewer(argv: list[str]) -> int:
    verbosity = sum(a.count("v") for a in argv if a.startswith("-v") and set(a[1:]) == {"v"})
    _setup_logging(verbosity)
    paths = [a for a in argv if not a.startswith("-")]
    from kdviewer.qt.app import run_viewer

    return run_viewer(paths)


# --------------------------------------------------------------------------------------------
# predict


def _energy_mj(energy) -> float | None:
    """Marginal energy in mJ, or None where the meter had no valid reading for the window."""
    if energy is None or not getattr(energy, "complete", True):
        return None
    joules = energy.marginal_energy_j
    return None if joules is None or math.isnan(joules) else round(joules * 1e3, 4)


def _idle_w(energy) -> float | None:
    """The idle baseline the marginal energy was measured against (W), shown beside it."""
    value = getattr(energy, "idle_power_w", None)
    return None if value is None or math.isnan(value) else round(float(value), 4)


def _record(path: Path, pred) -> dict[str, Any]:
    energy = pred.energy
    return {
        "file": str(path),
        "model": pred.model_name,
        "architecture": pred.architecture,
        "weights_sha256": pred.weights_sha256,
        "trained": pred.trained,
        "latency_ms": round(float(pred.timings_ms["total"]), 3),
        "energy_mj": _energy_mj(energy),
        "idle_power_w": _idle_w(energy),
        "energy_is_estimate": None if energy is None else bool(energy.is_estimate),
        "energy_method": None if energy is None else energy.method,
        "findings": {
            k: {
                "score": round(float(pred.scores[k]), 6),
                "threshold": float(pred.thresholds[k]),
                "positive": bool(pred.positive[k]),
            }
            for k in pred.findings
        },
    }


def _csv_rows(records: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    from kdviewer.core.findings import FINDING_KEYS

    head = ["file", "model", "architecture", "weights_sha256", "trained", "latency_ms", "energy_mj",
            "idle_power_w", "energy_is_estimate", "energy_method"]
    cols = head + [f"{k}_{x}" for k in FINDING_KEYS for x in ("score", "threshold", "positive")]
    rows = []
    for r in records:
        row = {c: r[c] for c in head}
        for k, v in r["findings"].items():
            for x in ("score", "threshold", "positive"):
                row[f"{k}_{x}"] = v[x]
        rows.append(row)
    return cols, rows


def predict_command(
    paths: Sequence[str],
    *,
    teacher: bool = False,
    fmt: str = "json",
    runtime: str = "auto",
    output: Path | None = None,
) -> int:
    """Score every image under ``paths``; unreadable files go to stderr and make the exit status 1."""
    from kdviewer.core.engine import load_engine
    from kdviewer.core.errors import KdviewerError
    from kdviewer.core.imageio import iter_image_files, read_image
    from kdviewer.core.preprocess import MODEL_READ_MIN_SIDE
    from kdviewer.core.resources import example_image

    files = list(iter_image_files([Path(p) for p in paths])) if paths else [example_image()]
    failures = 0

    engines = []
    for name in ("student", "teacher") if teacher else ("student",):
        try:
            engine = load_engine(name, runtime=runtime)
        except KdviewerError as exc:
            print(f"kdviewer: error: model {name!r} unavailable: {exc}", file=sys.stderr)
            return 2
        if not engine.status.usable:
            print(f"kdviewer: error: model {name!r} disabled: {engine.status.message}", file=sys.stderr)
            return 2
        engines.append(engine)

    records: list[dict[str, Any]] = []
    for path in files:
        try:
            image = read_image(path, reduce_to=MODEL_READ_MIN_SIDE)
        except KdviewerError as exc:
            print(f"kdviewer: error: {exc}", file=sys.stderr)
            failures += 1
            continue
        for engine in engines:
            pred = engine.predict(image, heatmaps=False)
            records.append(_record(Path(path), pred))

    out = open(output, "w", newline="", encoding="utf-8") if output else sys.stdout
    try:
        if fmt == "json":
            json.dump(records, out, indent=2)
            out.write("\n")
        else:
            cols, rows = _csv_rows(records)
            writer = csv.DictWriter(out, fieldnames=cols)
            writer.writeheader()
            writer.writerows(rows)
    finally:
        if output:
            out.close()
    if failures:
        print(f"kdviewer: {failures} file(s) could not be scored", file=sys.stderr)
    return 1 if failures else 0


# --------------------------------------------------------------------------------------------
# info


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"kdviewer": __version__, "python": sys.version.split()[0]}
    for dist in (
        "torch", "torchvision", "onnxruntime", "numpy", "pydicom", "pylibjpeg", "pylibjpeg-libjpeg",
        "pylibjpeg-openjpeg", "pylibjpeg-rle", "pyjpegls", "grad-cam", "safetensors", "PySide6-Essentials",
        "pyqtgraph",
    ):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def gather_info() -> dict[str, Any]:
    """Everything ``kdviewer info`` reports, as a dict."""
    import os

    from kdviewer.core.errors import ModelLoadError
    from kdviewer.core.modelcard import find_cards, read_card, sha256_file, weights_path
    from kdviewer.core.power import meter_report
    from kdviewer.core.resources import models_dirs

    import torch

    models = []
    for name, card_path in sorted(find_cards().items()):
        card = read_card(card_path)
        wpath = weights_path(card, card_path)
        try:
            digest = sha256_file(wpath)
            verified = digest == card.weights_sha256
            problem = None if verified else f"SHA-256 {digest[:12]}… does not match the card"
        except OSError as exc:
            verified, problem = False, f"weights unreadable: {exc}"
        models.append({
            "name": name,
            "architecture": card.architecture,
            "card": str(card_path),
            "weights_sha256": card.weights_sha256,
            "verified": verified,
            "problem": problem,
            "trained": card.trained,
            "version": card.version,
        })
    meters = [
        {"name": m.name, "available": m.available, "chosen": m.chosen, "reason": m.reason} for m in meter_report()
    ]
    try:
        from kdviewer.core.runtime import thread_count

        threads = thread_count()
    except (ImportError, ModelLoadError):
        threads = torch.get_num_threads()
    from kdviewer.core.models import ARCHITECTURES, build_model, count_parameters

    architectures = {
        arch: {"role": info.role, "parameters": count_parameters(build_model(arch))}
        for arch, info in ARCHITECTURES.items()
    }
    return {
        "versions": _versions(),
        "architectures": architectures,
        "threads": {"engine": threads, "torch": torch.get_num_threads(), "cpu_count": os.cpu_count()},
        "models_dirs": [str(d) for d in models_dirs()],
        "models": models,
        "power_meters": meters,
        "notice": RESEARCH_NOTICE,
    }


def info_command(as_json: bool = False) -> int:
    info = gather_info()
    if as_json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"kdviewer {info['versions']['kdviewer']} — {info['notice']}")
    print("versions:")
    for k, v in info["versions"].items():
        print(f"  {k:20s} {v or 'not installed'}")
    t = info["threads"]
    print(f"threads: engine {t['engine']}, torch {t['torch']}, logical CPUs {t['cpu_count']}")
    for arch, a in info["architectures"].items():
        print(f"architecture {arch}: {a['role']}, {a['parameters'] / 1e6:.2f} M parameters (5-finding head)")
    print("models searched in: " + ", ".join(info["models_dirs"]))
    if not info["models"]:
        print("models: none found — the viewer and predict use UNTRAINED random weights")
    for m in info["models"]:
        state = "verified" if m["verified"] else f"FAILED: {m['problem']}"
        trained = "trained" if m["trained"] else "UNTRAINED"
        print(f"  {m['name']:14s} {m['architecture']:13s} sha256 {m['weights_sha256'][:16]}… {state}, {trained}")
    print("power meters:")
    for m in info["power_meters"]:
        mark = "*" if m["chosen"] else " "
        print(f" {mark}{m['name']:16s} {'available' if m['available'] else 'unavailable'}: {m['reason']}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
