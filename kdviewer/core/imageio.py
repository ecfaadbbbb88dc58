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

Limits (every file is hostile until bounded): a file of at most :data:`MAX_FILE_BYTES`; a decoded
image of at most :data:`MAX_PIXELS` pixels, :data:`MAX_SIDE` per side and :data:`MAX_DECODED_BYTES`
decoded bytes (rows x columns x samples x bytes per sample x frames decoded). They are checked from
the headers before anything large is allocated: PNG IHDR and Pillow's header, the DICOM header, and
the compressed codestream's own header (:mod:`kdviewer.core.codestream`), which must agree with the
DICOM header. Deflated DICOM is inflated incrementally up to a cap; DICOM parsing has a budget of
reads (bounding element counts) and sequences may nest :data:`MAX_SEQUENCE_DEPTH` deep.

Warnings from pydicom and Pillow during a read are captured, never printed: they can quote
identifying values (a malformed Study Instance UID, a name). They come back in
``LoadedImage.warnings`` without the values, e.g. "invalid value for StudyInstanceUID (UI)".
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import logging
import math
import os
import re
import struct
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# pydicom (about 0.17 s to import, measured) is imported in the functions that read DICOM: the
# window and `kdviewer info` import this module at start-up, and the decoding runs in the reader
# process.
from .codestream import CodestreamError, bytes_per_sample, check_rle_frame, j2k_header, jpeg_header
from .errors import ImageReadError
from .image import IDENTIFYING_FIELD_KEYWORDS, ImageMetadata, LoadedImage, Window

log = logging.getLogger(__name__)

#: Largest image accepted, in pixels (Rows x Columns x frames for DICOM): 64 Mi pixels, e.g.
#: 8192 x 8192. The largest chest detectors are about 4300 x 4300 (18 MP) and digitised films
#: rarely exceed 30 MP, so this refuses only absurd or hostile files. One such image costs up to
#: about 256 MB as float32 plus its decoded stored array. It is also below Pillow's own
#: decompression-bomb threshold, so Pillow never warns about an image we accept.
MAX_PIXELS = 64 * 1024 * 1024

#: Largest decoded image accepted, in bytes: rows x columns x samples per pixel x bytes per sample
#: (from BitsAllocated, or the codestream's precision when larger) x frames decoded (one for
#: :func:`read_image`). 256 MiB holds an 8192 x 8192 16-bit grey image twice over, or 8192 x
#: 8192 RGB at 8 bits; it refuses e.g. 8192 x 8192 RGB at 32 bits (768 MiB).
MAX_DECODED_BYTES = 256 * 1024 * 1024

#: Longest side accepted, in pixels: the most DICOM's 16-bit Rows/Columns can say. A PNG of
#: 67108863 x 1 pixels has few pixels but no business in an X-ray viewer.
MAX_SIDE = 65535

#: Largest file accepted. Uncompressed multi-frame DICOM is the only legitimate reason for big
#: files; the whole file is held in memory while reading.
MAX_FILE_BYTES = 1024 * 1024 * 1024

#: Most read calls pydicom may make in one parse of a DICOM file: two or three per data element,
#: so about 20000 elements. Chest X-ray headers have a few hundred; a 10
#: MB file of tiny elements (a million) would otherwise take pydicom a minute to parse.
MAX_DICOM_READS = 60_000

#: Deepest nesting of DICOM sequences accepted (real files rarely exceed 5).
MAX_SEQUENCE_DEPTH = 32

#: Inflated size allowed for a deflated DICOM dataset beyond the pixel limit: room for the header.
_DEFLATE_HEADER_ROOM = 64 * 1024 * 1024

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


