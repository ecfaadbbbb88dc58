"""Results as DICOM: a Comprehensive SR (TID 1500 measurement report) and a Secondary Capture with
the heat map and a burnt-in "AI — research use only" label.

Both copy the source's patient and study modules (so a PACS files them under the right patient),
reference the source study, series and instance, and get UIDs derived from the source instance and
the model's weights: sending the same result twice is idempotent at the receiver.
"""

from __future__ import annotations

import warnings
from io import BytesIO

import highdicom as hd
import numpy as np
from highdicom.sr import CodedConcept
from PIL import Image, ImageDraw, ImageFont
from pydicom import Dataset
from pydicom.filewriter import dcmwrite
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from kdviewer import __version__
from kdviewer.core.display import to_display_uint8
from kdviewer.core.explain import upsample
from kdviewer.core.findings import finding
from kdviewer.core.image import LoadedImage

MANUFACTURER = "kdviewer"
LABEL = "AI — research use only"
# DICOM text here stays ASCII: no Specific Character Set is needed for it.
RESEARCH_TEXT = "AI result - research use only, not for diagnosis"

#: SNOMED CT concepts of the registry's findings (kdviewer.core.findings keys).
FINDING_CODES = {
    "atelectasis": ("46621007", "Atelectasis"),
    "cardiomegaly": ("8186001", "Cardiomegaly"),
    "consolidation": ("95436008", "Lung consolidation"),
    "edema": ("19242006", "Pulmonary edema"),
    "pleural_effusion": ("60046008", "Pleural effusion"),
}
# kdviewer's own concepts, in a private coding scheme (PS3.16 8.2: 99 prefix).
_SCHEME = "99KDVIEWER"
SCORE = CodedConcept("score", _SCHEME, "AI finding score")
THRESHOLD = CodedConcept("threshold", _SCHEME, "Model card decision threshold")
POSITIVE = CodedConcept("positive", _SCHEME, "Score at or above threshold")
_UNITLESS = CodedConcept("1", "UCUM", "no units")
_CHEST_XRAY = CodedConcept("399208008", "SCT", "Plain chest X-ray")


def is_our_result(ds: Dataset | None) -> bool:
    """Whether ``ds`` is a result this node made (its Manufacturer is kdviewer's)."""
    return ds is not None and str(ds.get("Manufacturer", "")) == MANUFACTURER


def result_uid(source_sop_uid: str, weights_sha256: str, kind: str) -> str:
    """A UID for a result of ``kind`` ("sr-series", "sr", "sc-series", "sc") that depends only on
    the source instance and the model, so a re-sent result replaces rather than duplicates."""
    return generate_uid(entropy_srcs=[source_sop_uid, weights_sha256, kind, __version__])


def _result_identity(source: Dataset, pred, kind: str, *, series_number: int) -> dict:
    """What names a result of ``kind`` ("sr", "sc") made from ``source``: its series and instance
    UIDs (the same for the same image and weights), numbers, maker and transfer syntax."""
    return {
        "series_instance_uid": result_uid(source.SOPInstanceUID, pred.weights_sha256, f"{kind}-series"),
        "series_number": series_number,
        "sop_instance_uid": result_uid(source.SOPInstanceUID, pred.weights_sha256, kind),
        "instance_number": 1,
        "manufacturer": MANUFACTURER,
        "transfer_syntax_uid": ExplicitVRLittleEndian,
    }


def _algorithm(pred, version: str) -> hd.sr.AlgorithmIdentification:
    return hd.sr.AlgorithmIdentification(
        name=pred.model_name,
        version=version,
        parameters=[
            f"weights_sha256={pred.weights_sha256}",
            f"architecture={pred.architecture}",
            f"trained={str(bool(pred.trained)).lower()}",
            "research use only",
        ],
    )


# Patient and General Study attributes of type 2: present, possibly empty, in every IOD. A source
# that lacks one gets it empty in the results (highdicom copies them from the source).
_TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)


def _completed(source: Dataset) -> Dataset:
    """A copy of the source's header with the type 2 patient and study attributes present."""
    ds = Dataset()
    ds.update(source)
    for keyword in _TYPE2:
        if keyword not in ds:
            setattr(ds, keyword, "")
    return ds


