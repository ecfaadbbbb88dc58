"""Read a chest X-ray from a file: DICOM, PNG or JPEG, detected by content, never by name.

:func:`read_image` is the one entry point; it returns a :class:`~kdviewer.core.image.LoadedImage`
or raises :class:`~kdviewer.core.errors.ImageReadError` (message: the file and the cause) for
anything wrong with the file. Nothing else escapes it.

Value space of the returned pixels (float32, 2-D):

* DICOM grey images: the Modality LUT is applied (RescaleSlope/RescaleIntercept, or the Modality
  LUT Sequence), so values are in modality units. MONOCHROME1 images are inverted so that higher
  always means brighter: ``v' = lo + hi - v`` where ``[lo, hi]`` is the full *possible* range of
  the Modality LUT output (from BitsStored and PixelRepresentation through the rescale, or the
  Modality LUT Sequence's entries), not the range found in this image. Inverting around a fixed,
  file-independent range keeps the file's window presets transformable:
  a LINEAR window (c, w) becomes (lo + hi - c + 1, w) (the +1 undoes the half-step asymmetry of
  the DICOM linear formula, so the windowed result equals the DICOM presentation exactly); a
  LINEAR_EXACT or SIGMOID window becomes (lo + hi - c, w). A VOI LUT Sequence is turned into
  ``(inputs, outputs)`` with inputs in the returned value space and outputs as brightness in
  [0, 1] (for MONOCHROME1: inputs mirrored, outputs ``1 - out``).
* DICOM colour images (RGB, YBR, PALETTE COLOR): converted to grey by ITU-R BT.601 luma
  (0.299 R + 0.587 G + 0.114 B) with a warning; no Modality LUT applies to colour.
* PNG / JPEG: the stored grey values (8- or 16-bit); colour (RGB, RGBA, palette, CMYK) converted
  to grey by the same luma formula, with a warning; transparency is ignored (warning when present).
  The EXIF orientation, if any, is applied.
* Multi-frame DICOM: the first frame only, with a warning.

``value_range`` is the (min, max) of the returned pixels: the display-independent range the
model input is scaled from.

Size limit: :data:`MAX_PIXELS`. Larger images are refused from the header alone (PNG IHDR,
PIL's header for JPEG, Rows x Columns x NumberOfFrames for DICOM) before anything is decoded.
"""

from __future__ import annotations

import logging
import io
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ImageReadError
from .image import ImageMetadata, LoadedImage, Window

log = logging.getLogger(__name__)

#: Largest image accepted, in pixels (Rows x Columns x frames for DICOM): 64 Mi pixels, e.g.
#: 8192 x 8192. The largest chest detectors are about 4300 x 4300 (18 MP) and digitised films
#: rarely exceed 30 MP, so this refuses only absurd or hostile files. One such image costs up to
#: about 256 MB as float32 plus its decoded stored array. It is also below Pillow's own
#: decompression-bomb threshold, so Pillow never warns about an image we accept.
MAX_PIXELS = 64 * 1024 * 1024

#: ITU-R BT.601 luma weights used for every colour-to-grey conversion.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8\xff"
_SNIFF_BYTES = 132

# Groups a bare DICOM dataset (no preamble) may start with: File Meta, or the first dataset groups.
_BARE_DICOM_GROUPS = {0x0002, 0x0008, 0x0010, 0x0018, 0x0020, 0x0028}
_VRS = {
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB",
    b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM",
    b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV",
}  # fmt: skip

# Transfer syntaxes that are lossy whatever the file says / never lossy. Others (JPEG 2000,
# JPEG-LS near-lossless, HTJ2K) may be either: the LossyImageCompression tag decides, else None.
_ALWAYS_LOSSY = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"}
_NEVER_LOSSY = {
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
}


# --------------------------------------------------------------------------- sniffing