def iter_image_files(
    paths: Iterable[str | os.PathLike], on_error: Callable[[Path, str], None] | None = None
) -> Iterator[Path]:
    """The files named by ``paths``: files as given, folders recursed.

    A file argument is always yielded (even if missing or not an image) so that the caller
    reports it. Folders are walked recursively in sorted order, skipping hidden files and
    folders (names starting with "."), and yield files that sniff as images or carry an image
    extension (:data:`IMAGE_SUFFIXES`): a corrupt ``.dcm`` in a folder is reported, not skipped,
    while unrelated files (reports, spreadsheets) are left alone. A folder or sub-folder that
    cannot be listed, or an entry that cannot be examined, goes to ``on_error(path, reason)``
    (default: a logged warning) and the walk goes on.
    """

    def report(path: Path, exc: OSError) -> None:
        reason = exc.strerror or str(exc)
        if on_error is None:
            log.warning("%s: %s", path, reason)
        else:
            on_error(path, reason)

    for p in paths:
        path = Path(p)
        try:
            is_dir = path.is_dir()
        except OSError:  # e.g. a name too long for the file system: read_image reports it
            is_dir = False
        if not is_dir:
            yield path
            continue
        found = []
        for root, dirs, files in os.walk(
            path, onerror=lambda exc, top=path: report(Path(exc.filename or top), exc)
        ):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found.extend(Path(root, f) for f in files if not f.startswith("."))
        for f in sorted(found):
            try:
                # sniffed directly, not through is_image_file, so that an unreadable file is reported
                wanted = f.is_file() and (
                    f.suffix.lower() in IMAGE_SUFFIXES or sniff_format(_read_head(f)) is not None
                )
            except OSError as exc:
                report(f, exc)
                continue
            if wanted:
                yield f


# --------------------------------------------------------------------------- entry point


def read_image(
    path: str | os.PathLike,
    *,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_DECODED_BYTES,
    reduce_to: int | None = None,
) -> LoadedImage:
    """Read a DICOM, PNG or JPEG file (detected by content) into a :class:`LoadedImage`.

    Raises :class:`ImageReadError` naming the file and the cause for anything that prevents
    reading: missing or empty file, unknown format, truncated or corrupt data, no pixel data,
    a transfer syntax no installed codec decodes, an image above the limits (``max_pixels``
    pixels, ``max_bytes`` decoded bytes, :data:`MAX_SIDE` per side, :data:`MAX_FILE_BYTES`), or
    non-finite pixel values. Nothing else escapes, whatever a codec raises (native codecs'
    ``BaseException`` subclasses included), except ``KeyboardInterrupt``, ``SystemExit`` and
    ``GeneratorExit``. See the module docstring for the value space of the returned pixels.

    ``reduce_to`` asks for a faster, smaller decode where the format has one built in: JPEG
    2000 pixel data is then decoded at half resolution (its wavelet low-pass band, an
    antialiased downscale that costs about a quarter of the full decode) when the smaller
    side stays at least ``reduce_to``. The result's ``metadata.rows``/``cols`` keep the full
    geometry, so heat maps still overlay the full image. Used for the model path, never for
    display; other formats are unaffected.
    """
    path = Path(path)
    notes: list[str] = []
    try:
        with captured_warnings(notes):
            image = _read(path, max_pixels, max_bytes, reduce_to, notes)
    except ImageReadError:
        raise
    except MemoryError:
        raise ImageReadError(path, "not enough memory to decode the image") from None
    except Exception as exc:  # any library failure on a bad file becomes the documented error
        log.debug("unexpected failure reading %s", path, exc_info=True)
        raise ImageReadError(path, f"cannot read the file ({_describe(exc)})") from exc
    except BaseException as exc:  # native codecs' panics (pyo3's PanicException) are BaseExceptions
        _reraise_interrupts(exc)
        raise ImageReadError(path, f"the decoder failed ({_describe(exc)})") from None
    if notes:
        extra = tuple(n for n in dict.fromkeys(notes) if n not in image.warnings)
        image = dataclasses.replace(image, warnings=image.warnings + extra[:_MAX_NOTES])
    return image


