"""The command line: parsing, and the headless sub-commands; never imports Qt.

``kdviewer [PATH...]`` (the viewer) and ``kdviewer screenshot`` (the viewer offscreen) are parsed
here and run by the :class:`Viewer` the entry point hands :func:`main` (:mod:`kdviewer.__main__`,
the ``kdviewer`` command): ``predict``, ``info``, ``bench``, ``listen``, ``pacs``, ``audit`` and
``report`` never load Qt.

Every command, and the viewer, starts here, so what only some commands need is imported in their
functions, each with what it saves the others (``python -X importtime -c "import kdviewer.cli; import
M"`` less this module's own, least of five runs, 2026-12-02 on the 2-core development machine).
"""

from __future__ import annotations

import argparse
import csv
import difflib
import io
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from kdviewer import RESEARCH_NOTICE, __version__, desktop
from kdviewer.core.audit import add_audit_parser, audit_command, audit_dir, record_inference
from kdviewer.core.errors import ModelLoadError
from kdviewer.core.extras import EXPLAIN_INSTALL, torch_available
from kdviewer.core.findings import FINDING_KEYS
from kdviewer.core.records import display_path, error_record, prediction_record
from kdviewer.core.resources import example_image, models_dirs
from kdviewer.core.versions import library_versions
from kdviewer.net.commands import add_parsers, listen_command, pacs_command

log = logging.getLogger("kdviewer")

SUBCOMMANDS = ("predict", "info", "bench", "screenshot", "listen", "pacs", "audit", "report")
FORMATS = ("json", "jsonl", "csv")


