"""End to end on a tiny data set: `all`, the exported cards, `kdviewer predict`, and exact resume."""

import json

import numpy as np
import pytest
import torch

from kdviewer.core.findings import FINDING_KEYS
from kdviewer.core.modelcard import load_model
from training import checkpoint
from training.cli import main
from training.runlog import read_jsonl

from .conftest import tiny_sets


@pytest.fixture(scope="module")
def all_run(tiny_data, tmp_path_factory):
    work = tmp_path_factory.mktemp("work")
    out = work / "models"
    rc = main(
        [
            "all",
            "--data-root",
            str(tiny_data),
            "--workdir",
            str(work),
            "--out",
            str(out),
            *tiny_sets(["train.epochs=1"]),
        ]
    )
    assert rc == 0
    return work, out


def test_all_writes_every_stage_and_splits_by_patient(all_run):
    work, _ = all_run
    for run in ("teacher", "student_plain", "student"):
        d = work / run
        for f in (
            "config.json",
            "log.jsonl",
            "learning_curves.png",
            "best.pt",
            "last.pt",
            "result.json",
            "splits.csv",
            "data.json",
        ):
            assert (d / f).is_file(), f"{run}/{f}"
        row = read_jsonl(d / "log.jsonl")[0]
        assert {
            "epoch",
            "train_loss",
            "val_loss",
            "val_mean_auc",
            "val_auc",
            "lr",
            "time_s",
            "energy_j",
            "energy_method",
        } <= set(row)
        assert row["energy_method"]  # the meter named (an estimate on a VM)
    assert json.loads((work / "student" / "config.json").read_text())["input"]["size"] == 32
    rows = [line.split(",") for line in (work / "splits.csv").read_text().splitlines()[1:]]
    by_patient = {}
    for _path, patient, split in rows:
        by_patient.setdefault(patient, set()).add(split)
    assert all(len(s) == 1 for s in by_patient.values())
    for f in ("metrics.json", "summary.md", "roc.png", "predictions.npz"):
        assert (work / "evaluation" / f).is_file()
    m = json.loads((work / "evaluation" / "metrics.json").read_text())
    assert m["split"] == "test" and set(m["comparisons"]) == {
        "teacher_vs_student",
        "student_vs_student_plain",
    }


def test_exported_student_loads_with_a_complete_card(all_run):
    _, out = all_run
    model, card = load_model(out / "student.json")
    assert card.name == "student" and card.architecture == "mobilenet_v2" and card.trained
    assert card.input.size == 32 and tuple(card.findings) == FINDING_KEYS
    assert set(card.thresholds) == set(FINDING_KEYS)
    assert set(card.metrics["findings"]) == set(FINDING_KEYS) and "mean_auc_ci" in card.metrics
    assert "student_vs_student_plain" in card.metrics["comparisons"]
    assert card.training["config"]["distill"]["alpha"] == 0.7 and card.training["data"]["splits"]
    assert card.versions["torch"] and card.reference["scores"]
    assert (out / "student.safetensors").is_file() and (out / "teacher.json").is_file()
    assert (out / "student_plain.json").is_file()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 5)


def test_kdviewer_predict_uses_the_exported_student(all_run, tiny_data, monkeypatch, tmp_path, capsys):
    from kdviewer.cli import main as kdviewer_main

    _, out = all_run
    monkeypatch.setenv("KDVIEWER_MODELS", str(out))
    dest = tmp_path / "pred.json"
    rc = kdviewer_main(
        ["predict", str(tiny_data / "img" / "000.png"), "--runtime", "torch-eager", "-o", str(dest)]
    )
    assert rc == 0
    records = json.loads(dest.read_text())
    assert len(records) == 1
    (record,) = records
    card = json.loads((out / "student.json").read_text())
    assert record["model"] == "student" and record["trained"] is True
    assert record["weights_sha256"] == card["weights_sha256"]
    assert set(record["findings"]) == set(FINDING_KEYS)
    for k in FINDING_KEYS:  # thresholds come from the exported card (chosen on val)
        assert record["findings"][k]["threshold"] == pytest.approx(card["thresholds"][k])


def _losses(run_dir):
    return [(r["train_loss"], r["val_loss"], r["val_mean_auc"]) for r in read_jsonl(run_dir / "log.jsonl")]


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tiny_data, tmp_path):
    args = [
        "student",
        "--data-root",
        str(tiny_data),
        *tiny_sets(["train.epochs=3", "train.plateau_patience=0"]),
    ]
    assert main([*args, "--workdir", str(tmp_path / "a")]) == 0
    assert main([*args, "--workdir", str(tmp_path / "b"), "--stop-after-epochs", "1"]) == 0
    b = tmp_path / "b" / "student_plain"
    assert len(read_jsonl(b / "log.jsonl")) == 1 and not (b / "result.json").exists()
    assert main(["student", "--resume", str(b)]) == 0
    a = tmp_path / "a" / "student_plain"
    la, lb = _losses(a), _losses(b)
    assert len(la) == len(lb) == 3
    np.testing.assert_allclose(np.array(la, dtype=float), np.array(lb, dtype=float), rtol=0, atol=1e-6)
    wa = checkpoint.load(a / checkpoint.LAST)
    wb = checkpoint.load(b / checkpoint.LAST)
    for k, v in wa["model"].items():
        torch.testing.assert_close(v, wb["model"][k], rtol=0, atol=1e-6)
    assert wa["optimizer"]["param_groups"][0]["lr"] == wb["optimizer"]["param_groups"][0]["lr"]
    assert json.loads((b / "result.json").read_text())["epochs_run"] == 3