def _read(
    path: Path, max_pixels: int, max_bytes: int, reduce_to: int | None, notes: list[str]
) -> LoadedImage:
    if not path.is_file():
        raise ImageReadError(path, "no such file" if not path.exists() else "not a file")
    size = path.stat().st_size
    if size == 0:
        raise ImageReadError(path, "the file is empty")
    if size > MAX_FILE_BYTES:
        raise ImageReadError(path, f"the file is {size} bytes, more than the limit of {MAX_FILE_BYTES}")
    fmt = sniff_format(_read_head(path))
    if fmt is None:
        raise ImageReadError(path, "not a recognised image format (expected DICOM, PNG or JPEG)")
    if fmt != "DICOM":
        return _read_pil(path, fmt, max_pixels, max_bytes)
    ds = read_dicom_dataset(path, max_pixels=max_pixels, max_bytes=max_bytes, notes=notes)
    check_pixel_data(ds, frame=0, max_bytes=max_bytes, path=path)
    stored = _decode_j2k_reduced(ds, reduce_to) if reduce_to else None
    if stored is None:
        stored = _decode(ds, 0, path)
    return image_from_dicom(path, ds, stored)


def _reraise_interrupts(exc: BaseException) -> None:
    if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
        raise exc


#: Most captured warnings added to one image's warnings.
_MAX_NOTES = 10
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def _scrub(message: str) -> str:
    """A library message without the values it quotes (they may identify a patient)."""
    text = _QUOTED.sub("'…'", str(message)).split(". Please see")[0]
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:199] + "…"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {_scrub(exc)}"


@contextlib.contextmanager
def captured_warnings(notes: list[str]):
    """Collect warnings (scrubbed of values) into ``notes`` and keep pydicom's log off stderr.

    pydicom both warns and logs what it finds malformed, quoting the value; a decoder failure
    is logged with a traceback. Neither may reach the user's terminal. Not thread-safe (Python's
    warning filters are global): reads in threads go through :mod:`kdviewer.core.readpool`.
    """
    pydicom_log = logging.getLogger("pydicom")
    propagate = pydicom_log.propagate
    pydicom_log.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        pydicom_log.propagate = propagate
        notes.extend(_scrub(w.message) for w in caught)


# --------------------------------------------------------------------------- DICOM


def read_dicom_dataset(
    path: str | os.PathLike,
    *,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_DECODED_BYTES,
    notes: list[str] | None = None,
):
    """Parse a DICOM file (with or without preamble and File Meta) and check it holds an image.

    The header is parsed first (within a budget of :data:`MAX_DICOM_READS` reads and
    :data:`MAX_SEQUENCE_DEPTH` levels of sequences), every value converted, and the size of one
    frame checked against ``max_pixels``, ``max_bytes`` and :data:`MAX_SIDE`; only then is the
    pixel data read. Deflated datasets are inflated once, incrementally, up to ``max_bytes``
    plus room for the header. Files without File Meta get a Transfer Syntax UID from the
    encoding pydicom detected (implicit VR little endian, the standard's default). Values
    pydicom finds invalid are named in ``notes`` (keyword and VR, never the value). Returns the
    full pydicom Dataset (pixel data included); raises :class:`ImageReadError` otherwise.
    """
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    notes = [] if notes is None else notes
    try:
        with _dicom_source(path, max_bytes + _DEFLATE_HEADER_ROOM) as source:
            header = source.parse(stop_before_pixels=True)
            _check_parsed(path, header)
            _check_image_header(path, header, max_pixels, max_bytes)
            ds = source.parse(stop_before_pixels=False)
            _convert_all(path, ds, notes, 0)
    except ImageReadError:
        raise
    except MemoryError:
        raise ImageReadError(path, "not enough memory to read the file") from None
    except InvalidDicomError as exc:
        raise ImageReadError(path, f"not a valid DICOM file ({_scrub(exc)})") from exc
    except Exception as exc:  # pydicom raises many types on damaged files
        raise ImageReadError(path, f"corrupt or truncated DICOM ({_describe(exc)})") from exc
    if "PixelData" not in ds:
        raise ImageReadError(path, "DICOM pixel data missing or cut off (file truncated?)")
    _ensure_transfer_syntax(path, ds)
    return ds