def sniff_format(head: bytes) -> str | None:
    """The format of a file from its first bytes: ``"DICOM"``, ``"PNG"``, ``"JPEG"`` or ``None``.

    ``head`` should be the first 132 bytes (fewer for a shorter file). DICOM is recognised by
    "DICM" after the 128-byte preamble, or, without preamble, by a first data element whose tag
    (little endian, group 0002/0008/0010/0018/0020/0028) and VR or length look like DICOM.
    """
    if head.startswith(_PNG_SIGNATURE):
        return "PNG"
    if head.startswith(_JPEG_SOI):
        return "JPEG"
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "DICOM"
    if _looks_like_bare_dicom(head):
        return "DICOM"
    return None


def _looks_like_bare_dicom(head: bytes) -> bool:
    if len(head) < 8:
        return False
    group, _element = struct.unpack("<HH", head[:4])
    if group not in _BARE_DICOM_GROUPS:
        return False
    if head[4:6] in _VRS:  # explicit VR
        return True
    (length,) = struct.unpack("<I", head[4:8])  # implicit VR: a plausible 32-bit length
    return length == 0xFFFFFFFF or length < 0x10000


def _read_head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(_SNIFF_BYTES)


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether the file's first bytes look like DICOM, PNG or JPEG (cheap: reads 132 bytes).

    ``True`` does not promise the file decodes; :func:`read_image` decides that.
    """
    try:
        return sniff_format(_read_head(Path(path))) is not None
    except OSError:
        return False


IMAGE_SUFFIXES = frozenset({".dcm", ".dicom", ".dic", ".ima", ".png", ".jpg", ".jpeg"})


def iter_image_files(paths: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """The files named by ``paths``: files as given, folders recursed.

    A file argument is always yielded (even if missing or not an image) so that the caller
    reports it. Folders are walked recursively in sorted order, skipping hidden files and
    folders (names starting with "."), and yield files that sniff as images or carry an image
    extension (:data:`IMAGE_SUFFIXES`): a corrupt ``.dcm`` in a folder is reported, not skipped,
    while unrelated files (reports, spreadsheets) are left alone.
    """
    for p in paths:
        path = Path(p)
        if not path.is_dir():
            yield path
            continue
        found = []
        for root, dirs, files in os.walk(path):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found.extend(Path(root, f) for f in files if not f.startswith("."))
        for f in sorted(found):
            if f.is_file() and (f.suffix.lower() in IMAGE_SUFFIXES or is_image_file(f)):
                yield f


# --------------------------------------------------------------------------- entry point


def read_image(
    path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS, reduce_to: int | None = None
) -> LoadedImage:
    """Read a DICOM, PNG or JPEG file (detected by content) into a :class:`LoadedImage`.

    Raises :class:`ImageReadError` naming the file and the cause for anything that prevents
    reading: missing or empty file, unknown format, truncated or corrupt data, no pixel data,
    a transfer syntax no installed codec decodes, or more than ``max_pixels`` pixels.
    See the module docstring for the value space of the returned pixels.

    ``reduce_to`` asks for a faster, smaller decode where the format has one built in: JPEG
    2000 pixel data is then decoded at half resolution (its wavelet low-pass band, an
    antialiased downscale that costs about a quarter of the full decode) when the smaller
    side stays at least ``reduce_to``. The result's ``metadata.rows``/``cols`` keep the full
    geometry, so heat maps still overlay the full image. Used for the model path, never for
    display; other formats are unaffected.
    """
    path = Path(path)
    try:
        if not path.is_file():
            raise ImageReadError(path, "no such file" if not path.exists() else "not a file")
        if path.stat().st_size == 0:
            raise ImageReadError(path, "the file is empty")
        fmt = sniff_format(_read_head(path))
        if fmt is None:
            raise ImageReadError(path, "not a recognised image format (expected DICOM, PNG or JPEG)")
        if fmt == "DICOM":
            ds = read_dicom_dataset(path, max_pixels=max_pixels)
            stored = _decode_j2k_reduced(ds, reduce_to) if reduce_to else None
            if stored is None:
                stored = decode_stored_pixels(ds, path=path)
            return image_from_dicom(path, ds, stored)
        return _read_pil(path, fmt, max_pixels)
    except ImageReadError:
        raise
    except MemoryError:
        raise ImageReadError(path, "not enough memory to decode the image") from None
    except Exception as exc:  # any library failure on a bad file becomes the documented error
        log.debug("unexpected failure reading %s", path, exc_info=True)
        raise ImageReadError(path, f"cannot read the file ({type(exc).__name__}: {exc})") from exc


# --------------------------------------------------------------------------- DICOM


def read_dicom_dataset(path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS):
    """Parse a DICOM file (with or without preamble and File Meta) and check it holds an image.

    The header is parsed first and the image size checked against ``max_pixels`` before the
    pixel data is read. Files without File Meta get a Transfer Syntax UID from the encoding
    pydicom detected (implicit VR little endian, the standard's default). Returns the full
    pydicom Dataset (pixel data included); raises :class:`ImageReadError` otherwise.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    try:
        header = pydicom.dcmread(path, force=True, stop_before_pixels=True)
        _check_parsed(path, header)
        _check_image_header(path, header, max_pixels)
        ds = pydicom.dcmread(path, force=True)
    except ImageReadError:
        raise
    except MemoryError:
        raise ImageReadError(path, "not enough memory to read the file") from None
    except InvalidDicomError as exc:
        raise ImageReadError(path, f"not a valid DICOM file ({exc})") from exc
    except Exception as exc:  # pydicom raises many types on damaged files
        raise ImageReadError(path, f"corrupt or truncated DICOM ({type(exc).__name__}: {exc})") from exc
    if "PixelData" not in ds:
        raise ImageReadError(path, "DICOM pixel data missing or cut off (file truncated?)")
    _ensure_transfer_syntax(path, ds)
    return ds


def _check_parsed(path: Path, ds) -> None:
    """Reject what ``force=True`` turned into a dataset but is not DICOM."""
    if len(ds) == 0:
        raise ImageReadError(path, "not a DICOM file (no data elements found)")
    try:
        for elem in ds:  # convert every value now: garbage fails here, not later in a viewer
            _ = elem.value
    except Exception as exc:
        raise ImageReadError(path, f"corrupt DICOM header ({exc})") from exc
    known = {"SOPClassUID", "Modality", "Rows", "Columns", "PatientID", "StudyInstanceUID"}
    if not any(k in ds for k in known):
        raise ImageReadError(path, "not a DICOM file (no recognisable DICOM attributes)")


def _check_image_header(path: Path, ds, max_pixels: int) -> None:
    if "Rows" not in ds or "Columns" not in ds:
        sop = ds.get("SOPClassUID")
        what = f" ({sop.name})" if sop is not None else ""
        raise ImageReadError(path, f"DICOM file has no pixel data{what}")
    rows, cols = int(ds.Rows or 0), int(ds.Columns or 0)
    frames = _frames(ds)
    if rows <= 0 or cols <= 0:
        raise ImageReadError(path, f"DICOM image has an invalid size {rows} x {cols}")
    total = rows * cols * frames
    if total > max_pixels:
        raise ImageReadError(
            path,
            f"image too large: {rows} x {cols} x {frames} frame(s) = {total} pixels "
            f"exceeds the limit of {max_pixels} pixels",
        )


def _frames(ds) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def _ensure_transfer_syntax(path: Path, ds) -> None:
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    tsuid = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if tsuid:
        return
    implicit, little = ds.original_encoding
    if not implicit and not little:
        uid = ExplicitVRBigEndian
    elif not implicit:
        uid = ExplicitVRLittleEndian
    else:
        uid = ImplicitVRLittleEndian
    if ds["PixelData"].is_undefined_length:
        raise ImageReadError(path, "compressed DICOM pixel data without a Transfer Syntax UID (no File Meta)")
    from pydicom.dataset import FileMetaDataset

    if not hasattr(ds, "file_meta") or ds.file_meta is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid
    log.debug("%s: no File Meta; read as %s", path, uid.name)


def decode_stored_pixels(ds, *, frame: int | None = 0, path: str | os.PathLike | None = None) -> np.ndarray:
    """Decode the stored pixel values of a dataset from :func:`read_dicom_dataset`.

    Returns pydicom's array before any LUT or inversion: (rows, cols) or (rows, cols, 3) for
    ``frame`` (0-based; ignored for single-frame images), or every frame when ``frame`` is None
    (then the same array as ``ds.pixel_array``). YBR colour is converted to RGB, as pydicom does
    by default. Raises :class:`ImageReadError` when no installed codec can decode the data.
    """
    from pydicom.pixels import pixel_array

    where = path or getattr(ds, "filename", None) or "<dataset>"
    tsuid = ds.file_meta.TransferSyntaxUID
    index = None if (frame is None or _frames(ds) == 1) else int(frame)
    try:
        return pixel_array(ds, index=index)
    except MemoryError:
        raise ImageReadError(where, "not enough memory to decode the image") from None
    except Exception as exc:
        detail = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in detail[:3])
        if tsuid.is_compressed:
            cause = (
                f"cannot decode pixel data compressed as {tsuid.name} ({tsuid}): "
                f"no installed codec could decode it ({detail})"
            )
        else:
            cause = f"corrupt or truncated pixel data in {tsuid.name} ({detail})"
        raise ImageReadError(where, cause) from exc


