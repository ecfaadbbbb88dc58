"""`kdviewer predict`, `kdviewer info` and the command dispatch, run through the real entry point
(in-process, and in subprocesses where a crash, a kill or another user's permissions matter)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest
from PIL import Image

import kdviewer.__main__ as entry
import kdviewer.cli as cli
from kdviewer.__main__ import main
from kdviewer.core.engine import InferenceEngine
from kdviewer.core.findings import FINDING_KEYS
from kdviewer.core.resources import example_image

REPO = Path(__file__).resolve().parent.parent


def _png(path: Path, seed: int = 0, shape=(80, 64)) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(path, format="PNG")
    return path


@pytest.fixture()
def mixed_folder(tmp_path):
    folder = tmp_path / "study"
    (folder / "sub").mkdir(parents=True)
    _png(folder / "a.png")
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(folder / "sub" / "b.jpg")
    # A DICOM without extension (the built-in JPEG 2000 chest CR): detected by content.
    shutil.copy(example_image(), folder / "sub" / "IM0001")
    (folder / "broken.dcm").write_text("this is not a DICOM file\n")
    (folder / "empty.png").write_bytes(b"")
    return folder


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _strict_json(text: str):
    def no_constants(name):
        raise AssertionError(f"{name} in the output")

    return json.loads(text, parse_constant=no_constants)


def test_predict_folder_scores_readable_files_and_reports_the_rest(capsys, mixed_folder):
    code, out, err = _run(capsys, "predict", str(mixed_folder), "--format", "json")
    assert code == 1  # some files failed
    records = _strict_json(out)
    scored = sorted(r["file"].removeprefix(str(mixed_folder) + "/") for r in records if r["error"] is None)
    assert scored == ["a.png", "sub/IM0001", "sub/b.jpg"]
    errors = {r["file"].removeprefix(str(mixed_folder) + "/"): r for r in records if r["error"]}
    assert sorted(errors) == ["broken.dcm", "empty.png"] and errors["empty.png"]["model"] is None
    assert "empty" in errors["empty.png"]["error"]
    for r in records:
        if r["error"]:
            continue
        assert r["model"] == "student"
        # every energy figure says how it was obtained; an estimate says so
        assert isinstance(r["energy_is_estimate"], bool) and r["energy_method"]
        assert r["energy_is_estimate"] == r["energy_method"].startswith("estimate")
        assert r["idle_power_w"] is not None and r["idle_power_w"] >= 0  # the baseline, shown separately
        assert len(r["weights_sha256"]) == 64
        assert set(r["findings"]) == set(FINDING_KEYS)
        for f in r["findings"].values():
            assert 0.0 <= f["score"] <= 1.0
            assert f["positive"] == (f["score"] >= f["threshold"])
        assert r["latency_ms"] > 0
    assert "broken.dcm" in err and "empty.png" in err
    assert "2 file(s) could not be scored" in err


def test_predict_csv_with_teacher(capsys, mixed_folder):
    code, out, err = _run(capsys, "predict", str(mixed_folder / "a.png"), "--teacher", "--format", "csv")
    assert code == 0, err
    assert out.endswith("\r\n") and "\r\n" in out.splitlines(keepends=True)[0]  # RFC 4180 line ends
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert [r["model"] for r in rows] == ["student", "teacher"]
    assert rows[0]["architecture"] == "mobilenet_v2" and rows[1]["architecture"] == "densenet121"
    assert all(r["error"] == "" for r in rows)
    for k in FINDING_KEYS:
        assert 0.0 <= float(rows[0][f"{k}_score"]) <= 1.0


def test_predict_missing_path_fails(capsys, tmp_path):
    code, out, err = _run(capsys, "predict", str(tmp_path / "nope.dcm"))
    assert code == 1
    assert _strict_json(out) == [{"file": str(tmp_path / "nope.dcm"), "model": None, "error": "no such file"}]
    assert err.count("nope.dcm: no such file") == 1
    assert "1 file(s) could not be scored" in err


def test_jsonl_output_has_one_record_per_line(capsys, mixed_folder):
    code, out, _ = _run(
        capsys, "predict", str(mixed_folder / "a.png"), str(mixed_folder / "broken.dcm"), "--format", "jsonl"
    )
    assert code == 1
    lines = out.splitlines()
    assert [(_strict_json(x)["file"].rsplit("/", 1)[1], _strict_json(x)["error"] is None) for x in lines] == [
        ("a.png", True),
        ("broken.dcm", False),
    ]


@pytest.fixture()
def faulty_models(monkeypatch):
    """The student's prediction: a failure for files named fail*, NaN scores for nan*, and a
    KeyboardInterrupt for stop*; the real one otherwise."""
    real = InferenceEngine.predict

    def predict(self, image, **kw):
        name = Path(image.path).name
        if name.startswith("fail"):
            raise RuntimeError("the runtime fell over")
        if name.startswith("stop"):
            raise KeyboardInterrupt
        pred = real(self, image, **kw)
        if name.startswith("nan"):
            pred = dataclasses.replace(pred, scores=MappingProxyType({k: math.nan for k in pred.findings}))
        return pred

    monkeypatch.setattr(InferenceEngine, "predict", predict)


def test_a_failing_model_call_or_a_non_finite_score_is_an_error_record(capsys, tmp_path, faulty_models):
    for name in ("a.png", "fail.png", "nan.png", "z.png"):
        _png(tmp_path / name)
    code, out, err = _run(capsys, "predict", str(tmp_path))
    assert code == 1
    records = {Path(r["file"]).name: r for r in _strict_json(out)}  # strict JSON: no NaN anywhere
    assert records["a.png"]["error"] is None and records["z.png"]["error"] is None
    assert records["fail.png"] == {
        "file": str(tmp_path / "fail.png"),
        "model": "student",
        "error": "the runtime fell over",
    }
    assert records["nan.png"]["model"] == "student" and "non-finite score" in records["nan.png"]["error"]
    assert "fail.png (student): the runtime fell over" in err and "2 file(s) could not be scored" in err


def test_the_read_keeps_the_side_the_largest_card_input_needs(capsys, tmp_path, monkeypatch):
    """predict reads each file once for all its models, reduced no further than twice the largest
    input size among their cards (InputSpec.read_min_side), not a size fixed in the code."""
    import kdviewer.core.readpool as readpool
    from kdviewer.core.preprocess import InputSpec

    class Wider:
        """The teacher, its card announcing a 300-pixel input (it still scores as itself)."""

        def __init__(self, engine):
            self.engine, self.card = engine, dataclasses.replace(engine.card, input=InputSpec(size=300))

        def __getattr__(self, name):
            return getattr(self.engine, name)

    student, teacher = cli.load_engines(teacher=True, runtime="auto")
    both = [student, Wider(teacher)]
    monkeypatch.setattr(cli, "load_engines", lambda teacher, runtime: both[: 1 + teacher])
    sizes = []
    real = readpool.read_image_isolated

    def read(path, reduce_to):
        sizes.append(reduce_to)
        return real(path)

    monkeypatch.setattr(readpool, "read_image_isolated", read)
    png = _png(tmp_path / "a.png")
    assert _run(capsys, "predict", str(png))[0] == 0
    assert _run(capsys, "predict", "--teacher", str(png))[0] == 0
    assert sizes == [2 * student.card.input.size, 600]


def test_the_json_array_is_closed_when_the_run_is_interrupted(capsys, tmp_path, faulty_models):
    for name in ("a.png", "b.png", "stop.png", "z.png"):
        _png(tmp_path / name)
    code, out, err = _run(capsys, "predict", str(tmp_path))
    assert code == 130 and "interrupted" in err
    assert [Path(r["file"]).name for r in _strict_json(out)] == ["a.png", "b.png"]


def test_records_reach_the_file_as_each_image_finishes(tmp_path):
    """A process killed in the middle of a run has written every record made before."""
    for i in range(4):
        _png(tmp_path / f"{i}.png", seed=i)
    out = tmp_path / "out.jsonl"
    code = (
        "import os\n"
        "from pathlib import Path\n"
        "from kdviewer.core.engine import InferenceEngine\n"
        "real = InferenceEngine.predict\n"
        "def predict(self, image, **kw):\n"
        "    if Path(image.path).name == '2.png':\n"
        "        os._exit(9)  # as if killed: no clean-up, no flush\n"
        "    return real(self, image, **kw)\n"
        "InferenceEngine.predict = predict\n"
        "from kdviewer.cli import main\n"
        f"main(['predict', '--format', 'jsonl', '-o', {str(out)!r}, {str(tmp_path)!r}])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr
    names = [Path(json.loads(line)["file"]).name for line in out.read_text().splitlines()]
    assert names == ["0.png", "1.png"]


def test_csv_and_json_take_any_file_name(capsys, tmp_path):
    folder = tmp_path / "names"
    folder.mkdir()
    raw = [b'comma, "quoted"\nnewline.png', b"latin1-\xe9\xff.png", "unicode-é.png".encode()]
    for name in raw:
        _png(Path(os.fsdecode(os.path.join(os.fsencode(folder), name))))
    shown = sorted(f"{folder}/" + n.decode("utf-8", "backslashreplace") for n in raw)
    assert any("\\xe9\\xff" in s for s in shown)  # the bytes that are not UTF-8, written as \xNN

    code, out, err = _run(capsys, "predict", str(folder), "--format", "csv")
    assert code == 0, err
    out.encode("utf-8")  # valid UTF-8 (no lone surrogates)
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert sorted(r["file"] for r in rows) == shown

    code, out, err = _run(capsys, "predict", str(folder), "--format", "json")
    assert code == 0, err
    assert out.isascii() and sorted(r["file"] for r in _strict_json(out)) == shown


def _without_root_privilege() -> list[str]:
    """A command prefix under which permissions hold: root reads anything (CAP_DAC_OVERRIDE), so
    as root the command runs without that capability and its search counterpart."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv (util-linux): cannot test permission-denied paths")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def test_every_unreadable_path_is_reported_and_the_rest_scored(tmp_path):
    study = tmp_path / "study"
    (study / "locked").mkdir(parents=True)
    _png(study / "good.png")
    _png(study / "locked" / "hidden.png")
    _png(study / "secret.png")
    _png(study / "IM0002")  # no extension: only sniffing finds it, which needs reading it
    locked_arg = tmp_path / "locked-arg"
    locked_arg.mkdir()
    _png(locked_arg / "x.png")
    too_long = str(tmp_path / ("x" * 300))
    for p in (study / "secret.png", study / "IM0002", study / "locked", locked_arg):
        p.chmod(0)
    try:
        cmd = [
            *_without_root_privilege(),
            sys.executable,
            "-m",
            "kdviewer",
            "predict",
            str(study),
            str(locked_arg),
            too_long,
            str(tmp_path / "missing.png"),
            "--format",
            "jsonl",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
    finally:
        for p in (study / "locked", locked_arg):
            p.chmod(0o755)
    assert proc.returncode == 1, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [Path(r["file"]).name for r in records if r["error"] is None] == ["good.png"], proc.stderr
    errors = {r["file"]: r["error"] for r in records if r["error"]}
    for path in (study / "locked", locked_arg, study / "IM0002", study / "secret.png"):
        assert "Permission denied" in errors[str(path)]
    assert "too long" in errors[too_long]
    assert errors[str(tmp_path / "missing.png")] == "no such file"
    for path, why in errors.items():
        assert f"{path}: {why}" in proc.stderr
    assert "6 file(s) could not be scored" in proc.stderr


def test_output_that_cannot_be_written_fails_the_command(capsys, tmp_path, mixed_folder):
    out_file = tmp_path / "no" / "out.json"
    code, out, err = _run(capsys, "predict", str(mixed_folder / "a.png"), "-o", str(out_file))
    assert code == 2 and out == "" and "cannot write" in err and "out.json" in err


def test_a_broken_override_card_is_an_error_not_a_fallback(capsys, tmp_path, mixed_folder, monkeypatch):
    (tmp_path / "student.json").write_text("[" * 100_000)
    monkeypatch.setenv("KDVIEWER_MODELS", str(tmp_path))
    code, out, err = _run(capsys, "predict", str(mixed_folder / "a.png"))
    assert code == 2 and out == ""
    assert "student.json" in err and "nested too deeply" in err
    code, out, err = _run(capsys, "info", "--json")
    assert code == 1
    (broken,) = [m for m in json.loads(out)["models"] if m["name"] is None]
    assert broken["card"] == str(tmp_path / "student.json") and "nested too deeply" in broken["problem"]


def test_info_lists_versions_meter_and_threads(capsys):
    code, out, err = _run(capsys, "info", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["versions"]["torch"]
    assert info["threads"]["budget"] >= 1
    # each model's own intra-op threads (kdviewer.core.runtime.model_threads)
    threads = {m["name"]: m["threads"] for m in info["models"]}
    assert threads["student"] == 1 and threads["teacher"] == max(1, info["threads"]["budget"] - 1)
    # the paper's sizes: 6.96 M (teacher) and 2.23 M (student) parameters
    assert round(info["architectures"]["densenet121"]["parameters"] / 1e6, 2) == 6.96
    assert round(info["architectures"]["mobilenet_v2"]["parameters"] / 1e6, 2) == 2.23
    chosen = [m for m in info["power_meters"] if m["chosen"]]
    assert len(chosen) == 1
    assert all(m["reason"] for m in info["power_meters"])
    assert info["models"] and all(m["verified"] for m in info["models"])


def test_a_mistyped_command_says_so_instead_of_opening_the_viewer(capsys, monkeypatch, tmp_path):
    opened = []
    monkeypatch.setattr(entry.QtViewer, "view", lambda self, paths: opened.append(paths) or 0)
    code, out, err = _run(capsys, "predcit", "x.png")
    assert code == 2 and opened == []
    assert "'predcit' is neither a command nor an existing file" in err and "did you mean 'predict'" in err
    assert "predict, info, bench, screenshot" in err
    code, _, err = _run(capsys, "segment", "x.png")  # a command this version lacks
    assert code == 2 and "'segment'" in err and opened == []
    scan = _png(tmp_path / "scan.png")
    assert main(["-v", str(scan)]) == 0 and opened == [[str(scan)]]  # an existing path: the viewer
    assert main([]) == 0 and opened[-1] == []  # no command: the viewer on the built-in example


def test_the_cli_alone_refuses_the_viewer_commands(capsys, tmp_path):
    """kdviewer.cli runs no viewer itself (it never imports Qt): only the entry point hands it one."""
    scan = _png(tmp_path / "scan.png")
    for argv in ([], [str(scan)], ["screenshot", str(tmp_path / "out.png")]):
        assert cli.main(argv) == 2
        assert "the viewer starts from the kdviewer command" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


def test_predict_and_report_give_the_teacher_the_whole_thread_budget():
    """The two models take turns there, so the viewer's split (the teacher on all but the student's
    core) would only slow the teacher down."""
    from kdviewer.core.runtime import thread_count

    student, teacher = cli.load_engines(teacher=True, runtime="auto")
    assert student.threads == 1
    opts = teacher._runtime.session.get_session_options()
    assert teacher.threads == thread_count() == opts.intra_op_num_threads