def read_dicom_header(path: str | os.PathLike) -> ImageMetadata:
    """The metadata of a DICOM file from its header alone: the pixel data is never read, so a
    header-only decision (:func:`kdviewer.core.scope.header_verdict`) works on a file whose
    pixels are damaged. Parsed within the same read budget as :func:`read_dicom_dataset`; raises
    :class:`ImageReadError` naming the file and the cause."""
    path = Path(path)
    try:
        with _dicom_source(path, _DEFLATE_HEADER_ROOM) as source:
            ds = source.parse(stop_before_pixels=True)
            _check_parsed(path, ds)
            rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
            return _dicom_metadata(ds, (rows, cols), _frames(ds))
    except ImageReadError:
        raise
    except Exception as exc:  # pydicom raises many types on damaged files
        raise ImageReadError(path, f"corrupt or truncated DICOM header ({_describe(exc)})") from exc


class _ReadBudget:
    """A file object for pydicom that allows a limited number of reads.

    pydicom parses nested sequences without any callback, so counting its reads is the one way
    to bound the work a file of a million tiny elements causes.
    """

    def __init__(self, raw, budget: int, name: str):
        self._raw, self.left, self.name = raw, budget, name
        self._end = raw.seek(0, os.SEEK_END)
        raw.seek(0)

    def read(self, size: int = -1) -> bytes:
        self.left -= 1
        if self.left < 0:
            raise _BudgetExceeded
        # an element may claim 4 GB in a 1 kB file: never ask for more than the file holds
        return self._raw.read(max(0, min(self._end - self._raw.tell(), size if size >= 0 else self._end)))

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()


class _BudgetExceeded(Exception):
    pass


class _DicomSource:
    """Parses one DICOM file, possibly twice (header, then everything), within the read budget."""

    def __init__(self, path: Path, raw, deflated_meta=None):
        self.path, self._raw, self._deflated_meta = path, raw, deflated_meta

    def parse(self, *, stop_before_pixels: bool):
        from pydicom.filereader import read_partial

        self._raw.seek(0)
        budget = _ReadBudget(self._raw, MAX_DICOM_READS, str(self.path))
        stop = _at_pixel_data if stop_before_pixels else None
        try:
            ds = read_partial(budget, stop, force=True)
        except Exception:
            if budget.left < 0:
                raise ImageReadError(
                    self.path, f"too many DICOM data elements (more than about {MAX_DICOM_READS // 3})"
                ) from None
            raise
        # the dataset must not hold on to (or try to pickle) our file object
        ds.filename, ds.buffer, ds.fileobj_type = str(self.path), None, open
        if self._deflated_meta is not None:
            ds.file_meta = self._deflated_meta
        return ds


def _at_pixel_data(tag, vr, length) -> bool:
    return tag in (0x7FE00010, 0x7FE00008, 0x7FE00009)


@contextlib.contextmanager
def _dicom_source(path: Path, inflate_cap: int):
    """A :class:`_DicomSource` for the file; deflated datasets are inflated here, once."""
    with open(path, "rb") as fh:
        meta = _deflated_file_meta(fh)
        if meta is None:
            yield _DicomSource(path, fh)
            return
        yield _DicomSource(path, _inflate(path, fh, meta, inflate_cap), deflated_meta=meta)


def _deflated_file_meta(fh):
    """The File Meta of a Deflated Explicit VR Little Endian file (read position after it), or None."""
    from pydicom.filereader import _read_file_meta_info, read_preamble
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    try:
        # pydicom has no public way to read the File Meta and stay positioned after it
        budget = _ReadBudget(fh, MAX_DICOM_READS, fh.name)
        read_preamble(budget, True)
        meta = _read_file_meta_info(budget)
    except Exception:  # whatever is wrong is reported by the real parse
        meta = None
    if meta is None or meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        fh.seek(0)
        return None
    return meta