_J2K_UIDS = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"}


def _j2k_precision(codestream: bytes) -> tuple[int, bool] | None:
    """(bit depth, signed) of the first component from a JPEG 2000 codestream's SIZ segment."""
    i = codestream.find(b"\xff\x51", 0, 256)
    if i < 0 or len(codestream) < i + 41:
        return None
    ssiz = codestream[i + 40]  # after the marker, Lsiz, Rsiz, 8 x 4-byte sizes/offsets and Csiz
    return (ssiz & 0x7F) + 1, bool(ssiz & 0x80)


def _decode_j2k_reduced(ds, reduce_to: int) -> np.ndarray | None:
    """Half-resolution decode of single-frame, grey, unsigned JPEG 2000 pixel data, or None.

    Pillow's OpenJPEG decoder reconstructs only the needed wavelet levels (``reduce = 1``;
    Pillow 13 fails on deeper levels, so only one level is used). It returns values scaled
    to 16 bits, which are shifted back to the stored precision. Anything unusual returns None
    and the caller decodes in full.
    """
    if str(ds.file_meta.get("TransferSyntaxUID", "")) not in _J2K_UIDS or _frames(ds) != 1:
        return None
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1 or int(ds.get("PixelRepresentation", 0) or 0) != 0:
        return None
    if min(int(ds.Rows), int(ds.Columns)) < 2 * reduce_to:
        return None
    try:
        from pydicom.encaps import generate_frames
        from PIL import Image

        codestream = next(generate_frames(ds.PixelData, number_of_frames=1))
        precision = _j2k_precision(codestream)
        if precision is None or precision[1] or not 8 < precision[0] <= 16:
            return None
        im = Image.open(io.BytesIO(codestream))
        if im.mode != "I;16":
            return None
        im.reduce = 1
        im.load()
        stored = np.asarray(im, dtype=np.uint16)
    except Exception as exc:  # fall back to the full decode, which reports real errors
        log.debug("reduced JPEG 2000 decode failed, decoding in full: %s", exc)
        return None
    shift = 16 - precision[0]
    return stored >> shift if shift else stored