def structured_report(source: Dataset, pred, *, model_version: str) -> hd.sr.ComprehensiveSR:
    """A TID 1500 measurement report of ``pred`` on ``source`` (its header, pixels not needed):
    one measurement group per finding with the score, the model card's threshold and the positive
    flag, the algorithm (model name, card version, weights SHA-256) and the research-use notice."""
    source = _completed(source)
    algorithm = _algorithm(pred, model_version)
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=[pred.weights_sha256]),
            name=pred.model_name,
            manufacturer_name=MANUFACTURER,
            model_name=f"{pred.architecture} {model_version}",
        ),
    )
    source_image = hd.sr.SourceImageForMeasurementGroup.from_source_image(source)
    groups = []
    for key in pred.findings:
        code, meaning = FINDING_CODES[key]
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=result_uid(source.SOPInstanceUID, pred.weights_sha256, f"track-{key}"),
                    identifier=finding(key).name,
                ),
                finding_type=CodedConcept(code, "SCT", meaning),
                algorithm_id=algorithm,
                source_images=[source_image],
                measurements=[
                    hd.sr.Measurement(
                        name=SCORE, value=float(pred.scores[key]), unit=_UNITLESS, algorithm_id=algorithm
                    ),
                    hd.sr.Measurement(name=THRESHOLD, value=float(pred.thresholds[key]), unit=_UNITLESS),
                ],
                qualitative_evaluations=[
                    hd.sr.QualitativeEvaluation(
                        name=POSITIVE, value=codes.SCT.Yes if pred.positive[key] else codes.SCT.No
                    )
                ],
            )
        )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=_CHEST_XRAY,
        imaging_measurements=groups,
    )
    sr = hd.sr.ComprehensiveSR(
        evidence=[source],
        content=report[0],
        **_result_identity(source, pred, "sr", series_number=990),
        is_complete=True,
        series_description="kdviewer AI findings - research use only",
    )
    # The notice also travels as a comment in the document, where every SR viewer shows it.
    sr.ContentSequence.append(
        hd.sr.TextContentItem(
            name=codes.DCM.Comment,
            value=RESEARCH_TEXT,
            relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
        )
    )
    return sr


def _draw_label(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, font, fill) -> None:
    """Pillow's default font has no em dash: draw one as a bar between the words around it."""
    x, y = xy
    size = font.size
    parts = text.split("—")
    for i, part in enumerate(parts):
        if i:
            mid = y + size * 0.55
            draw.rectangle([x + size * 0.15, mid, x + size * 0.95, mid + max(1, size // 12)], fill=fill)
            x += int(size * 1.1)
        draw.text((x, y), part, font=font, fill=fill)
        x += int(draw.textlength(part, font=font))


def burnt_in_rgb(image: LoadedImage, pred) -> np.ndarray:
    """The image as the viewer shows it first, with the top-scoring finding's heat map blended in
    and the research-use label burnt into the pixels: RGB uint8 at the decoded size."""
    grey = to_display_uint8(image).astype(np.float32)
    top = max(pred.findings, key=lambda k: pred.scores[k])
    heat = np.clip(upsample(pred.heatmaps.low_resolution(top), image.shape), 0.0, 1.0)
    alpha = 0.45 * heat
    colour = np.stack([np.full_like(heat, 255.0), 255.0 * heat, np.zeros_like(heat)], axis=-1)
    rgb = grey[..., None] * (1.0 - alpha[..., None]) + colour * alpha[..., None]
    picture = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(picture)
    size = max(12, image.shape[0] // 32)
    font = ImageFont.load_default(size=size)
    lines = [LABEL, f"{pred.model_name}: heat map of {finding(top).name} ({pred.scores[top]:.2f})"]
    lines += [
        f"{finding(k).name} {pred.scores[k]:.2f}{' +' if pred.positive[k] else ''}" for k in pred.findings
    ]
    draw.rectangle([0, 0, int(size * 24), int(size * 1.3 * len(lines) + size * 0.4)], fill=(0, 0, 0))
    for i, line in enumerate(lines):
        _draw_label(draw, (int(size * 0.3), int(size * 0.2 + i * size * 1.3)), line, font, (255, 255, 255))
    return np.asarray(picture)


def secondary_capture(source: Dataset, image: LoadedImage, pred) -> hd.sc.SCImage:
    """A Secondary Capture of :func:`burnt_in_rgb` filed with ``source``'s patient and study,
    referencing the source instance (Source Image Sequence) and series (Referenced Series)."""
    source = _completed(source)
    orientation = [str(v) for v in (source.get("PatientOrientation") or [])]
    known = len(orientation) == 2 and all(orientation)
    with warnings.catch_warnings():
        # highdicom warns about the source's own values (a one-part person name), quoting them.
        warnings.simplefilter("ignore", UserWarning)
        sc = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=source,
            pixel_array=burnt_in_rgb(image, pred),
            photometric_interpretation="RGB",
            bits_allocated=8,
            coordinate_system="PATIENT",
            **_result_identity(source, pred, "sc", series_number=991),
            patient_orientation=tuple(orientation) if known else ("L", "F"),
        )
    if not known:
        sc.PatientOrientation = ""  # type 2: empty when the source does not say
    sc.SeriesDescription = "kdviewer AI heat map - research use only"
    sc.BurnedInAnnotation = "YES"
    sc.ImageComments = RESEARCH_TEXT
    sc.DerivationDescription = f"{pred.model_name} heat map blended over the source image"
    ref = Dataset()
    ref.ReferencedSOPClassUID = source.SOPClassUID
    ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
    sc.SourceImageSequence = [ref]
    series = Dataset()
    series.SeriesInstanceUID = source.SeriesInstanceUID
    series.ReferencedInstanceSequence = [ref]
    sc.ReferencedSeriesSequence = [series]
    return sc


def encode(ds: Dataset) -> bytes:
    """``ds`` in the DICOM file format (preamble, File Meta, data set)."""
    buf = BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()
