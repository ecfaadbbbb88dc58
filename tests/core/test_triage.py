"""The triage worklist (Qt-free): orders and filters from the scores already made."""

from __future__ import annotations

from types import MappingProxyType, SimpleNamespace

import pytest

from kdviewer.core.findings import FINDING_KEYS
from kdviewer.core.triage import TriageView, disagreement, positive_counts, worklist
from kdviewer.core.viewer_model import ViewerModel

A, C = FINDING_KEYS[0], FINDING_KEYS[1]  # atelectasis, cardiomegaly


def pred(**scores):
    full = {k: scores.get(k, 0.0) for k in FINDING_KEYS}
    return SimpleNamespace(
        scores=MappingProxyType(full), positive=MappingProxyType({k: v >= 0.5 for k, v in full.items()})
    )


STUDIES = ["/d/c.dcm", "/d/a.dcm", "/d/b.dcm", "/d/unscored.dcm"]
STUDENT = {
    "/d/c.dcm": pred(atelectasis=0.2, cardiomegaly=0.9),
    "/d/a.dcm": pred(atelectasis=0.7),
    "/d/b.dcm": pred(atelectasis=0.4, cardiomegaly=0.6),
}
TEACHER = {"/d/a.dcm": pred(atelectasis=0.1), "/d/b.dcm": pred(atelectasis=0.35, cardiomegaly=0.6)}


@pytest.mark.parametrize(
    "view, expected",
    [
        (TriageView(), STUDIES),
        (TriageView(sort="name"), ["/d/a.dcm", "/d/b.dcm", "/d/c.dcm", "/d/unscored.dcm"]),
        (TriageView(sort="top_score"), ["/d/c.dcm", "/d/a.dcm", "/d/b.dcm", "/d/unscored.dcm"]),
        (
            TriageView(sort="finding", finding="Atelectasis"),
            ["/d/a.dcm", "/d/b.dcm", "/d/c.dcm", "/d/unscored.dcm"],
        ),
        (TriageView(sort="finding", finding=C), ["/d/c.dcm", "/d/b.dcm", "/d/a.dcm", "/d/unscored.dcm"]),
        # a: |0.7-0.1| = 0.6, b: 0.05; c and the unscored one have no teacher result: last, in arrival order
        (TriageView(sort="disagreement"), ["/d/a.dcm", "/d/b.dcm", "/d/c.dcm", "/d/unscored.dcm"]),
        (TriageView(positive_for=C), ["/d/c.dcm", "/d/b.dcm"]),
        (TriageView(sort="top_score", unread_only=True), ["/d/a.dcm", "/d/b.dcm", "/d/unscored.dcm"]),
    ],
)
def test_worklist_orders_and_filters(view, expected):
    assert worklist(STUDIES, view, student=STUDENT, teacher=TEACHER, read={"/d/c.dcm"}) == expected


def test_disagreement_and_counts():
    assert disagreement(STUDENT["/d/a.dcm"], TEACHER["/d/a.dcm"]) == pytest.approx(0.6)
    assert disagreement(STUDENT["/d/c.dcm"], None) is None
    counts = positive_counts(STUDIES, STUDENT)
    assert counts[A] == 1 and counts[C] == 2 and sum(counts.values()) == 3


def test_bad_view_is_refused():
    with pytest.raises(ValueError, match="unknown sort"):
        TriageView(sort="age")
    with pytest.raises(KeyError):
        TriageView(sort="finding", finding="Fracture")


def test_model_keeps_the_view_and_read_state_without_running_models():
    model = ViewerModel()
    asked, lists = [], []
    model.events.prediction_requested.connect(lambda *a: asked.append(a))
    model.events.load_requested.connect(lambda *a: asked.append(a))
    model.events.worklist_changed.connect(lambda paths, counts: lists.append((paths, counts)))
    model.add_studies(STUDIES)
    asked.clear()
    for path, p in STUDENT.items():
        model.study_scored(path, p)
    model.set_triage(TriageView(sort="top_score"))
    assert lists[-1][0] == ["/d/c.dcm", "/d/a.dcm", "/d/b.dcm", "/d/unscored.dcm"]
    assert lists[-1][1][C] == 2
    model.set_read("/d/c.dcm", True)
    model.set_triage(TriageView(sort="top_score", unread_only=True))
    assert lists[-1][0] == ["/d/a.dcm", "/d/b.dcm", "/d/unscored.dcm"]
    model.set_read("/d/c.dcm", False)
    assert lists[-1][0][0] == "/d/c.dcm"
    assert asked == []  # sorting, filtering and read state never ask for a read or an inference


def test_priors_are_the_same_patients_other_studies_most_recent_first():
    model = ViewerModel()
    model.add_studies(["/d/now.dcm", "/d/old.dcm", "/d/older.dcm", "/d/other.dcm", "/d/undated.dcm"])
    info = {
        "/d/now.dcm": ("P1", "20240101"),
        "/d/old.dcm": ("P1", "20200101"),
        "/d/older.dcm": ("P1", "20100101"),
        "/d/other.dcm": ("P2", "20230101"),
        "/d/undated.dcm": ("P1", None),
    }
    for path, (pid, date) in info.items():
        model.note_metadata(path, SimpleNamespace(patient_id=pid, study_date=date))
    assert model.priors("/d/now.dcm") == ["/d/old.dcm", "/d/older.dcm", "/d/undated.dcm"]
    assert model.priors("/d/other.dcm") == []
    shown = []
    model.events.compare_changed.connect(shown.append)
    model.set_compare("/d/old.dcm")
    model.set_compare("/d/old.dcm")
    model.set_compare(None)
    assert shown == ["/d/old.dcm", None]