def image_from_dicom(path: str | os.PathLike, ds, stored: np.ndarray) -> LoadedImage:
    """Build the :class:`LoadedImage` from a dataset and its decoded stored array.

    ``stored`` is the first frame from :func:`decode_stored_pixels` (or all frames; the first is
    used). Applies the Modality LUT, inverts MONOCHROME1, converts colour to grey, maps the
    file's window presets and VOI LUT into the returned value space, and removes the pixel data
    element from ``ds`` (which becomes :attr:`LoadedImage.dataset`).
    """
    path = Path(path)
    warnings: list[str] = []
    frames = _frames(ds)
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    colour = samples > 1 or photometric == "PALETTE COLOR"
    if frames > 1:
        warnings.append(f"multi-frame image ({frames} frames): showing the first frame only")
        expected_ndim = 4 if samples > 1 else 3
        if stored.ndim == expected_ndim:
            stored = stored[0]

    windows: tuple[Window, ...] = ()
    voi_lut = None
    if colour:
        if photometric == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut

            stored = apply_color_lut(stored, ds)
        pixels, note = _rgb_to_grey(stored)
        warnings.append(f"colour DICOM ({photometric or 'RGB'}) converted to grey; {note}")
    elif photometric in ("MONOCHROME1", "MONOCHROME2"):
        pixels, (lo, hi) = _apply_modality_lut(ds, stored)
        invert = photometric == "MONOCHROME1"
        if invert:
            k = np.float32(lo + hi)
            np.subtract(k, pixels, out=pixels)
        windows = _windows(ds, path, warnings, lo + hi if invert else None)
        voi_lut = _voi_lut(ds, path, warnings, lo + hi if invert else None)
    else:
        raise ImageReadError(path, f"unsupported photometric interpretation {photometric!r}")

    if pixels.ndim != 2:
        raise ImageReadError(path, f"unexpected decoded shape {pixels.shape}")
    value_range = (float(pixels.min()), float(pixels.max()))
    # the header's geometry: a reduced decode (read_image's reduce_to) keeps the full size here
    metadata = _dicom_metadata(ds, (int(ds.Rows), int(ds.Columns)), frames)
    if "PixelData" in ds:
        del ds.PixelData
    return LoadedImage(
        path=str(path),
        pixels=pixels,
        value_range=value_range,
        metadata=metadata,
        windows=windows,
        voi_lut=voi_lut,
        warnings=tuple(warnings),
        dataset=ds,
    )