class Viewer(Protocol):
    """The commands that need Qt, handed to :func:`main` by the entry point (:mod:`kdviewer.__main__`)."""

    def view(self, paths: list[str]) -> int:
        """Run the viewer on ``paths`` (none: the built-in example); the exit status."""

    def screenshot(self, out: str, path: str | None, scale: float) -> int:
        """Render the viewer offscreen on ``path`` into ``out``; the exit status."""


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
    desk = p.add_mutually_exclusive_group()
    desk.add_argument(
        "--install-desktop",
        action="store_true",
        help="add kdviewer to this user's desktop menu and file manager (DICOM, PNG, JPEG) and exit",
    )
    desk.add_argument(
        "--uninstall-desktop", action="store_true", help="remove what --install-desktop added and exit"
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    pr = sub.add_parser("predict", help="score image files or folders without the GUI")
    pr.add_argument(
        "paths", nargs="*", metavar="PATH", help="files or folders (recursed); default: the built-in example"
    )
    pr.add_argument("--teacher", action="store_true", help="also score with the teacher model")
    pr.add_argument(
        "--format",
        choices=FORMATS,
        default="json",
        help="json: an array, a record per line; jsonl: JSON Lines; csv: RFC 4180 (default json)",
    )
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

    add_parsers(sub)  # the DICOM node's commands (listen, pacs)
    rep = sub.add_parser("report", help="a PDF report per study (de-identified unless --with-identifiers)")
    rep.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (recursed)")
    rep.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.pdf")
    rep.add_argument("--teacher", action="store_true", help="also score with the teacher; show disagreements")
    rep.add_argument("--finding", help="the heat map's finding (default: each study's top student score)")
    rep.add_argument(
        "--with-identifiers",
        action="store_true",
        help="include patient name, ID, birth date, accession number, UIDs, file name (marked)",
    )
    rep.add_argument("--runtime", choices=("auto", "onnxruntime", "torch-eager"), default="auto")
    add_audit_parser(sub)
    return p


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _not_a_command(word: str) -> int:
    """``kdviewer predcit x.png``: say so and list the commands, rather than open the viewer on a
    file that does not exist."""
    close = difflib.get_close_matches(word, SUBCOMMANDS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    print(
        f"kdviewer: error: {word!r} is neither a command nor an existing file or folder{hint}\n"
        f"commands: {', '.join(SUBCOMMANDS)}; kdviewer [PATH...] opens the viewer; kdviewer --help",
        file=sys.stderr,
    )
    return 2


def _without_viewer() -> int:
    print(
        "kdviewer: error: the viewer starts from the kdviewer command (python -m kdviewer), "
        "not from kdviewer.cli",
        file=sys.stderr,
    )
    return 2


def main(argv: Sequence[str] | None = None, viewer: Viewer | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); the exit status.

    The viewer and ``screenshot`` run through ``viewer`` (the entry point's); without one they
    are an error (exit status 2), so that this module never imports Qt.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    # A first positional argument that is not a sub-command must be a path for the viewer.
    first_positional = next((a for a in argv if not a.startswith("-")), None)
    if first_positional is not None and first_positional not in SUBCOMMANDS:
        if not os.path.lexists(first_positional):  # False for a NUL in the name too
            return _not_a_command(first_positional)
        return _run_viewer(argv, viewer)
    args = _parser().parse_args(argv)
    _setup_logging(args.verbose)
    if args.install_desktop or args.uninstall_desktop:
        return _desktop_command(install=args.install_desktop)
    if args.command is None:
        return _run_viewer([], viewer)
    if args.command == "predict":
        return predict_command(
            args.paths, teacher=args.teacher, fmt=args.format, runtime=args.runtime, output=args.output
        )
    if args.command == "info":
        return info_command(as_json=args.json)
    if args.command == "bench":
        from kdviewer.bench import bench_command  # 0.13 s that the other commands skip

        return bench_command(runs=args.runs, as_json=args.json)
    if args.command in ("listen", "pacs"):
        return listen_command(args) if args.command == "listen" else pacs_command(args)
    if args.command == "report":
        from kdviewer.report import report_command  # reportlab and the engine: 0.29 s the others skip

        return report_command(
            args.paths,
            args.output,
            teacher=args.teacher,
            focus=args.finding,
            with_identifiers=args.with_identifiers,
            runtime=args.runtime,
        )
    if args.command == "audit":
        return audit_command(args)
    if args.command == "screenshot":
        if viewer is None:
            return _without_viewer()
        return viewer.screenshot(str(args.out), args.path, args.scale)
    raise AssertionError(args.command)


def _desktop_command(*, install: bool) -> int:
    try:
        paths = desktop.install_desktop() if install else desktop.uninstall_desktop()
    except OSError as exc:
        print(f"kdviewer: error: {exc}", file=sys.stderr)
        return 2
    verb = "installed" if install else "removed"
    for path in paths:
        print(f"{verb} {path}")
    if not paths:
        print("nothing to remove: no desktop entry written by kdviewer")
    return 0


def _run_viewer(argv: list[str], viewer: Viewer | None) -> int:
    verbosity = sum(a.count("v") for a in argv if a.startswith("-v") and set(a[1:]) == {"v"})
    _setup_logging(verbosity)
    if viewer is None:
        return _without_viewer()
    return viewer.view([a for a in argv if not a.startswith("-")])


# --------------------------------------------------------------------------------------------
# predict


_CSV_HEAD = (
    "file",
    "model",
    "architecture",
    "weights_sha256",
    "trained",
    "precision",
    "latency_ms",
    "energy_mj",
    "idle_power_w",
    "energy_is_estimate",
    "energy_method",
)
_CSV_SCOPE = ("in_scope", "reason", "ood_score", "threshold")  # columns scope_<key>


class RecordWriter:
    """Streams predict's records as they are made, flushed one by one, so that a run that stops
    early (a crash, Ctrl+C, a full disk) keeps every record made before it.

    ``json``: one array, a record per line, closed by :meth:`close` whatever happened; ``jsonl``:
    one record per line; ``csv``: RFC 4180 (comma, double quotes, CRLF), a header first. JSON is
    strict (no NaN or Infinity) and ASCII; every output is UTF-8.
    """

    def __init__(self, fmt: str, stream):
        self.fmt, self.stream, self.count = fmt, stream, 0
        if fmt == "csv":
            per_finding = [f"{k}_{x}" for k in FINDING_KEYS for x in ("score", "threshold", "positive")]
            cols = [*_CSV_HEAD, *(f"scope_{k}" for k in _CSV_SCOPE), *per_finding, "error"]
            self._csv = csv.DictWriter(stream, fieldnames=cols, lineterminator="\r\n")
            self._csv.writeheader()
        elif fmt == "json":
            stream.write("[")
        stream.flush()

    def encode(self, record: dict[str, Any]):
        """The record in this format; ValueError if it is not strict JSON (checked for CSV too)."""
        text = json.dumps(record, allow_nan=False)
        if self.fmt != "csv":
            return text
        row = {c: record.get(c) for c in _CSV_HEAD}
        row.update({f"scope_{k}": (record.get("scope") or {}).get(k) for k in _CSV_SCOPE})
        row["error"] = record.get("error")
        for k, v in (record.get("findings") or {}).items():
            for x in ("score", "threshold", "positive"):
                row[f"{k}_{x}"] = v[x]
        return row

    def write(self, encoded) -> None:
        if self.fmt == "csv":
            self._csv.writerow(encoded)
        elif self.fmt == "json":
            self.stream.write(("\n" if self.count == 0 else ",\n") + encoded)
        else:
            self.stream.write(encoded + "\n")
        self.stream.flush()
        self.count += 1

    def close(self) -> None:
        if self.fmt == "json":
            self.stream.write("\n]\n")
        self.stream.flush()


def _open_output(output: Path | None):
    """A UTF-8 text stream without newline translation (CSV writes its own CRLF): the file, or
    standard output (as it is, where it is not a byte stream underneath)."""
    if output is not None:
        return open(output, "w", encoding="utf-8", newline="")
    if not hasattr(sys.stdout, "buffer"):
        return sys.stdout
    sys.stdout.flush()
    return io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="", line_buffering=False)


def _close_output(stream, output: Path | None) -> None:
    if output is not None:
        stream.close()
    elif stream is not sys.stdout:
        stream.flush()
        stream.detach()  # standard output stays open


def load_engines(teacher: bool, runtime: str) -> list:
    """The student (and the teacher), usable; RuntimeError saying which model failed and why."""
    from kdviewer.core.engine import load_engine  # 0.18 s that audit, --help and the viewer's start skip
    from kdviewer.core.runtime import model_threads

    engines = []
    for name in ("student", "teacher") if teacher else ("student",):
        try:  # the models take turns on each image here, so the teacher may use every core
            engine = load_engine(name, runtime=runtime, threads=model_threads(name, together=False))
        except Exception as exc:  # noqa: BLE001 - any failure to load is this command's failure
            raise RuntimeError(f"model {name!r} unavailable: {exc}") from exc
        if not engine.status.usable:
            raise RuntimeError(f"model {name!r} disabled: {engine.status.message}")
        engines.append(engine)
    return engines


def predict_command(
    paths: Sequence[str],
    *,
    teacher: bool = False,
    fmt: str = "json",
    runtime: str = "auto",
    output: Path | None = None,
) -> int:
    """Score every image under ``paths`` with the student (and the teacher), streaming one record
    per image and model as it is made (:class:`RecordWriter`).

    Every input that fails — a path that cannot be read or listed, a file that does not decode (decoded
    in the isolated reader, :func:`~kdviewer.core.readpool.read_image_isolated`), a model call that
    fails or gives a non-finite score — is reported on stderr with its reason and as an error record,
    and the others are still scored. Every record carries the image's scope verdict
    (:mod:`kdviewer.core.scope`; scores are kept, flagged, when it is out of scope). Returns 0 when
    everything was scored, 1 when some inputs failed, 2 when the command itself failed (no usable model,
    the output cannot be written).
    """
    from kdviewer.core import scope  # with the two readers 0.12 s that audit and --help skip
    from kdviewer.core.imageio import iter_image_files
    from kdviewer.core.readpool import read_image_isolated

    try:
        engines = load_engines(teacher, runtime)
        example = None if paths else example_image()
    except (RuntimeError, FileNotFoundError) as exc:
        print(f"kdviewer: error: {exc}", file=sys.stderr)
        return 2
    try:
        stream = _open_output(output)
    except OSError as exc:
        print(f"kdviewer: error: cannot write {display_path(output)}: {exc.strerror or exc}", file=sys.stderr)
        return 2

    failed: set[str] = set()
    writer: RecordWriter | None = None
    read_side = max(engine.card.input.read_min_side for engine in engines)  # one read serves each model

    def fail(path, model: str | None, reason: str, verdict=None) -> None:
        failed.add(display_path(path))
        who = f" ({model})" if model else ""
        print(f"kdviewer: error: {display_path(path)}{who}: {reason}", file=sys.stderr)
        writer.write(writer.encode(error_record(path, model, reason, verdict)))

    def score(path) -> None:
        try:
            image = read_image_isolated(path, reduce_to=read_side)
        except Exception as exc:  # noqa: BLE001 - ImageReadError, or anything else: this file's failure
            fail(
                path,
                None,
                getattr(exc, "cause", None) or f"{type(exc).__name__}: {exc}",
                scope.header_only(path),
            )
            return
        verdict = None  # one per image, from the first model (the student's features and scope model)
        for engine in engines:
            try:
                pred = engine.predict(image, heatmaps=False)
                if verdict is None:
                    verdict = scope.check(image, pred.features, scope.scope_of_engine(engine))
                record_inference(pred, engine=engine, image=image, path=path, source="predict")
                encoded = writer.encode({**prediction_record(path, pred), "scope": verdict.as_dict()})
            except Exception as exc:  # noqa: BLE001 - one model call never stops the run
                fail(path, engine.name, str(exc) or type(exc).__name__)
                continue
            writer.write(encoded)

    try:
        writer = RecordWriter(fmt, stream)
        sources = (
            [example] if example else iter_image_files(paths, on_error=lambda p, why: fail(p, None, why))
        )
        for path in sources:
            score(path)
    except KeyboardInterrupt:
        print("kdviewer: interrupted; the records made so far are written", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"kdviewer: error: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
        return 2
    finally:
        try:
            if writer is not None:
                writer.close()
            _close_output(stream, output)
        except OSError:
            pass  # the write error itself is reported above
    if failed:
        print(f"kdviewer: {len(failed)} file(s) could not be scored", file=sys.stderr)
    return 1 if failed else 0


# --------------------------------------------------------------------------------------------
# info


# What ``kdviewer info`` lists (None: not installed).
INFO_DISTRIBUTIONS = (
    "torch",
    "torchvision",
    "onnxruntime",
    "numpy",
    "pydicom",
    "pylibjpeg",
    "pylibjpeg-libjpeg",
    "pylibjpeg-openjpeg",
    "pylibjpeg-rle",
    "pyjpegls",
    "grad-cam",
    "safetensors",
    "PySide6-Essentials",
    "pyqtgraph",
)


def gather_info() -> dict[str, Any]:
    """Everything ``kdviewer info`` reports, as a dict.

    Every model card found is listed with whether it and its weights pass the checks of
    :func:`~kdviewer.core.modelcard.verified_weights` (never reading a FIFO or a device); a card that
    does not read or validate is listed with ``name`` None and its ``problem``.
    """
    # The engine (with the cards, runtime and meters it imports): 0.18 s that audit and --help skip.
    from kdviewer.core.engine import DEFAULT_ARCH, precision_of
    from kdviewer.core.explain import library_methods_available
    from kdviewer.core.modelcard import (
        parameter_count,
        read_card,
        scan_cards,
        verified_graph,
        verified_int8_graph,
        verified_weights,
    )
    from kdviewer.core.power import meter_report
    from kdviewer.core.runtime import model_threads, thread_count

    found, problems = scan_cards()
    models = []
    counted: dict[str, int] = {}  # parameters by architecture, from verified weights
    for name, card_path in sorted(found.items()):
        card = read_card(card_path)
        try:
            weights = verified_weights(card, card_path)
            verified_graph(card, card_path)
            verified_int8_graph(card, card_path)
            counted.setdefault(card.architecture, parameter_count(weights))
            verified, problem = True, None
        except ModelLoadError as exc:
            verified, problem = False, exc.cause
        models.append(
            {
                "name": name,
                "architecture": card.architecture,
                "card": str(card_path),
                "weights_sha256": card.weights_sha256,
                "verified": verified,
                "problem": problem,
                "trained": card.trained,
                "version": card.version,
                "onnx_sha256": card.onnx_sha256,
                "precision": precision_of(card) if card.onnx_file else "float32",  # what an engine would run
                "threads": model_threads(name),  # its ONNX Runtime session's intra-op threads
            }
        )
    for exc in problems:
        models.append(
            {
                "name": None,
                "architecture": None,
                "card": display_path(exc.path),
                "weights_sha256": None,
                "verified": False,
                "problem": exc.cause,
                "trained": None,
                "version": None,
                "onnx_sha256": None,
                "precision": None,
                "threads": None,
            }
        )
    meters = [
        {"name": m.name, "available": m.available, "chosen": m.chosen, "reason": m.reason}
        for m in meter_report()
    ]
    threads = thread_count()
    torch_threads = None
    if torch_available():
        import torch  # an optional extra (the light install has none)

        from kdviewer.core.models import ARCHITECTURES, build_model, count_parameters  # needs torch

        torch_threads = torch.get_num_threads()
        architectures = {
            arch: {"role": info.role, "parameters": count_parameters(build_model(arch))}
            for arch, info in ARCHITECTURES.items()
        }
    else:  # the light install: the architectures of the installed models, counted from their weights
        roles = {arch: role for role, arch in DEFAULT_ARCH.items()}
        architectures = {
            arch: {"role": roles.get(arch, "model"), "parameters": n} for arch, n in sorted(counted.items())
        }
    return {
        "versions": library_versions(INFO_DISTRIBUTIONS, keep_missing=True),
        "architectures": architectures,
        "extras": {"pytorch": torch_available(), "library_heatmaps": library_methods_available()},
        "threads": {"budget": threads, "torch": torch_threads, "cpu_count": os.cpu_count()},
        "models_dirs": [str(d) for d in models_dirs()],
        "models": models,
        "power_meters": meters,
        "audit_log": str(audit_dir()),
        "notice": RESEARCH_NOTICE,
    }


def info_command(as_json: bool = False) -> int:
    """Print :func:`gather_info`; exit status 1 when a model card or its weights fail the checks."""
    info = gather_info()
    status = 1 if any(not m["verified"] for m in info["models"]) else 0
    if as_json:
        print(json.dumps(info, indent=2))
        return status
    print(f"kdviewer {info['versions']['kdviewer']} — {info['notice']}")
    print("versions:")
    for k, v in info["versions"].items():
        print(f"  {k:20s} {v or 'not installed'}")
    t = info["threads"]
    torch_threads = t["torch"] if t["torch"] is not None else "not installed"
    print(
        f"threads: budget {t['budget']} (ONNX Runtime: 1 for a student, the rest for the teacher "
        f"in the viewer, each model's below; predict and report give the teacher all), "
        f"torch {torch_threads}, logical CPUs {t['cpu_count']}"
    )
    if not info["extras"]["library_heatmaps"]:
        print(f"heat maps: Grad-CAM only (the other methods need PyTorch: {EXPLAIN_INSTALL})")
    for arch, a in info["architectures"].items():
        print(f"architecture {arch}: {a['role']}, {a['parameters'] / 1e6:.2f} M parameters (5-finding head)")
    print("models searched in: " + ", ".join(info["models_dirs"]))
    if not info["models"]:
        print("models: none found — the viewer and predict use UNTRAINED random weights")
    for m in info["models"]:
        if m["name"] is None:
            print(f"  BROKEN CARD    {m['card']}: {m['problem']}")
            continue
        state = "verified" if m["verified"] else f"FAILED: {m['problem']}"
        trained = "trained" if m["trained"] else "UNTRAINED"
        print(
            f"  {m['name']:14s} {m['architecture']:13s} sha256 {m['weights_sha256'][:16]}… "
            f"{state}, {trained}, "
            f"{m['precision']}, {m['threads']} intra-op thread{'s' if m['threads'] != 1 else ''}"
        )
    print("power meters:")
    for m in info["power_meters"]:
        mark = "*" if m["chosen"] else " "
        print(f" {mark}{m['name']:16s} {'available' if m['available'] else 'unavailable'}: {m['reason']}")
    print(f"audit log: {info['audit_log']} (kdviewer audit verify)")
    return status


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
