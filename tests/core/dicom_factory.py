"""Synthetic DICOM files for the reader's tests: every case the real corpus lacks.

Build a dataset from a stored-value array with :func:`make_dataset`, then write it with
:func:`write` (or get the file's bytes from :func:`encode`) in any transfer syntax (uncompressed
ones, deflated, big endian, RLE, JPEG-LS, JPEG 2000), with or without the 128-byte preamble and
File Meta; :func:`encode_encapsulated` wraps codestreams made elsewhere (e.g. Pillow's JPEG).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

UNCOMPRESSED = {
    "implicit_le": ImplicitVRLittleEndian,
    "explicit_le": ExplicitVRLittleEndian,
    "explicit_be": ExplicitVRBigEndian,
    "deflated_le": DeflatedExplicitVRLittleEndian,
}
COMPRESSED = {"rle": RLELossless, "jpeg_ls_lossless": JPEGLSLossless, "j2k_lossless": JPEG2000Lossless}
TRANSFER_SYNTAXES = {**UNCOMPRESSED, **COMPRESSED}

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def ramp(rows: int = 72, cols: int = 68, lo: int = 0, hi: int = 255, dtype=np.uint16) -> np.ndarray:
    """A deterministic test picture: a diagonal ramp from ``lo`` to ``hi`` (both reached)."""
    y, x = np.mgrid[0:rows, 0:cols]
    t = (x + y) / float(rows + cols - 2)
    return np.round(lo + t * (hi - lo)).astype(dtype)


def make_dataset(
    stored: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    bits_allocated: int | None = None,
    signed: bool = False,
    rescale: tuple[float, float] | None = None,
    windows: list[tuple[float, float]] | None = None,
    window_explanations: list[str] | None = None,
    modality_lut: tuple[int, np.ndarray] | None = None,
    voi_lut: tuple[int, np.ndarray, int] | None = None,
    palette: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    modality: str = "CR",
    sop_class: str = CR_IMAGE_STORAGE,
    **tags,
) -> Dataset:
    """A minimal valid image dataset holding ``stored`` (rows, cols), (frames, rows, cols) or (…, 3).

    ``modality_lut`` is (first mapped value, LUT data); ``voi_lut`` is (first mapped value, LUT data,
    LUT bits); ``palette`` is the (red, green, blue) 16-bit LUT data of a PALETTE COLOR image.
    Extra keyword arguments become DICOM attributes (e.g. ``PatientName="Doe^J"``).
    """
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.PatientName = "Synthetic^Patient"
    ds.PatientID = "SYN-0001"

    colour = photometric in ("RGB", "YBR_FULL")
    samples = 3 if colour else 1
    frames = stored.shape[0] if stored.ndim == (4 if colour else 3) else 1
    rows, cols = stored.shape[-3:-1] if colour else stored.shape[-2:]
    alloc = bits_allocated or (8 if stored.dtype.itemsize == 1 else 16)
    ds.Rows, ds.Columns = int(rows), int(cols)
    ds.SamplesPerPixel = samples
    if colour:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = alloc
    ds.BitsStored = bits_stored or alloc
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if signed else 0
    if frames > 1:
        ds.NumberOfFrames = frames
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
        ds.RescaleType = "US"
    if windows:
        ds.WindowCenter = [c for c, _ in windows] if len(windows) > 1 else windows[0][0]
        ds.WindowWidth = [w for _, w in windows] if len(windows) > 1 else windows[0][1]
        if window_explanations:
            ds.WindowCenterWidthExplanation = (
                window_explanations if len(window_explanations) > 1 else window_explanations[0]
            )
    if modality_lut is not None:
        first, data = modality_lut
        item = Dataset()
        item.LUTDescriptor = [len(data), int(first), 16]
        item.ModalityLUTType = "US"
        item.add_new(0x00283006, "US", [int(v) for v in data])  # LUTData
        ds.ModalityLUTSequence = Sequence([item])
    if voi_lut is not None:
        first, data, bits = voi_lut
        item = Dataset()
        item.LUTDescriptor = [len(data), int(first), int(bits)]
        item.LUTExplanation = "synthetic VOI LUT"
        item.add_new(0x00283006, "US", [int(v) for v in data])  # LUTData
        ds.VOILUTSequence = Sequence([item])
    if palette is not None:
        for name, data in zip(("Red", "Green", "Blue"), palette, strict=True):
            setattr(ds, f"{name}PaletteColorLookupTableDescriptor", [len(data), 0, 16])
            setattr(ds, f"{name}PaletteColorLookupTableData", np.asarray(data, "<u2").tobytes())
    for key, value in tags.items():
        setattr(ds, key, value)

    arr = np.ascontiguousarray(stored)
    if alloc == 16:
        arr = arr.astype("<i2" if signed else "<u2")
    ds.PixelData = arr.tobytes()
    ds["PixelData"].VR = "OB" if alloc == 8 else "OW"
    return ds


def write(
    ds: Dataset,
    path: Path,
    transfer_syntax: str = "explicit_le",
    *,
    preamble: bool = True,
    file_meta: bool = True,
) -> Path:
    """Write ``ds`` to ``path`` in ``transfer_syntax`` (a key of TRANSFER_SYNTAXES); see :func:`encode`."""
    path = Path(path)
    path.write_bytes(encode(ds, transfer_syntax, preamble=preamble, file_meta=file_meta))
    return path


def encode(
    ds: Dataset, transfer_syntax: str = "explicit_le", *, preamble: bool = True, file_meta: bool = True
) -> bytes:
    """The file ``ds`` makes in ``transfer_syntax`` (a key of TRANSFER_SYNTAXES).

    ``preamble=False`` omits the 128-byte preamble and "DICM"; ``file_meta=False`` also omits the
    File Meta group, leaving a bare dataset (only valid in implicit VR little endian, as the
    standard's fallback assumes).
    """
    ds = ds.copy()
    ds.file_meta = ds.file_meta.copy()
    uid = TRANSFER_SYNTAXES[transfer_syntax]
    if uid.is_compressed:
        arr = ds.pixel_array
        ds.compress(uid, arr, generate_instance_uid=False)
    else:
        ds.file_meta.TransferSyntaxUID = uid
        if uid == ExplicitVRBigEndian and ds.BitsAllocated == 16:
            # pydicom writes OW values as given: store them big endian.
            dt = ">i2" if ds.PixelRepresentation else ">u2"
            little = np.frombuffer(ds.PixelData, dtype=dt.replace(">", "<"))
            ds.PixelData = little.astype(dt).tobytes()
    out = io.BytesIO()
    if not file_meta:
        if uid != ImplicitVRLittleEndian:
            raise ValueError("a dataset without File Meta must be implicit VR little endian")
        del ds.file_meta
        pydicom.dcmwrite(out, ds, implicit_vr=True, little_endian=True)
        return out.getvalue()
    pydicom.dcmwrite(out, ds, enforce_file_format=True)
    data = out.getvalue()
    if not preamble:
        assert data[128:132] == b"DICM"
        data = data[132:]
    return data


def encode_encapsulated(ds: Dataset, transfer_syntax_uid: str, frames: list[bytes]) -> bytes:
    """The file ``ds`` makes with ``frames`` (already compressed codestreams) as its pixel data."""
    ds = ds.copy()
    ds.file_meta = ds.file_meta.copy()
    ds.file_meta.TransferSyntaxUID = transfer_syntax_uid
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    out = io.BytesIO()
    pydicom.dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()