def _stored_range(ds) -> tuple[float, float]:
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)) or 16)
    if int(ds.get("PixelRepresentation", 0) or 0) == 1:
        return float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    return 0.0, float(2**bits - 1)


def _apply_modality_lut(ds, stored: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """Pixels after the Modality LUT (float32, a new array) and the LUT's full output range."""
    if "ModalityLUTSequence" in ds and ds.ModalityLUTSequence:
        from pydicom.pixels import apply_modality_lut

        item = ds.ModalityLUTSequence[0]
        n, first = int(item.LUTDescriptor[0]) or 65536, int(item.LUTDescriptor[1])
        table = apply_modality_lut(np.arange(first, first + n), ds)
        pixels = np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
        return pixels, (float(table.min()), float(table.max()))
    lo, hi = _stored_range(ds)
    pixels = stored.astype(np.float32)  # the one copy; rescaled in place below
    slope = float(ds.get("RescaleSlope", 1) or 1) if "RescaleSlope" in ds else 1.0
    intercept = float(ds.get("RescaleIntercept", 0) or 0) if "RescaleIntercept" in ds else 0.0
    if slope != 1.0:
        pixels *= np.float32(slope)
    if intercept != 0.0:
        pixels += np.float32(intercept)
    a, b = lo * slope + intercept, hi * slope + intercept
    return pixels, (min(a, b), max(a, b))


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return [value]
    return list(value)


def _windows(ds, path: Path, warnings: list[str], mirror: float | None) -> tuple[Window, ...]:
    centers = _as_list(ds.get("WindowCenter"))
    widths = _as_list(ds.get("WindowWidth"))
    if not centers or not widths:
        return ()
    explanations = [str(e) for e in _as_list(ds.get("WindowCenterWidthExplanation"))]
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        warnings.append(f"unknown VOI LUT function {function!r}; windows treated as LINEAR")
        function = "LINEAR"
    if len(centers) != len(widths):
        warnings.append(f"{len(centers)} window centres but {len(widths)} widths; extra values ignored")
    out = []
    for i, (c, w) in enumerate(zip(centers, widths)):
        try:
            c, w = float(c), float(w)
        except (TypeError, ValueError):
            warnings.append(f"window preset {i + 1} is not numeric; ignored")
            continue
        if not np.isfinite(c) or not np.isfinite(w) or w < (1 if function == "LINEAR" else 0) or w == 0:
            warnings.append(f"window preset {i + 1} has an invalid width {w}; ignored")
            continue
        if mirror is not None:
            c = mirror - c + (1.0 if function == "LINEAR" else 0.0)
        explanation = explanations[i] if i < len(explanations) and explanations[i] else f"file preset {i + 1}"
        out.append(Window(center=c, width=w, explanation=explanation, function=function))
    return tuple(out)


def _voi_lut(ds, path: Path, warnings: list[str], mirror: float | None):
    seq = ds.get("VOILUTSequence")
    if not seq:
        return None
    try:
        from pydicom.pixels import apply_voi

        item = seq[0]
        n, first, bits = (int(v) for v in item.LUTDescriptor)
        n = n or 65536
        if first > 32767 and int(ds.get("PixelRepresentation", 0) or 0) == 1:
            first -= 65536
        inputs = np.arange(first, first + n, dtype=np.int32)
        outputs = np.asarray(apply_voi(inputs, ds, index=0), dtype=np.float64)
        inputs = inputs.astype(np.float64)
        top = float(2 ** min(max(bits, 8), 16) - 1)
        outputs = outputs / top
        if mirror is not None:
            inputs, outputs = mirror - inputs[::-1], 1.0 - outputs[::-1]
        if len(seq) > 1:
            warnings.append(f"{len(seq)} VOI LUTs in the file; using the first")
        return inputs.astype(np.float32), np.clip(outputs, 0, 1).astype(np.float32)
    except Exception as exc:
        warnings.append(f"VOI LUT Sequence ignored: {exc}")
        return None


def _rgb_to_grey(rgb: np.ndarray) -> tuple[np.ndarray, str]:
    """Luma of an (H, W, 3) array as float32, and a note saying whether colour was discarded."""
    r, g, b = (rgb[..., i] for i in range(3))
    same = bool(np.array_equal(r, g) and np.array_equal(g, b))
    grey = r.astype(np.float32) * np.float32(LUMA_WEIGHTS[0])
    grey += g.astype(np.float32) * np.float32(LUMA_WEIGHTS[1])
    grey += b.astype(np.float32) * np.float32(LUMA_WEIGHTS[2])
    note = "its channels were identical (nothing lost)" if same else "colour information was discarded"
    return grey, note


def _text(ds, keyword: str) -> str | None:
    value = ds.get(keyword)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _spacing(ds) -> tuple[float, float] | None:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = _as_list(ds.get(keyword))
        if len(value) == 2:
            try:
                row, col = float(value[0]), float(value[1])
            except (TypeError, ValueError):
                continue
            if row > 0 and col > 0:
                return (row, col)
    return None


def _dicom_metadata(ds, shape: tuple[int, ...], frames: int) -> ImageMetadata:
    tsuid = ds.file_meta.get("TransferSyntaxUID")
    lossy_tag = _text(ds, "LossyImageCompression")
    if lossy_tag in ("00", "01"):
        lossy: bool | None = lossy_tag == "01"
    elif str(tsuid) in _ALWAYS_LOSSY:
        lossy = True
    elif str(tsuid) in _NEVER_LOSSY:
        lossy = False
    else:
        lossy = None
    bits = ds.get("BitsStored")
    return ImageMetadata(
        source_format="DICOM",
        rows=int(shape[0]),
        cols=int(shape[1]),
        photometric=_text(ds, "PhotometricInterpretation"),
        bits_stored=int(bits) if bits is not None else None,
        frames=frames,
        modality=_text(ds, "Modality"),
        body_part=_text(ds, "BodyPartExamined"),
        view_position=_text(ds, "ViewPosition"),
        pixel_spacing=_spacing(ds),
        transfer_syntax=tsuid.name if tsuid else None,
        transfer_syntax_uid=str(tsuid) if tsuid else None,
        lossy_compression=lossy,
        study_date=_text(ds, "StudyDate"),
        study_description=_text(ds, "StudyDescription"),
        patient_sex=_text(ds, "PatientSex"),
        patient_age=_text(ds, "PatientAge"),
        patient_name=_text(ds, "PatientName"),
        patient_id=_text(ds, "PatientID"),
        patient_birth_date=_text(ds, "PatientBirthDate"),
        accession_number=_text(ds, "AccessionNumber"),
        study_instance_uid=_text(ds, "StudyInstanceUID"),
        series_instance_uid=_text(ds, "SeriesInstanceUID"),
        sop_instance_uid=_text(ds, "SOPInstanceUID"),
        institution_name=_text(ds, "InstitutionName"),
        referring_physician=_text(ds, "ReferringPhysicianName"),
    )


# --------------------------------------------------------------------------- PNG / JPEG


def _png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the PNG IHDR chunk, without PIL."""
    with open(path, "rb") as fh:
        head = fh.read(33)
    if len(head) < 33 or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    if zlib.crc32(head[12:29]) != struct.unpack(">I", head[29:33])[0]:
        return None
    return width, height


def _too_large(path: Path, width: int, height: int, max_pixels: int) -> ImageReadError:
    return ImageReadError(
        path,
        f"image too large: {width} x {height} = {width * height} pixels "
        f"exceeds the limit of {max_pixels} pixels",
    )


def _read_pil(path: Path, fmt: str, max_pixels: int) -> LoadedImage:
    from PIL import Image, ImageOps, UnidentifiedImageError

    if fmt == "PNG":
        size = _png_size(path)
        if size is None:
            raise ImageReadError(path, "corrupt PNG (bad IHDR header)")
        if size[0] * size[1] > max_pixels:
            raise _too_large(path, *size, max_pixels)
    try:
        with Image.open(path, formats=[fmt]) as im:
            width, height = im.size  # header only: nothing decoded yet
            if width * height > max_pixels:
                raise _too_large(path, width, height, max_pixels)
            im.load()
            im = ImageOps.exif_transpose(im) or im
            pixels, photometric, bits, warnings = _pil_to_grey(im)
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageReadError(path, f"image too large: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageReadError(path, f"corrupt {fmt} file (not decodable)") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as exc:
        raise ImageReadError(path, f"corrupt or truncated {fmt} file ({exc})") from exc
    metadata = ImageMetadata(
        source_format=fmt,
        rows=int(pixels.shape[0]),
        cols=int(pixels.shape[1]),
        photometric=photometric,
        bits_stored=bits,
        lossy_compression=fmt == "JPEG",
    )
    return LoadedImage(
        path=str(path),
        pixels=pixels,
        value_range=(float(pixels.min()), float(pixels.max())),
        metadata=metadata,
        warnings=tuple(warnings),
    )


def _pil_to_grey(im: Any) -> tuple[np.ndarray, str, int, list[str]]:
    """(grey float32 pixels, photometric, bits, warnings) for a loaded PIL image."""
    warnings: list[str] = []
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(im).astype(np.float32), "MONOCHROME2", 16, warnings
    if mode in ("I", "F"):
        return np.asarray(im, dtype=np.float32), "MONOCHROME2", 32, warnings
    if mode in ("1", "L"):
        return np.asarray(im.convert("L"), dtype=np.float32), "MONOCHROME2", 8, warnings
    if mode == "LA":
        alpha = np.asarray(im.getchannel("A"))
        if alpha.min() < 255:
            warnings.append("transparency (alpha channel) ignored")
        return np.asarray(im.getchannel("L"), dtype=np.float32), "MONOCHROME2", 8, warnings
    # colour: palette, RGB(A), CMYK, YCbCr, ...
    photometric = "PALETTE COLOR" if mode in ("P", "PA") else "RGB"
    has_alpha = mode in ("RGBA", "PA", "RGBa") or (mode == "P" and "transparency" in im.info)
    rgba = im.convert("RGBA" if has_alpha else "RGB")
    arr = np.asarray(rgba)
    if has_alpha and arr[..., 3].min() < 255:
        warnings.append("transparency (alpha channel) ignored")
    grey, note = _rgb_to_grey(arr[..., :3])
    label = "palette" if photometric == "PALETTE COLOR" else mode
    warnings.append(f"colour image ({label}) converted to grey; {note}")
    return grey, photometric, 8, warnings
