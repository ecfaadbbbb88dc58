"""Data types for a read image: pixels in a known value space plus metadata.

The reader (:mod:`kdviewer.core.imageio`) produces these; preprocessing and display consume them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

# Attributes that identify a person or a study, as ImageMetadata fields with their DICOM keywords;
# hidden by default and blanked by ``deidentified``.
IDENTIFYING_FIELD_KEYWORDS = {
    "patient_name": "PatientName",
    "patient_id": "PatientID",
    "patient_birth_date": "PatientBirthDate",
    "accession_number": "AccessionNumber",
    "study_instance_uid": "StudyInstanceUID",
    "series_instance_uid": "SeriesInstanceUID",
    "sop_instance_uid": "SOPInstanceUID",
    "institution_name": "InstitutionName",
    "referring_physician": "ReferringPhysicianName",
}
IDENTIFYING_FIELDS = tuple(IDENTIFYING_FIELD_KEYWORDS)
# Every DICOM keyword masked while patient identifiers are hidden (the tag viewer): those above and
# identifying attributes the reader does not keep.
IDENTIFYING_KEYWORDS = frozenset(
    {
        *IDENTIFYING_FIELD_KEYWORDS.values(),
        "PatientBirthTime",
        "OtherPatientIDs",
        "OtherPatientNames",
        "OtherPatientIDsSequence",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "PatientMotherBirthName",
        "InstitutionAddress",
        "PerformingPhysicianName",
        "OperatorsName",
        "StudyID",
        "IssuerOfPatientID",
    }
)


@dataclass(frozen=True)
class Window:
    """A display window (centre/width) in the value space of :attr:`LoadedImage.pixels`.

    ``function`` is the DICOM VOI LUT Function the window is defined for: "LINEAR" (the
    default), "LINEAR_EXACT" or "SIGMOID".
    """

    center: float
    width: float
    explanation: str = ""
    function: str = "LINEAR"


@dataclass(frozen=True)
class ImageMetadata:
    """What is known about an image beyond its pixels. Missing values are ``None``."""

    source_format: str  # "DICOM", "PNG" or "JPEG"
    rows: int
    cols: int
    photometric: str | None = None
    bits_stored: int | None = None
    frames: int = 1
    modality: str | None = None
    body_part: str | None = None
    view_position: str | None = None
    pixel_spacing: tuple[float, float] | None = None
    transfer_syntax: str | None = None
    transfer_syntax_uid: str | None = None
    lossy_compression: bool | None = None
    study_date: str | None = None
    study_description: str | None = None
    patient_sex: str | None = None
    patient_age: str | None = None
    # identifying fields (see IDENTIFYING_FIELDS)
    patient_name: str | None = None
    patient_id: str | None = None
    patient_birth_date: str | None = None
    accession_number: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    sop_instance_uid: str | None = None
    institution_name: str | None = None
    referring_physician: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """All fields, identifiers included."""
        return asdict(self)

    def deidentified(self) -> dict[str, Any]:
        """All fields with the identifying ones replaced by ``None``."""
        d = asdict(self)
        for k in IDENTIFYING_FIELDS:
            d[k] = None
        return d


@dataclass(frozen=True)
class LoadedImage:
    """A decoded grey image ready for display and for the model.

    ``pixels`` is a 2-D float32 array after the Modality LUT (rescale slope/intercept or the
    Modality LUT Sequence) and with MONOCHROME1 already inverted, so higher always means
    brighter (denser). ``value_range`` is the display-independent full range used to scale
    the model input: the minimum and maximum of ``pixels``. ``windows`` are the file's own
    display presets (DICOM window centre/width) in the same value space; ``voi_lut`` is a
    lookup (input values, output values) when the file has a VOI LUT Sequence.
    """

    path: str
    pixels: np.ndarray
    value_range: tuple[float, float]
    metadata: ImageMetadata
    windows: tuple[Window, ...] = ()
    voi_lut: tuple[np.ndarray, np.ndarray] | None = None
    warnings: tuple[str, ...] = ()
    dataset: Any = field(default=None, repr=False, compare=False)  # pydicom Dataset (no pixel data)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of ``pixels``."""
        return (int(self.pixels.shape[0]), int(self.pixels.shape[1]))

    @property
    def geometry(self) -> tuple[int, int]:
        """(rows, cols) of the full image: equal to :attr:`shape` except after a reduced decode
        (``read_image(..., reduce_to=...)``), where heat maps must still cover the full image."""
        return (int(self.metadata.rows), int(self.metadata.cols))

    @property
    def reduced(self) -> bool:
        """Whether ``pixels`` were decoded at less than the full resolution."""
        return self.shape != self.geometry