def test_a_finished_run_resumed_with_more_epochs_is_the_longer_run(tiny_data, tmp_path, caplog):
    args = ["student", "--data-root", str(tiny_data), *tiny_sets(["train.plateau_patience=0"])]
    assert main([*args, "--workdir", str(tmp_path / "a"), "--epochs", "3"]) == 0
    assert main([*args, "--workdir", str(tmp_path / "b"), "--epochs", "2"]) == 0
    b = tmp_path / "b" / "student_plain"
    assert json.loads((b / "result.json").read_text())["epochs_run"] == 2
    assert main(["student", "--resume", str(b), "--epochs", "3"]) == 0
    la, lb = _losses(tmp_path / "a" / "student_plain"), _losses(b)
    assert len(la) == len(lb) == 3
    np.testing.assert_allclose(np.array(la, dtype=float), np.array(lb, dtype=float), rtol=0, atol=1e-6)
    assert json.loads((b / "result.json").read_text())["epochs_run"] == 3
    assert main(["student", "--resume", str(b), "--epochs", "2"]) != 0
    assert "has already run 3 epochs" in caplog.text
    assert main(["all", "--resume", str(tmp_path / "b"), "--epochs", "4"]) != 0  # one stage only
    assert "resume that stage by itself" in caplog.text


def test_a_broken_checkpoint_is_an_error_not_random_weights(tmp_path):
    from kdviewer.core.errors import ModelLoadError

    bad = tmp_path / "best.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError, match="best.pt"):
        checkpoint.load(bad)


def test_resume_from_a_mid_epoch_checkpoint_after_a_crash(tiny_data, tmp_path, monkeypatch):
    from training.trainer import Trainer

    args = [
        "student",
        "--data-root",
        str(tiny_data),
        *tiny_sets(["train.epochs=2", "train.checkpoint_every_steps=1"]),
    ]
    assert main([*args, "--workdir", str(tmp_path / "a")]) == 0

    real_step = Trainer._train_step
    calls = {"n": 0}

    def crashing_step(self, *args):
        calls["n"] += 1
        if calls["n"] == 4:  # 2 steps per epoch: dies in the middle of epoch 2, after its first step
            raise KeyboardInterrupt
        return real_step(self, *args)

    monkeypatch.setattr(Trainer, "_train_step", crashing_step)
    with pytest.raises(KeyboardInterrupt):
        main([*args, "--workdir", str(tmp_path / "b")])
    monkeypatch.setattr(Trainer, "_train_step", real_step)
    b = tmp_path / "b" / "student_plain"
    assert checkpoint.load(b / checkpoint.LAST)["loop"]["step_in_epoch"] == 1
    assert main(["student", "--resume", str(b)]) == 0
    la, lb = _losses(tmp_path / "a" / "student_plain"), _losses(b)
    np.testing.assert_allclose(np.array(la, dtype=float), np.array(lb, dtype=float), rtol=0, atol=1e-6)


def test_a_time_budget_ends_the_run_as_finished_after_the_epoch_that_reaches_it(tiny_data, tmp_path):
    args = [
        "student",
        "--data-root",
        str(tiny_data),
        "--workdir",
        str(tmp_path),
        *tiny_sets(["train.epochs=5", "train.time_budget_s=1e-6"]),
    ]
    assert main(args) == 0
    result = json.loads((tmp_path / "student_plain" / "result.json").read_text())
    assert (result["epochs_run"], result["out_of_time"], result["stopped_early"]) == (1, True, False)
    assert (tmp_path / "student_plain" / checkpoint.BEST).is_file()


def test_prepare_writes_splits_and_the_image_cache_only(tiny_data, tmp_path, capsys):
    assert main(["prepare", "--data-root", str(tiny_data), "--workdir", str(tmp_path), *tiny_sets()]) == 0
    described = json.loads(capsys.readouterr().out)
    assert sum(described["splits"].values()) == 32
    assert (tmp_path / "splits.csv").is_file()
    assert len(list((tmp_path / "cache").glob("images-*.npy"))) == 1
    assert not any((tmp_path / d).exists() for d in ("teacher", "student", "student_plain"))