def _inflate(path: Path, fh, meta, cap: int) -> io.BytesIO:
    """A file image of the deflated file with its dataset inflated (at most ``cap`` bytes).

    pydicom itself inflates the whole dataset in one call, on every parse; here it is inflated
    once, a few MiB at a time, and refused as soon as it passes the cap.
    """
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import ExplicitVRLittleEndian

    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    out.write(bytes(128) + b"DICM")
    plain = copy.deepcopy(meta)  # Dataset.copy() would share the elements with ``meta``
    plain.TransferSyntaxUID = ExplicitVRLittleEndian
    write_file_meta_info(out, plain, enforce_standard=False)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    inflated = 0
    while not inflater.eof:
        data = fh.read(1 << 20)
        if not data:
            break
        while data and not inflater.eof:
            chunk = inflater.decompress(data, 1 << 22)
            inflated += len(chunk)
            if inflated > cap:
                raise ImageReadError(
                    path, f"the deflated dataset inflates to more than {cap} bytes (a decompression bomb?)"
                )
            out.write(chunk)
            data = inflater.unconsumed_tail
    out.seek(0)
    return out


def _check_parsed(path: Path, ds) -> None:
    """Reject what ``force=True`` turned into a dataset but is not DICOM."""
    if len(ds) == 0:
        raise ImageReadError(path, "not a DICOM file (no data elements found)")
    known = {"SOPClassUID", "Modality", "Rows", "Columns", "PatientID", "StudyInstanceUID"}
    if not any(k in ds for k in known):
        raise ImageReadError(path, "not a DICOM file (no recognisable DICOM attributes)")


def _convert_all(path: Path, ds, notes: list[str], depth: int) -> None:
    """Convert every value now (garbage fails here, not later in a viewer), naming invalid ones."""
    from pydicom.multival import MultiValue

    if depth > MAX_SEQUENCE_DEPTH:
        raise ImageReadError(path, f"DICOM sequences nested more than {MAX_SEQUENCE_DEPTH} levels deep")
    for tag in list(ds.keys()):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                elem = ds[tag]
                value = elem.value
            except Exception as exc:
                raise ImageReadError(
                    path, f"corrupt DICOM header (cannot read {_element_name(ds, tag)})"
                ) from exc
        if caught:  # pydicom's validation: its message quotes the value, ours names the element
            notes.append(f"invalid value for {_element_name(ds, tag)}")
        if elem.VR == "SQ":
            for item in value:
                _convert_all(path, item, notes, depth + 1)
        elif elem.VR == "PN" and isinstance(value, MultiValue):
            # pydicom 3.0 builds multi-valued names with a local function, which cannot be
            # pickled (the dataset travels back from the reader process); set anew, they can
            elem.value = list(value)


def _element_name(ds, tag) -> str:
    from pydicom.datadict import keyword_for_tag
    from pydicom.tag import Tag

    tag = Tag(tag)
    raw = ds.get_item(tag)
    vr = getattr(raw, "VR", None) or "??"
    return f"{keyword_for_tag(tag) or str(tag)} ({vr})"


def _check_image_header(path: Path, ds, max_pixels: int, max_bytes: int) -> None:
    if "Rows" not in ds or "Columns" not in ds:
        sop = ds.get("SOPClassUID")
        what = f" ({sop.name})" if sop is not None else ""
        raise ImageReadError(path, f"DICOM file has no pixel data{what}")
    rows, cols = int(ds.Rows or 0), int(ds.Columns or 0)
    bits = int(ds.get("BitsAllocated", 16) or 16)
    if not 1 <= bits <= 64:
        raise ImageReadError(path, f"DICOM image has an invalid BitsAllocated {bits}")
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    _check_size(
        path, rows, cols, samples, bytes_per_sample(bits), max_pixels, max_bytes, f"{_frames(ds)} frame(s)"
    )


