"""Headers of compressed pixel data, parsed without decoding: what a codec is about to allocate.

The DICOM codecs (libjpeg, CharLS, OpenJPEG, the RLE decoder) size their buffers from the
codestream's own header, not from the DICOM Rows and Columns. A file whose codestream claims
30000 x 30000 makes them allocate gigabytes before failing. These parsers read only the headers
(JPEG and JPEG-LS frame headers, the JPEG 2000 SIZ segment, raw or inside JP2 boxes, the RLE
segment table) so that the caller can compare them with the DICOM header and its limits first.

Every parser raises :class:`CodestreamError` (a ``ValueError`` whose message is the cause) for a
header that is malformed or that no decoder could honour; none allocates more than its input.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from itertools import pairwise

#: JPEG frame-header markers: SOF0-SOF3, SOF5-SOF7, SOF9-SOF11, SOF13-SOF15 (C4, C8 and CC are
#: DHT, JPG and DAC) and JPEG-LS SOF55 (F7).
_SOF_MARKERS = frozenset(
    {*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0), 0xF7}
)
_SOS, _EOI, _SOI, _JPEG_LS_SOF = 0xDA, 0xD9, 0xD8, 0xF7
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RST0-7 carry no length
# The next marker after entropy-coded data: 0xFF followed by a byte that is not stuffing (00),
# a restart marker or fill (FF). JPEG-LS stuffs a zero bit instead, so there only bytes >= 0x80
# follow a marker's 0xFF.
_NEXT_MARKER_JPEG = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_NEXT_MARKER_JPEG_LS = re.compile(rb"\xff[\x80-\xcf\xd8-\xfe]")

#: Most scans accepted in one JPEG image. Progressive files use about 10; each scan makes the
#: decoder pass over the whole coefficient buffer again, so thousands of tiny scans are a known
#: way to make a small file decode for minutes (libjpeg-turbo suggests a limit of 500).
MAX_JPEG_SCANS = 500

_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_J2K_SOC_SIZ = b"\xff\x4f\xff\x51"
#: JPEG 2000 numbers tiles with 16 bits (Isot), so a valid image has at most 65535 tiles.
MAX_J2K_TILES = 65535


class CodestreamError(ValueError):
    """A codestream header is malformed or declares something no decoder can honour."""


@dataclass(frozen=True)
class FrameHeader:
    """What a codestream's header says the decoded image will be.

    ``precision`` is the largest bits per sample over the components; ``scans`` counts the
    JPEG scans found (1 for JPEG 2000).
    """

    kind: str  # "JPEG", "JPEG-LS" or "JPEG 2000"
    rows: int
    cols: int
    components: int
    precision: int
    scans: int = 1

    @property
    def decoded_bytes(self) -> int:
        """Bytes of the decoded frame: rows x cols x components x bytes per sample."""
        return self.rows * self.cols * self.components * bytes_per_sample(self.precision)


def bytes_per_sample(bits: int) -> int:
    """Bytes a decoder stores one sample of ``bits`` bits in (1, 2, 4 or 8)."""
    for size in (1, 2, 4, 8):
        if bits <= 8 * size:
            return size
    raise CodestreamError(f"{bits} bits per sample is not supported")


def _u16(data, at: int) -> int:
    if at + 2 > len(data):
        raise CodestreamError("the header is truncated")
    return (data[at] << 8) | data[at + 1]


# --------------------------------------------------------------------------- JPEG, JPEG-LS


def jpeg_header(data: bytes) -> FrameHeader:
    """The frame header of a JPEG (ISO 10918: baseline, extended, lossless...) or JPEG-LS codestream.

    Walks the marker segments from SOI to the first scan strictly, then counts the remaining
    scans (tolerating whatever follows the first scan: trailing padding, vendor garbage).
    Raises :class:`CodestreamError` for a missing SOI or frame header, a height or width of 0
    (height 0 defers the height to a DNL marker, which lets a decoder grow without bound), more
    than one frame header, or more than :data:`MAX_JPEG_SCANS` scans.
    """
    if data[:2] != b"\xff\xd8":
        raise CodestreamError("the JPEG codestream does not start with an SOI marker")
    frame: FrameHeader | None = None
    pos, scans, n = 2, 0, len(data)
    while pos < n:
        if data[pos] != 0xFF:
            raise CodestreamError(f"no JPEG marker at byte {pos} of the codestream")
        while pos + 1 < n and data[pos + 1] == 0xFF:  # fill bytes
            pos += 1
        if pos + 1 >= n:
            break
        marker = data[pos + 1]
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker == _EOI:
            break
        if marker == _SOI:
            raise CodestreamError("a second SOI marker inside the JPEG codestream")
        length = _u16(data, pos + 2)
        end = pos + 2 + length
        if length < 2 or end > n:
            raise CodestreamError(f"JPEG marker segment FF{marker:02X} has an impossible length {length}")
        if marker in _SOF_MARKERS:
            if frame is not None:
                raise CodestreamError("more than one JPEG frame header (hierarchical JPEG is not supported)")
            frame = _jpeg_frame(data, pos, length, marker)
        elif marker == _SOS:
            if frame is None:
                raise CodestreamError("a JPEG scan before the frame header")
            scans = 1
            break
        pos = end
    if frame is None:
        raise CodestreamError("no JPEG frame header (SOF) before the image data")
    if scans:
        scans = _count_scans(data, pos, frame.kind == "JPEG-LS")
    return FrameHeader(frame.kind, frame.rows, frame.cols, frame.components, frame.precision, scans)


def _jpeg_frame(data, pos: int, length: int, marker: int) -> FrameHeader:
    if length < 8:
        raise CodestreamError("the JPEG frame header is truncated")
    precision, rows, cols, components = data[pos + 4], _u16(data, pos + 5), _u16(data, pos + 7), data[pos + 9]
    kind = "JPEG-LS" if marker == _JPEG_LS_SOF else "JPEG"
    if length != 8 + 3 * components or components == 0:
        raise CodestreamError(
            f"the {kind} frame header's length does not match its {components} component(s)"
        )
    if rows == 0 or cols == 0:
        raise CodestreamError(
            f"the {kind} frame header declares {cols} x {rows} pixels (a height of 0, to be set "
            "later by a DNL marker, is not supported)"
        )
    if not 2 <= precision <= 16:
        raise CodestreamError(f"the {kind} frame header declares {precision} bits per sample")
    return FrameHeader(kind, rows, cols, components, precision)


def _count_scans(data, pos: int, jpeg_ls: bool) -> int:
    """Scans from the SOS segment at ``pos`` on, stopping quietly at anything unparseable."""
    next_marker = _NEXT_MARKER_JPEG_LS if jpeg_ls else _NEXT_MARKER_JPEG
    scans, n = 0, len(data)
    while pos + 4 <= n:
        marker = data[pos + 1]
        if marker == _EOI:
            break
        if marker in _STANDALONE:
            pos += 2
            continue
        end = pos + 2 + _u16(data, pos + 2)
        if marker == _SOS:
            scans += 1
            if scans > MAX_JPEG_SCANS:
                raise CodestreamError(f"the JPEG codestream has more than {MAX_JPEG_SCANS} scans")
            found = next_marker.search(data, end)
            if found is None:
                break
            pos = found.start()
        else:
            pos = end
        if pos >= n or data[pos] != 0xFF:
            break
    return max(scans, 1)


# --------------------------------------------------------------------------- JPEG 2000


def j2k_header(data: bytes) -> FrameHeader:
    """The image size from a JPEG 2000 codestream's SIZ segment (raw J2K, or inside a JP2 file).

    Raises :class:`CodestreamError` when the SIZ segment is missing, truncated or inconsistent
    (offsets beyond the size, zero tile sizes, more than :data:`MAX_J2K_TILES` tiles, a
    component precision above 38 bits or a zero subsampling factor), or when a JP2 image header
    box disagrees with it.
    """
    ihdr = None
    start = 0
    if data[:12] == _JP2_SIGNATURE:
        start, ihdr = _jp2_codestream(data)
    if data[start : start + 4] != _J2K_SOC_SIZ:
        raise CodestreamError("the JPEG 2000 codestream does not start with SOC and SIZ markers")
    siz = start + 4
    length = _u16(data, siz)
    if length < 41 or siz + length > len(data):
        raise CodestreamError("the JPEG 2000 SIZ segment is truncated")
    xsiz, ysiz, x0, y0, xt, yt, xt0, yt0 = struct.unpack_from(">8I", data, siz + 4)
    components = _u16(data, siz + 36)
    if not 1 <= components <= 16384 or length != 38 + 3 * components:
        raise CodestreamError(
            f"the JPEG 2000 SIZ segment's length does not match its {components} component(s)"
        )
    if not (x0 < xsiz and y0 < ysiz):
        raise CodestreamError(
            f"the JPEG 2000 SIZ segment declares an empty image ({xsiz - x0} x {ysiz - y0})"
        )
    if xt == 0 or yt == 0 or xt0 > x0 or yt0 > y0 or xt0 + xt <= x0 or yt0 + yt <= y0:
        raise CodestreamError("the JPEG 2000 SIZ segment declares an invalid tiling")
    tiles = -(-(xsiz - xt0) // xt) * -(-(ysiz - yt0) // yt)
    if tiles > MAX_J2K_TILES:
        raise CodestreamError(f"the JPEG 2000 codestream declares {tiles} tiles (at most {MAX_J2K_TILES})")
    precision = 0
    for c in range(components):
        ssiz, xr, yr = data[siz + 38 + 3 * c : siz + 41 + 3 * c]
        bits = (ssiz & 0x7F) + 1
        if bits > 38 or xr == 0 or yr == 0:
            raise CodestreamError(f"the JPEG 2000 SIZ segment has an invalid component {c}")
        precision = max(precision, bits)
    header = FrameHeader("JPEG 2000", ysiz - y0, xsiz - x0, components, precision)
    if ihdr is not None and ihdr != (header.rows, header.cols, components):
        raise CodestreamError(
            f"the JP2 image header box ({ihdr[1]} x {ihdr[0]}, {ihdr[2]} component(s)) disagrees "
            f"with the codestream ({header.cols} x {header.rows}, {components})"
        )
    return header


def _jp2_codestream(data) -> tuple[int, tuple[int, int, int] | None]:
    """(offset of the contiguous codestream, (height, width, components) of the ihdr box)."""
    pos, n, ihdr = 12, len(data), None
    for _ in range(10_000):
        if pos + 8 > n:
            break
        length, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if length == 1:  # 64-bit XLBox
            if pos + 16 > n:
                break
            (length,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif length == 0:  # the last box runs to the end of the file
            length = n - pos
        if length < header:
            raise CodestreamError(f"JP2 box {kind!r} has an impossible length")
        if kind == b"jp2c":
            return pos + header, ihdr
        if kind == b"jp2h":  # a superbox: look inside for ihdr
            inner = data[pos + header : pos + length]
            i = inner.find(b"ihdr")
            if i >= 4 and i + 14 <= len(inner):
                height, width, nc = struct.unpack_from(">IIH", inner, i + 4)
                ihdr = (height, width, nc)
        pos += length
    raise CodestreamError("the JP2 file has no contiguous codestream box")


# --------------------------------------------------------------------------- RLE


def check_rle_frame(data: bytes, expected_segments: int) -> None:
    """Check a DICOM RLE frame's 64-byte header (PS3.5 annex G) against the segments expected.

    ``expected_segments`` is samples per pixel x bytes per sample. Raises
    :class:`CodestreamError` when the header is truncated, the segment count differs, the
    first offset is not 64, or offsets go backwards or past the end of the frame.
    """
    if len(data) < 64:
        raise CodestreamError(f"the RLE frame is only {len(data)} bytes (its header alone is 64)")
    count, *offsets = struct.unpack_from("<16I", data, 0)
    if count != expected_segments:
        raise CodestreamError(
            f"the RLE header lists {count} segment(s) where {expected_segments} are expected"
        )
    used = offsets[:count]
    if used[0] != 64:
        raise CodestreamError(f"the first RLE segment starts at byte {used[0]}, not 64")
    for a, b in pairwise([*used, len(data)]):
        if not a < b <= len(data):
            raise CodestreamError("the RLE segment offsets are out of order or beyond the frame")
