"""Soak test: the real viewer window driven for N minutes as a reader would, watched from outside.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/soak.py [--minutes 30] [--json OUT]

The models are loaded once beforehand in another process (so their ONNX exports are cached, as on
any start but the first; ``--cold`` skips this). The window (offscreen, teacher on, the bundled
models) runs in a child process, so a hard abort (a segfault, ``Fatal Python error``) is seen and
reported instead of taking the benchmark with it. It opens a temporary folder of at least 30 images:
NIH PNGs at several sizes and a JPEG, DICOMs of the shared corpus (CR/DX, JPEG 2000, JPEG-LS, JPEG
lossless, RLE, uncompressed; up to 2140 × 1760), and unreadable files (a truncated PNG, a text file
called .dcm, a DICOM structured report, the corpus's 12-bit JPEG Extended files). It first visits
every file once with the teacher on (waiting for each to be shown), then, every 300 ms, does one of:
next/previous study, choose a finding, toggle heat map, teacher or invert, change window/level, zoom
in/out/reset, resize the window, and now and then opens an unreadable file directly. Keys are found
by their shortcuts (PgDown, 1–5, H, T, I, +, −, R), as a reader would press them.

Reported: the longest GUI stall (a 10 ms timer on the GUI thread; the largest gap between two ticks,
over the whole run and after warm-up), resident memory of the window's process and of it with its
image-reader helpers at start, after warm-up and at the end, inferences run per model, actions done,
errors raised in the GUI and blocking dialogs met. Warm-up ends once every file has been visited,
both models have loaded and run, at least a quarter of the run (30 s to 5 min) has passed and
resident memory grew less than 2 % in the last 20 s (or, failing that, at half the run, reported as
incomplete). Exit status: 0 when the run completed with resident memory growing at most 10 % after
warm-up; 1 for more growth; 2 when the window's process crashed or hung; 3 when Python errors were
raised in the GUI.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import faulthandler
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import tracemalloc
from collections import Counter, deque
from pathlib import Path

import psutil
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("KDVIEWER_SHARED", REPO.parent / "shared")) / "data"
MAX_GROWTH = 0.10
STEP_MS = 300
HEARTBEAT_MS = 10
TRACE_TOP = 12
SETTLED_S, SETTLED_GROWTH = 20.0, 0.02  # warm-up also waits for memory to settle: < 2 % in 20 s
FIRST_PASS_WAIT_S = 5.0  # how long the first pass waits for a file that is not shown (unreadable)
PREFIX = "SOAK "

# (name, weight) of the random phase's actions
ACTIONS = (
    ("next", 8),
    ("previous", 4),
    ("finding", 4),
    ("heatmap", 2),
    ("teacher", 1),
    ("invert", 2),
    ("window", 3),
    ("zoom", 3),
    ("resize", 2),
    ("unreadable", 1),
)
SHORTCUTS = {
    "next": "PgDown",
    "previous": "PgUp",
    "heatmap": "H",
    "teacher": "T",
    "invert": "I",
    "zoom_in": "+",
    "zoom_out": "-",
    "reset": "R",
    **{f"finding{i}": str(i) for i in range(1, 6)},
}


# ------------------------------------------------------------------------------------------------
# the folder
def build_folder(dest: Path, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """Fill ``dest`` with readable images of mixed formats and sizes and some unreadable files.

    Returns (readable, unreadable) paths. Needs ``../shared/data`` (NIH PNGs and the DICOM corpus).
    """
    rng = random.Random(seed)
    nih = sorted((SHARED / "nih" / "images").glob("*.png"))
    manifest = SHARED / "dicom" / "manifest.csv"
    if not nih or not manifest.is_file():
        raise SystemExit(f"soak: needs the NIH PNGs and the DICOM corpus under {SHARED}")
    readable, unreadable = [], []
    picks = rng.sample(nih, 14)
    sizes = (256, 256, 256, 512, 768, 1024, 1024, 1536, 2048, (2500, 2048), 256, 512, 1024, 3000)
    for i, (src, size) in enumerate(zip(picks, sizes, strict=True)):
        w, h = size if isinstance(size, tuple) else (size, size)
        out = dest / f"nih_{i:02d}_{w}x{h}.png"
        with Image.open(src) as im:
            im.convert("L").resize((w, h), Image.Resampling.BICUBIC).save(out)
        readable.append(out)
    jpeg = dest / "nih_jpeg_1024.jpg"
    with Image.open(picks[0]) as im:
        im.convert("L").resize((1024, 1024)).save(jpeg, quality=90)
    readable.append(jpeg)

    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        src = SHARED / "dicom" / row["file"]
        if not src.is_file() or row["file"].startswith("misc/n1ks0nik_OT"):
            continue
        out = dest / src.name
        shutil.copyfile(src, out)
        (readable if row["decoded"] == "ok" else unreadable).append(out)

    truncated = dest / "truncated.png"
    truncated.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    text = dest / "not_an_image.dcm"
    text.write_text("this is not a DICOM file\n")
    unreadable += [truncated, text]
    return readable, unreadable


# ------------------------------------------------------------------------------------------------
# the child: the window and its driver
def _emit(kind: str, **data) -> None:
    print(PREFIX + json.dumps({"kind": kind, **data}), flush=True)


def _rss_mb(proc) -> tuple[float, float]:
    """(this process, this process and its children) resident memory in MB."""
    own = proc.memory_info().rss
    total = own
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):  # a helper may exit between listing and reading
            total += child.memory_info().rss
    return own / 1e6, total / 1e6


def _distinct(messages: list[str], limit: int = 20) -> list[str]:
    """Each message once with how often it came, the most frequent first."""
    return [f"{n} × {text}" for text, n in Counter(messages).most_common(limit)]


def child_main(folder: str, unreadable: list[str], minutes: float, seed: int, trace: bool = False) -> int:
    faulthandler.enable()
    if trace:
        tracemalloc.start(8)
    # Only the child imports the viewer (the parent watches it without Qt), after tracemalloc starts
    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QAction, QKeySequence
    from PySide6.QtWidgets import QMessageBox

    from kdviewer.core.engine import load_engine
    from kdviewer.qt.app import create_window, make_application
    from kdviewer.qt.settings import ViewerSettings, make_qsettings

    errors: list[str] = []
    dialogs: list[str] = []

    def excepthook(kind, value, tb):
        errors.append(f"{kind.__name__}: {value}")
        traceback.print_exception(kind, value, tb)

    sys.excepthook = excepthook

    def record_dialog(_parent, title, text, *args, **kwargs):  # a modal dialog would stall the run
        dialogs.append(f"{title}: {text}"[:200])
        return QMessageBox.StandardButton.Ok

    for name in ("warning", "critical", "information"):
        setattr(QMessageBox, name, record_dialog)

    proc = psutil.Process()
    rng = random.Random(seed)
    duration = minutes * 60.0
    min_warm = min(max(0.25 * duration, 30.0), 300.0)
    app = make_application()
    engines: dict[str, object] = {}

    def loader(role):
        def load():
            engines[role] = load_engine(role)
            return engines[role]

        return load

    tmp = tempfile.mkdtemp(prefix="kdviewer-soak-settings-")
    settings = ViewerSettings(make_qsettings(Path(tmp) / "kdviewer.ini"))
    settings.teacher_enabled = False
    window = create_window(settings, engine_loaders={r: loader(r) for r in ("student", "teacher")})
    window.resize(1600, 980)
    window.show()
    app.processEvents()

    actions: dict[str, QAction] = {}
    for name, key in SHORTCUTS.items():
        seq = QKeySequence(key)
        found = [a for a in window.findChildren(QAction) if seq in a.shortcuts()]
        if not found:
            raise SystemExit(f"soak: the window has no action for the key {key!r} ({name})")
        actions[name] = found[0]

    t0 = time.monotonic()
    state = {
        "ticks": [],
        "max_gap": 0.0,
        "max_gap_after_warm": 0.0,
        "gaps_over_250ms": 0,
        "last_tick": None,
        "warm_at": None,
        "rss_warm": None,
        "visited": set(),
        "steps": 0,
        "first_pass": True,
        "inferences": {"student": 0, "teacher": 0},
        "last_t": {},
        "rss_max": (0.0, 0.0),
        "done": {name: 0 for name, _ in ACTIONS},
        "stepped_at": 0.0,
        "rss_history": deque(maxlen=60),
    }
    rss_start = _rss_mb(proc)

    def heartbeat():
        now = time.monotonic()
        last = state["last_tick"]
        if last is not None:
            gap = now - last
            state["max_gap"] = max(state["max_gap"], gap)
            if state["warm_at"] is not None:
                state["max_gap_after_warm"] = max(state["max_gap_after_warm"], gap)
            if gap > 0.25:
                state["gaps_over_250ms"] += 1
        state["last_tick"] = now

    def count_inferences():
        for role, engine in list(engines.items()):
            telemetry = getattr(engine, "telemetry", None)
            if telemetry is None:
                continue
            fresh = telemetry.since(state["last_t"].get(role, float("-inf")))
            if fresh:
                state["inferences"][role] += len(fresh)
                state["last_t"][role] = fresh[-1].t

    def studies() -> list[str]:
        return window.study_list.paths()

    def settled(now: float, rss: float) -> bool:
        """Resident memory grew less than SETTLED_GROWTH over the last SETTLED_S seconds."""
        before = [r for t, r in state["rss_history"] if t <= now - SETTLED_S]
        return bool(before) and rss <= before[-1] * (1 + SETTLED_GROWTH)

    def warm_enough(now: float, rss: float) -> bool:
        listed = studies()
        return (
            now - t0 >= min_warm
            and not state["first_pass"]
            and all(state["inferences"][r] > 0 for r in ("student", "teacher"))
            and len(listed) > 0
            and settled(now, rss)
        ) or now - t0 >= duration / 2

    def sample():
        count_inferences()
        now = time.monotonic()
        rss = _rss_mb(proc)
        state["rss_max"] = tuple(max(a, b) for a, b in zip(state["rss_max"], rss, strict=True))
        state["rss_history"].append((now, rss[0]))
        if state["warm_at"] is None and warm_enough(now, rss[0]):
            state["warm_at"] = now - t0
            state["rss_warm"] = rss
            if trace:
                state["trace_warm"] = tracemalloc.take_snapshot()
            _emit(
                "warm", t=round(now - t0, 1), rss_mb=[round(v) for v in rss], complete=now - t0 < duration / 2
            )
        return rss

    def progress():
        rss = sample()
        _emit(
            "progress",
            t=round(time.monotonic() - t0),
            rss_mb=[round(v) for v in rss],
            steps=state["steps"],
            inferences=dict(state["inferences"]),
            max_gap_ms=round(1000 * state["max_gap"]),
            errors=len(errors),
            dialogs=len(dialogs),
        )

    def do(name: str) -> None:
        state["done"][name] = state["done"].get(name, 0) + 1
        if name in ("next", "previous", "heatmap", "teacher", "invert"):
            actions[name].trigger()
        elif name == "finding":
            actions[f"finding{rng.randint(1, 5)}"].trigger()
        elif name == "zoom":
            actions[rng.choice(("zoom_in", "zoom_in", "zoom_out", "reset"))].trigger()
        elif name == "window":
            view = window.image_view
            if view.image is not None:
                center, width = view.window()
                view.set_window(center * rng.uniform(0.8, 1.2), max(width * rng.uniform(0.6, 1.5), 1.0))
        elif name == "resize":
            window.resize(rng.randint(900, 1900), rng.randint(600, 1100))
        elif name == "unreadable" and unreadable:
            window.open_paths([rng.choice(unreadable)])

    def step():
        state["steps"] += 1
        listed = studies()
        current = window.current_path
        if current:
            state["visited"].add(current)
        if state["first_pass"]:  # every file once, each shown (or given up on) before the next
            now = time.monotonic()
            selected = window.study_list.current_path()
            if state["steps"] == 1:
                actions["teacher"].trigger()  # both models from the start, so warm-up loads both
                state["done"]["teacher"] += 1
            elif listed and (current == selected or now - state["stepped_at"] > FIRST_PASS_WAIT_S):
                if selected == listed[-1]:
                    state["first_pass"] = False
                else:
                    do("next")
                    state["stepped_at"] = now
            return
        if len(listed) < 2:  # an opened file replaced the folder's list: open the folder again
            window.open_paths([folder])
            return
        names, weights = zip(*ACTIONS, strict=True)
        do(rng.choices(names, weights)[0])

    beat = QTimer()
    beat.setInterval(HEARTBEAT_MS)
    beat.timeout.connect(heartbeat)
    driver = QTimer()
    driver.setInterval(STEP_MS)
    driver.timeout.connect(step)
    sampler = QTimer()
    sampler.setInterval(2000)
    sampler.timeout.connect(sample)
    reporter = QTimer()
    reporter.setInterval(30_000)
    reporter.timeout.connect(progress)

    def finish():
        for t in (driver, sampler, reporter):
            t.stop()
        count_inferences()
        rss_end = _rss_mb(proc)
        python_growth = []
        if trace and state.get("trace_warm") is not None:  # where Python-side memory grew after warm-up
            stats = tracemalloc.take_snapshot().compare_to(state["trace_warm"], "traceback")
            python_growth = [
                f"{st.size_diff / 1e6:+.1f} MB in {st.count_diff:+d} blocks at "
                + " < ".join(str(f) for f in st.traceback[-3:])
                for st in stats[:TRACE_TOP]
            ]
        beat.stop()
        t_close = time.monotonic()
        window.close()
        app.processEvents()
        close_s = time.monotonic() - t_close
        warm = state["rss_warm"] or rss_end
        _emit(
            "summary",
            minutes=minutes,
            seconds=round(time.monotonic() - t0, 1),
            files=len(studies()),
            visited=len(state["visited"]),
            steps=state["steps"],
            actions=state["done"],
            inferences=state["inferences"],
            max_stall_ms=round(1000 * state["max_gap"]),
            max_stall_after_warmup_ms=round(1000 * state["max_gap_after_warm"]),
            stalls_over_250ms=state["gaps_over_250ms"],
            warmup_s=state["warm_at"],
            warmup_complete=state["warm_at"] is not None and state["warm_at"] < duration / 2,
            rss_mb={
                "start": [round(v) for v in rss_start],
                "after_warmup": [round(v) for v in warm],
                "end": [round(v) for v in rss_end],
                "max": [round(v) for v in state["rss_max"]],
            },
            growth_after_warmup=[round((e - w) / w, 4) for e, w in zip(rss_end, warm, strict=True)],
            errors=_distinct(errors),
            error_count=len(errors),
            dialogs=_distinct(dialogs),
            dialog_count=len(dialogs),
            close_s=round(close_s, 2),
            python_growth=python_growth,
        )
        app.quit()

    beat.start()
    window.start([folder])
    driver.start()
    sampler.start()
    reporter.start()
    QTimer.singleShot(int(duration * 1000), finish)
    app.exec()
    window.shutdown()
    return 0


# ------------------------------------------------------------------------------------------------
# the parent: build the folder, run the child, judge
PREPARE = (
    "from kdviewer.core.engine import load_engine\nfor r in ('student', 'teacher'):\n    load_engine(r)\n"
)


def run(minutes: float, seed: int = 0, cold: bool = False, trace: bool = False) -> tuple[int, dict]:
    """Run one soak; returns (exit status, summary)."""
    with tempfile.TemporaryDirectory(prefix="kdviewer-soak-") as tmp:
        folder = Path(tmp) / "studies"
        folder.mkdir()
        readable, unreadable = build_folder(folder, seed)
        print(
            f"soak: {len(readable)} readable and {len(unreadable)} unreadable files in {folder}; "
            f"{minutes:g} min",
            flush=True,
        )
        env = {
            **os.environ,
            "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
            "PYTHONFAULTHANDLER": "1",
        }
        if not cold:
            # a second start, as a reader's day is: the models' ONNX exports are cached beforehand
            t = time.monotonic()
            subprocess.run([sys.executable, "-c", PREPARE], env=env, check=True, capture_output=True)
            print(
                f"soak: models loaded once beforehand ({time.monotonic() - t:.0f} s; ONNX exports cached)",
                flush=True,
            )
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            str(folder),
            "--minutes",
            str(minutes),
            "--seed",
            str(seed),
            "--unreadable",
            json.dumps([str(p) for p in unreadable]),
        ]
        if trace:
            cmd.append("--tracemalloc")
        stderr_path = Path(tmp) / "child-stderr.txt"
        summary: dict = {}
        with open(stderr_path, "w+") as err:
            child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=REPO)
            deadline = minutes * 60 + 600  # loading models and closing come on top of the run
            timer = threading.Timer(deadline, child.kill)
            timer.start()
            try:
                for line in child.stdout:
                    if not line.startswith(PREFIX):
                        continue
                    msg = json.loads(line[len(PREFIX) :])
                    if msg["kind"] == "summary":
                        summary = msg
                    else:
                        print(
                            f"  {msg['kind']}: "
                            + ", ".join(f"{k} {v}" for k, v in msg.items() if k != "kind"),
                            flush=True,
                        )
                rc = child.wait()
            finally:
                timer.cancel()
            err.seek(0)
            stderr_tail = err.read()[-4000:]
        summary["child_returncode"] = rc
        return _verdict(rc, summary, stderr_tail), summary


def _verdict(rc: int, s: dict, stderr_tail: str) -> int:
    if rc != 0 or "rss_mb" not in s:
        how = f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"exit status {rc}"
        print(f"soak: FAILED — the window's process crashed or hung ({how}); its last output:\n{stderr_tail}")
        return 2
    r = s["rss_mb"]
    print(
        f"soak: {s['seconds']:.0f} s, {s['steps']} actions on {s['files']} files ({s['visited']} shown), "
        f"inferences {s['inferences']}"
    )
    print(f"  actions: {s['actions']}")
    print(
        f"  longest GUI stall {s['max_stall_ms']} ms ({s['max_stall_after_warmup_ms']} ms after warm-up), "
        f"{s['stalls_over_250ms']} stalls over 250 ms"
    )
    print(
        f"  RSS MB (window process / with image readers): start {r['start']}, after warm-up "
        f"({s['warmup_s']:.0f} s{'' if s['warmup_complete'] else ', incomplete'}) {r['after_warmup']}, "
        f"end {r['end']}, max {r['max']}; growth after warm-up "
        f"{', '.join(f'{100 * g:+.1f} %' for g in s['growth_after_warmup'])}"
    )
    print(
        f"  window closed in {s['close_s']} s; blocking dialogs met: {s['dialog_count']}; "
        f"errors in the GUI: {s['error_count']}"
    )
    for text in s["dialogs"][:5]:
        print(f"    dialog: {text}")
    for text in s["errors"][:5]:
        print(f"    error: {text}")
    for text in s.get("python_growth", []):
        print(f"    {text}")
    if s["error_count"]:
        print("soak: FAILED — Python errors were raised in the GUI")
        return 3
    if max(s["growth_after_warmup"]) > MAX_GROWTH:
        print(f"soak: FAILED — resident memory grew more than {100 * MAX_GROWTH:.0f} % after warm-up")
        return 1
    print("soak: passed")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the summary here")
    p.add_argument(
        "--tracemalloc",
        action="store_true",
        help="report where Python-side memory grew after warm-up (slower)",
    )
    p.add_argument(
        "--cold",
        action="store_true",
        help="do not load the models once beforehand (the run then includes any ONNX export)",
    )
    p.add_argument("--child", help=argparse.SUPPRESS)  # the folder, in the window's process
    p.add_argument("--unreadable", default="[]", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        return child_main(a.child, json.loads(a.unreadable), a.minutes, a.seed, a.tracemalloc)
    rc, summary = run(a.minutes, a.seed, a.cold, a.tracemalloc)
    if a.json:
        Path(a.json).write_text(json.dumps(summary, indent=1))
    return rc


if __name__ == "__main__":
    sys.exit(main())