def _check_size(
    path,
    rows: int,
    cols: int,
    samples: int,
    sample_bytes: int,
    max_pixels: int,
    max_bytes: int,
    frames: str = "",
) -> None:
    """Refuse an image of one decoded frame that breaks a limit (see the module docstring)."""
    what = f"{rows} x {cols}" + (f" x {frames}" if frames else "")
    if rows <= 0 or cols <= 0 or samples <= 0:
        raise ImageReadError(path, f"the image has an invalid size {what} with {samples} sample(s) per pixel")
    if rows > MAX_SIDE or cols > MAX_SIDE:
        raise ImageReadError(path, f"image too large: {what}: a side exceeds the limit of {MAX_SIDE} pixels")
    if rows * cols > max_pixels:
        raise ImageReadError(
            path, f"image too large: {what} = {rows * cols} pixels exceeds the limit of {max_pixels} pixels"
        )
    decoded = rows * cols * samples * sample_bytes
    if decoded > max_bytes:
        raise ImageReadError(
            path,
            f"image too large: {what} with {samples} sample(s) of {sample_bytes} byte(s) decodes to "
            f"{decoded} bytes, more than the limit of {max_bytes}",
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


def check_pixel_data(ds, *, frame: int | None = 0, max_bytes: int = MAX_DECODED_BYTES, path=None) -> None:
    """Check that decoding ``frame`` (all frames when None) of a dataset stays within the limits.

    For compressed pixel data, each frame's codestream header (JPEG, JPEG-LS, JPEG 2000 SIZ,
    RLE segment table; see :mod:`kdviewer.core.codestream`) must agree with Rows, Columns and
    SamplesPerPixel, and the bytes it decodes to must stay within ``max_bytes``. Raises
    :class:`ImageReadError` otherwise; decodes nothing.
    """
    from pydicom.encaps import get_frame
    from pydicom.uid import (
        JPEG2000TransferSyntaxes,
        JPEGLSTransferSyntaxes,
        JPEGTransferSyntaxes,
        RLELossless,
    )

    where = path or getattr(ds, "filename", None) or "<dataset>"
    tsuid = ds.file_meta.TransferSyntaxUID
    frames = _frames(ds)
    rows, cols = int(ds.Rows), int(ds.Columns)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.get("BitsAllocated", 16) or 16)
    indices = range(frames) if frame is None else [0 if frames == 1 else int(frame)]
    if len(indices) * rows * cols * samples * bytes_per_sample(bits) > max_bytes:
        raise ImageReadError(
            where, f"image too large: {len(indices)} frames of {rows} x {cols} exceed {max_bytes} bytes"
        )
    if not tsuid.is_encapsulated:
        return  # native data: pydicom allocates what the header says, checked above
    if not ds["PixelData"].is_undefined_length:
        raise ImageReadError(where, f"pixel data in {tsuid.name} is not encapsulated")
    offsets = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        offsets = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    for index in indices:
        try:
            data = get_frame(ds.PixelData, index, number_of_frames=frames, extended_offsets=offsets)
        except Exception as exc:
            raise ImageReadError(where, f"corrupt encapsulated pixel data ({_describe(exc)})") from exc
        try:
            if tsuid == RLELossless:
                check_rle_frame(data, samples * bytes_per_sample(bits))
                continue
            if tsuid in JPEGTransferSyntaxes or tsuid in JPEGLSTransferSyntaxes:
                header = jpeg_header(data)
            elif tsuid in JPEG2000TransferSyntaxes:
                header = j2k_header(data)
            else:
                continue  # no installed decoder: decoding fails with its own message
        except CodestreamError as exc:
            raise ImageReadError(where, f"corrupt {tsuid.name} pixel data: {exc}") from None
        if (header.rows, header.cols, header.components) != (rows, cols, samples):
            raise ImageReadError(
                where,
                f"the {header.kind} codestream says {header.rows} x {header.cols} with {header.components} "
                f"component(s) but the DICOM header says {rows} x {cols} with {samples}",
            )
        if header.decoded_bytes > max_bytes:
            raise ImageReadError(
                where,
                f"image too large: the {header.kind} codestream decodes to {header.decoded_bytes} bytes, "
                f"more than the limit of {max_bytes}",
            )


