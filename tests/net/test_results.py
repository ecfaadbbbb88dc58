"""The results as DICOM, without a network: the SR's TID 1500 content and references, the secondary
capture's burnt-in label and references, and a node that never scores its own results."""

from __future__ import annotations

import json

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from kdviewer.core.engine import load_engine
from kdviewer.net import results
from kdviewer.net.arrivals import ArrivalScorer
from kdviewer.net.store import ReceiveStore
from tests.core.dicom_factory import make_dataset, ramp


@pytest.fixture(scope="module")
def engine():
    return load_engine("student")


@pytest.fixture
def received(tmp_path):
    """A store holding one small CR image with patient identifiers, and its path."""
    ds = make_dataset(
        ramp(300, 280, 0, 4095),
        bits_stored=12,
        StudyInstanceUID=generate_uid(),
        SeriesInstanceUID=generate_uid(),
        PatientName="Doe^Jane",
        PatientID="P-17",
        AccessionNumber="A-9",
    )
    store = ReceiveStore(tmp_path / "store", max_bytes=1 << 28, min_free_bytes=0)
    path = store.put(ds.StudyInstanceUID, ds.SOPInstanceUID, results.encode(ds)).path
    return store, ds, path


def _content_items(ds):
    """Every SR content item in document order."""
    for item in ds.get("ContentSequence", []):
        yield item
        yield from _content_items(item)


def test_scoring_writes_the_predict_record_an_sr_and_an_sc_beside_the_image(engine, received):
    store, source, path = received
    arrival = ArrivalScorer(store, engine, secondary_capture=True).process(path)
    record = json.loads(path.with_name(path.stem + ".json").read_text())
    assert record == arrival.record and record["error"] is None
    sr = hd.sr.ComprehensiveSR.from_dataset(pydicom.dcmread(path.with_name(path.stem + ".sr.dcm")))
    sc = pydicom.dcmread(path.with_name(path.stem + ".sc.dcm"))
    for ds in (sr, sc):
        assert (ds.PatientName, ds.PatientID, ds.AccessionNumber) == ("Doe^Jane", "P-17", "A-9")
        assert ds.StudyInstanceUID == source.StudyInstanceUID
        assert ds.SeriesInstanceUID != source.SeriesInstanceUID
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.SeriesInstanceUID == source.SeriesInstanceUID
    assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    scores = [
        float(item.MeasuredValueSequence[0].NumericValue)
        for item in _content_items(sr)
        if item.ValueType == "NUM" and item.ConceptNameCodeSequence[0].CodeValue == "score"
    ]
    assert scores == pytest.approx([f["score"] for f in record["findings"].values()], abs=1e-6)
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert sc.Manufacturer == "kdviewer" and sc.BurnedInAnnotation == "YES"


def test_result_uids_depend_only_on_the_source_and_the_model(engine, received):
    store, source, path = received
    scorer = ArrivalScorer(store, engine)
    scorer.process(path)
    first = pydicom.dcmread(path.with_name(path.stem + ".sr.dcm"))
    scorer.process(path)
    again = pydicom.dcmread(path.with_name(path.stem + ".sr.dcm"))
    assert (first.SOPInstanceUID, first.SeriesInstanceUID) == (again.SOPInstanceUID, again.SeriesInstanceUID)
    assert results.result_uid(source.SOPInstanceUID, "a" * 64, "sr") != results.result_uid(
        source.SOPInstanceUID, "b" * 64, "sr"
    )


def test_label_is_burnt_in_and_the_heat_map_tints_the_image(engine, received):
    from kdviewer.core.readpool import read_image_isolated

    _, _, path = received
    image = read_image_isolated(path)
    pred = engine.predict(image, heatmaps=True)
    rgb = results.burnt_in_rgb(image, pred)
    assert rgb.shape == (*image.shape, 3) and rgb.dtype == np.uint8
    box = rgb[: rgb.shape[0] // 12, : rgb.shape[1] // 2]
    assert (box.max(axis=2) == 0).mean() > 0.4 and (box.min(axis=2) > 200).sum() > 20  # white on black
    below = rgb[rgb.shape[0] // 2 :]
    assert (below[..., 0].astype(int) - below[..., 2]).max() > 40  # red-yellow where the map is high


def test_own_results_are_not_scored_again(engine, received):
    store, _, path = received
    ArrivalScorer(store, engine, secondary_capture=True).process(path)
    sc = pydicom.dcmread(path.with_name(path.stem + ".sc.dcm"))
    stored = store.put(sc.StudyInstanceUID, sc.SOPInstanceUID, results.encode(sc)).path
    arrival = ArrivalScorer(store, engine, secondary_capture=True).process(stored)
    assert "kdviewer result" in arrival.record["error"]
    assert not stored.with_name(stored.stem + ".sr.dcm").exists()