def decode_stored_pixels(
    ds,
    *,
    frame: int | None = 0,
    path: str | os.PathLike | None = None,
    max_bytes: int = MAX_DECODED_BYTES,
) -> np.ndarray:
    """Decode the stored pixel values of a dataset from :func:`read_dicom_dataset`.

    Returns pydicom's array before any LUT or inversion: (rows, cols) or (rows, cols, 3) for
    ``frame`` (0-based; ignored for single-frame images), or every frame when ``frame`` is None
    (then the same array as ``ds.pixel_array``). YBR colour is converted to RGB, as pydicom does
    by default. The decode is checked first (:func:`check_pixel_data`). Raises
    :class:`ImageReadError` when a limit is broken or no installed codec can decode the data.
    """
    check_pixel_data(ds, frame=frame, max_bytes=max_bytes, path=path)
    return _decode(ds, frame, path)


def _decode(ds, frame: int | None, path) -> np.ndarray:
    from pydicom.pixels import pixel_array

    where = path or getattr(ds, "filename", None) or "<dataset>"
    tsuid = ds.file_meta.TransferSyntaxUID
    index = None if (frame is None or _frames(ds) == 1) else int(frame)
    try:
        return pixel_array(ds, index=index)
    except MemoryError:
        raise ImageReadError(where, "not enough memory to decode the image") from None
    except BaseException as exc:  # BaseException: the RLE decoder panics (pyo3) on some bad data
        _reraise_interrupts(exc)
        detail = " ".join(line.strip() for line in str(exc).strip().splitlines()[:3])
        if not isinstance(exc, Exception):
            detail = f"{type(exc).__name__}: {detail}"
        if tsuid.is_compressed:
            cause = (
                f"cannot decode pixel data compressed as {tsuid.name} ({tsuid}): "
                f"no installed codec could decode it ({detail})"
            )
        else:
            cause = f"corrupt or truncated pixel data in {tsuid.name} ({detail})"
        raise ImageReadError(where, cause) from (exc if isinstance(exc, Exception) else None)


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
    value_range = _finite_range(path, pixels)
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
    if not (math.isfinite(slope) and math.isfinite(intercept)):
        where = getattr(ds, "filename", None) or "<dataset>"
        raise ImageReadError(
            where, f"RescaleSlope {slope} / RescaleIntercept {intercept} is not a finite number"
        )
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
    for i, (c, w) in enumerate(zip(centers, widths, strict=False)):
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


def _finite_range(path, pixels: np.ndarray) -> tuple[float, float]:
    """(min, max) of the pixels; non-finite values (a NaN, or an overflowing rescale) are an error."""
    lo, hi = float(pixels.min()), float(pixels.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ImageReadError(
            path, "pixel values are not finite numbers after the Modality LUT (NaN or overflow)"
        )
    return lo, hi


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
        **{name: _text(ds, keyword) for name, keyword in IDENTIFYING_FIELD_KEYWORDS.items()},
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


#: Bytes per pixel of Pillow's in-memory image by mode: one for 1, L and P, two for the 16-bit
#: modes, four for everything else (Pillow pads RGB to four bytes).
_PIL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}


def _read_pil(path: Path, fmt: str, max_pixels: int, max_bytes: int) -> LoadedImage:
    if fmt == "PNG":
        size = _png_size(path)
        if size is None:
            raise ImageReadError(path, "corrupt PNG (bad IHDR header)")
        _check_size(path, size[1], size[0], 1, 1, max_pixels, max_bytes)
    else:
        try:  # the frame header, and a bound on the scans a progressive file makes libjpeg run
            jpeg_header(path.read_bytes())
        except CodestreamError as exc:
            raise ImageReadError(path, f"corrupt or hostile JPEG file: {exc}") from None
    try:
        with Image.open(path, formats=[fmt]) as im:
            width, height = im.size  # header only: nothing decoded yet
            _check_size(path, height, width, 1, _PIL_BYTES.get(im.mode, 4), max_pixels, max_bytes)
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
