"""Hostile image files for the reader, generated deterministically from a seed.

Each :class:`Case` is a file's bytes plus the name of the class of attack it belongs to. The
classes are the ways a small file can make a reader allocate or compute without bound, or make a
codec fail in a way it does not document:

* codestream headers that lie: JPEG frame headers (baseline, extended, lossless, progressive)
  with a height of 0 or sides of 30000+, JPEG-LS SOF55 of 30000², JPEG 2000 SIZ sizes, offsets,
  tilings, components and precisions (raw and inside JP2 boxes), RLE segment tables;
* RLE segment data that crashes the native decoder;
* deflate bombs (a deflated DICOM that inflates to hundreds of MB or more);
* DICOM headers with huge Rows x Columns x SamplesPerPixel x BitsAllocated x frames;
* PNG of 67108863 x 1, PNG/JPEG decompression bombs, zTXt bombs, JPEGs with hundreds of scans;
* NaN, infinite or overflowing RescaleSlope/RescaleIntercept;
* DICOM structure: tens of thousands of elements, deep sequence nesting, impossible lengths;
* truncations and random bit flips of well-formed synthetic files of every transfer syntax, and
  of the shared DICOM corpus when it is present.

``expect_error`` marks cases no correct reader may accept. Used by ``tests/core/test_fuzz.py``
(a few hundred cases) and ``benchmarks/fuzz.py`` (thousands).
"""

from __future__ import annotations

import functools
import io
import random
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom import config
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEGBaseline8Bit, JPEGLosslessSV1

from tests.core import dicom_factory as fac


@dataclass(frozen=True)
class Case:
    """One hostile file: ``data`` is written to a file named ``name`` + ``suffix``."""

    kind: str
    name: str
    data: bytes
    suffix: str = ".dcm"
    expect_error: bool = False
    read_kwargs: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- well-formed bases


@functools.cache
def _dicom(ts: str, rows: int = 64, cols: int = 60, bits: int = 12) -> bytes:
    stored = fac.ramp(rows, cols, 0, 2**bits - 1, np.uint16 if bits > 8 else np.uint8)
    return fac.encode(fac.make_dataset(stored, bits_stored=bits), ts)


@functools.cache
def _jpeg_bytes(rows: int = 64, cols: int = 60, progressive: bool = False) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(fac.ramp(rows, cols, 0, 255, np.uint8)).save(
        out, "JPEG", quality=90, progressive=progressive
    )
    return out.getvalue()


@functools.cache
def _jpeg_dicom(rows: int = 64, cols: int = 60) -> bytes:
    ds = fac.make_dataset(fac.ramp(rows, cols, 0, 255, np.uint8))
    return fac.encode_encapsulated(ds, JPEGBaseline8Bit, [_jpeg_bytes(rows, cols)])


@functools.cache
def _png_bytes(mode: str = "L") -> bytes:
    from PIL import Image

    out = io.BytesIO()
    arr = fac.ramp(48, 40, 0, 255, np.uint8)
    img = Image.fromarray(arr).convert(mode)
    img.save(out, "PNG")
    return out.getvalue()


def _pixel_data_at(data: bytes) -> int:
    """Offset of the (7FE0,0010) Pixel Data tag in an explicit VR little endian file."""
    return data.rindex(b"\xe0\x7f\x10\x00")


def _first_fragment_at(data: bytes) -> int:
    """Offset of the first fragment's content in encapsulated pixel data (after the offset table)."""
    pos = _pixel_data_at(data) + 12  # tag, VR, reserved, length
    (bot_len,) = struct.unpack_from("<I", data, pos + 4)
    return pos + 8 + bot_len + 8


def _patch(data: bytes, at: int, fmt: str, *values) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, at, *values)
    return bytes(out)


# --------------------------------------------------------------------------- codestream lies

_HUGE_SIDES = [(0, 60), (64, 0), (30000, 60), (64, 30000), (30000, 30000), (65535, 65535), (1, 1), (65, 60)]


def jpeg_sof(rng: random.Random) -> Case:
    data = _jpeg_dicom()
    rows, cols = rng.choice(_HUGE_SIDES)
    sof = data.index(b"\xff\xc0", _pixel_data_at(data))
    data = _patch(data, sof + 5, ">HH", rows, cols)
    marker = rng.choice([0xC0, 0xC1, 0xC2, 0xC3, 0xC9, 0xCB])  # baseline, extended, progressive, lossless...
    data = _patch(data, sof + 1, "B", marker)
    if marker == 0xC3:
        data = data.replace(str(JPEGBaseline8Bit).encode(), str(JPEGLosslessSV1).encode().ljust(22, b"\0"))
    if rng.random() < 0.3:
        data = _patch(data, sof + 4, "B", rng.choice([0, 1, 17, 255]))  # precision
    return Case(
        "jpeg-sof", f"jpeg-sof-{marker:02X}-{rows}x{cols}", data, expect_error=(rows, cols) != (64, 60)
    )


def jpeg_ls_sof(rng: random.Random) -> Case:
    data = _dicom("jpeg_ls_lossless")
    rows, cols = rng.choice(_HUGE_SIDES)
    sof = data.index(b"\xff\xf7", _pixel_data_at(data))
    data = _patch(data, sof + 5, ">HH", rows, cols)
    return Case("jpeg-ls-sof", f"jpeg-ls-{rows}x{cols}", data, expect_error=True)


@functools.cache
def _j2k_reducible() -> bytes:
    return _dicom("j2k_lossless", 512, 480, 12)


def j2k_siz(rng: random.Random) -> Case:
    data = _j2k_reducible() if rng.random() < 0.3 else _dicom("j2k_lossless")
    siz = data.index(b"\xff\x4f\xff\x51", _pixel_data_at(data)) + 4
    what = rng.choice(["size", "offset", "tiles", "components", "precision", "subsampling", "jp2"])
    if what == "size":
        xs, ys = rng.choice([(30000, 30000), (65535, 1), (2**32 - 1, 2**32 - 1), (1, 1 << 20), (0, 0)])
        data = _patch(data, siz + 4, ">II", xs, ys)
    elif what == "offset":
        data = _patch(data, siz + 12, ">II", rng.choice([60, 1 << 30]), rng.choice([64, 1 << 30]))
    elif what == "tiles":
        data = _patch(data, siz + 4, ">IIIIII", 30000, 30000, 0, 0, 1, rng.choice([0, 1, 7]))
    elif what == "components":
        data = _patch(data, siz + 36, ">H", rng.choice([0, 3, 16384, 65535]))
    elif what == "precision":
        data = _patch(data, siz + 38, "B", rng.choice([37, 0x7F, 0xFF, 15]))
    elif what == "subsampling":
        data = _patch(data, siz + 39, "BB", 0, rng.choice([0, 255]))
    if what == "jp2":  # the same codestream wrapped in JP2 boxes, with an image header that may lie
        start = siz - 4
        end = data.index(b"\xff\xd9", start) + 2
        stream = data[start:end]
        h, w = rng.choice([(64, 60), (30000, 30000), (0, 0)])
        ihdr = struct.pack(">I4sIIHBBBB", 22, b"ihdr", h, w, 1, 11, 7, 0, 0)
        jp2 = (
            b"\x00\x00\x00\x0cjP  \r\n\x87\n"
            + struct.pack(">I4s4sI4s", 20, b"ftyp", b"jp2 ", 0, b"jp2 ")
            + struct.pack(">I4s", 8 + len(ihdr), b"jp2h") + ihdr
            + struct.pack(">I4s", 8 + len(stream), b"jp2c") + stream
        )  # fmt: skip
        ds = pydicom.dcmread(io.BytesIO(data))
        stream_rows, stream_cols = int(ds.Rows), int(ds.Columns)
        data = fac.encode_encapsulated(ds, ds.file_meta.TransferSyntaxUID, [jp2])
        return Case("j2k-siz", f"jp2-ihdr-{h}x{w}", data, expect_error=(h, w) != (stream_rows, stream_cols))
    expect = what not in ("precision",)
    return Case("j2k-siz", f"j2k-{what}", data, expect_error=expect, read_kwargs={"reduce_to": 224})


def rle_header(rng: random.Random) -> Case:
    data = _dicom("rle", *rng.choice([(4, 4, 16), (64, 60, 12), (3, 5, 8)]))
    at = _first_fragment_at(data)
    what = rng.choice(["count", "first", "order", "beyond", "random"])
    count, first, second = struct.unpack_from("<III", data, at)
    if what == "count":
        data = _patch(data, at, "<I", rng.choice([0, 1, 3, 15, 16, 2**31]))
    elif what == "first":
        data = _patch(data, at + 4, "<I", rng.choice([0, 63, 65, 2**32 - 1]))
    elif what == "order" and count > 1:
        data = _patch(data, at + 8, "<I", rng.choice([first, first - 1, 1]))
    elif what == "beyond":
        data = _patch(data, at + 4 * count, "<I", rng.choice([10**6, 2**32 - 1]))
    else:
        out = bytearray(data)
        for _ in range(rng.randint(1, 16)):
            out[at + rng.randrange(64)] = rng.randrange(256)
        data = bytes(out)
    return Case("rle-header", f"rle-{what}", data)


def rle_data(rng: random.Random) -> Case:
    """Damage inside the RLE segments: the native decoder panicked on some (pyo3 PanicException)."""
    data = bytearray(_dicom("rle", *rng.choice([(4, 4, 16), (4, 4, 8), (16, 12, 16)])))
    at = _first_fragment_at(bytes(data)) + 64
    for _ in range(rng.randint(1, 3)):
        data[rng.randrange(at, len(data))] = rng.randrange(256)
    return Case("rle-data", "rle-data", bytes(data))


# --------------------------------------------------------------------------- bombs


_BLOCK = 1 << 22


@functools.cache
def _deflated_zero_block() -> bytes:
    """4 MiB of zeros deflated as a self-contained, byte-aligned run of blocks (history reset)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    comp.compress(b"")
    return comp.compress(bytes(_BLOCK)) + comp.flush(zlib.Z_FULL_FLUSH)


def _deflate_zeros(prefix: bytes, zeros: int, raw: bool = False) -> bytes:
    """``prefix`` then ``zeros`` zero bytes, deflated (raw, or in zlib's wrapper), in milliseconds.

    A full flush resets the compressor's history, so one compressed block of zeros can be
    repeated: a 1 GB bomb is made without compressing 1 GB.
    """
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = comp.compress(prefix) + comp.flush(zlib.Z_FULL_FLUSH)
    count, rest = divmod(zeros, _BLOCK)
    tail = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = head + _deflated_zero_block() * count + tail.compress(bytes(rest)) + tail.flush()
    if raw:
        return body
    check = zlib.adler32(prefix)
    block = bytes(_BLOCK)
    for _ in range(count):
        check = zlib.adler32(block, check)
    check = zlib.adler32(bytes(rest), check)
    return b"\x78\xda" + body + struct.pack(">I", check)


@functools.cache
def _deflate_bomb(inflated_mb: int, where: str) -> bytes:
    """A deflated DICOM whose dataset inflates to ``inflated_mb`` MB (zeros in a private OB or the pixels)."""
    ds = fac.make_dataset(fac.ramp(8, 8))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    plain = io.BytesIO()
    head = ds.copy()
    del head.PixelData
    pydicom.dcmwrite(plain, head, implicit_vr=False, little_endian=True)
    body = plain.getvalue()
    size = inflated_mb * 1_000_000
    if where == "private":
        body += struct.pack("<HH2sHI", 0x0009, 0x1000, b"OB", 0, size)
    else:
        body += struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, size)
    deflated = _deflate_zeros(body, size, raw=True)
    fm = DicomBytesIO()
    fm.is_little_endian, fm.is_implicit_VR = True, False
    write_file_meta_info(fm, ds.file_meta, enforce_standard=True)
    return bytes(128) + b"DICM" + fm.getvalue() + deflated


def deflate_bomb(rng: random.Random, sizes: tuple[int, ...] = (400,)) -> Case:
    mb, where = rng.choice(sizes), rng.choice(["private", "pixels"])
    return Case("deflate-bomb", f"deflate-{mb}MB-{where}", _deflate_bomb(mb, where), expect_error=True)


def header_dims(rng: random.Random) -> Case:
    ds = fac.make_dataset(fac.ramp(8, 8))
    ds.Rows, ds.Columns = rng.choice([(65535, 65535), (30000, 30000), (8192, 8192), (0, 8), (8, 65535)])
    ds.SamplesPerPixel = rng.choice([1, 3, 255, 65535])
    ds.BitsAllocated = rng.choice([8, 16, 32, 64, 255])
    if rng.random() < 0.5:
        ds.NumberOfFrames = rng.choice([2, 1000, 2**31 - 1])
    ts = rng.choice(["explicit_le", "implicit_le"])
    name = f"dims-{ds.Rows}x{ds.Columns}x{ds.SamplesPerPixel}x{ds.BitsAllocated}"
    return Case("header-dims", name, fac.encode(ds, ts), expect_error=True)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


@functools.cache
def _constant_png(width: int, height: int, colour_type: int = 0, depth: int = 8) -> bytes:
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    idat = _deflate_zeros(b"", height * (1 + width * channels * depth // 8))  # filter 0, black pixels
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


@functools.cache
def _ztxt_bomb() -> bytes:
    """A small PNG with a text chunk that inflates to 100 MB (Pillow caps text chunks)."""
    text = _deflate_zeros(b"", 100_000_000)
    base = _png_bytes()
    return base[:33] + _png_chunk(b"zTXt", b"Comment\x00\x00" + text) + base[33:]


def png_bomb(rng: random.Random) -> Case:
    what = rng.choice(["wide", "tall", "square", "rgba", "ztxt", "ihdr-lie"])
    if what == "wide":
        return Case("png-bomb", "png-67108863x1", _constant_png(67108863, 1), ".png", expect_error=True)
    if what == "tall":
        return Case("png-bomb", "png-1x67108863", _constant_png(1, 67108863), ".png", expect_error=True)
    if what == "square":
        return Case("png-bomb", "png-20000x20000", _constant_png(20000, 20000), ".png", expect_error=True)
    if what == "rgba":
        return Case(
            "png-bomb", "png-rgba16-9000x9000", _constant_png(9000, 9000, 6, 16), ".png", expect_error=True
        )
    base = _png_bytes()
    if what == "ztxt":
        return Case("png-bomb", "png-ztxt", _ztxt_bomb(), ".png")
    width, height = rng.choice([(0, 48), (40, 0), (2**31 - 1, 2**31 - 1), (40000, 40000)])
    ihdr = struct.pack(">II", width, height) + base[24:29]
    data = base[:8] + _png_chunk(b"IHDR", ihdr) + base[33:]
    return Case("png-bomb", f"png-ihdr-{width}x{height}", data, ".png", expect_error=True)


def jpeg_file(rng: random.Random) -> Case:
    what = rng.choice(["sof", "scans", "progressive-sof"])
    data = _jpeg_bytes(64, 60, progressive=what != "sof")
    sof = re_sof(data)
    if what == "scans":  # the last scan repeated hundreds of times
        sos = data.rindex(b"\xff\xda")
        eoi = data.rindex(b"\xff\xd9")
        data = data[:sos] + data[sos:eoi] * rng.choice([600, 5000]) + data[eoi:]
        return Case("jpeg-file", "jpeg-many-scans", data, ".jpg", expect_error=True)
    rows, cols = rng.choice(_HUGE_SIDES[:6])
    # a JPEG file has no other header to contradict: 30000 x 60 is a legal (grey-padded) image
    refuse = rows * cols == 0 or rows * cols > 64 * 2**20
    return Case(
        "jpeg-file",
        f"jpeg-{what}-{rows}x{cols}",
        _patch(data, sof + 5, ">HH", rows, cols),
        ".jpg",
        expect_error=refuse,
    )


def re_sof(data: bytes) -> int:
    """Offset of the frame header marker (SOF0 or SOF2) in a JFIF file."""
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        i = data.find(marker)
        if i >= 0:
            return i
    raise ValueError("no SOF marker")


def rescale_file(slope: str, intercept: str, ts: str = "explicit_le") -> bytes:
    """A 12-bit image whose RescaleSlope and RescaleIntercept are the given (invalid) texts."""
    ds = fac.make_dataset(fac.ramp(16, 16, 0, 4095), bits_stored=12)
    saved = config.settings.writing_validation_mode, config.settings.reading_validation_mode
    config.settings.writing_validation_mode = config.settings.reading_validation_mode = config.IGNORE
    try:  # the point is to write invalid values
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        return fac.encode(ds, ts)
    finally:
        config.settings.writing_validation_mode, config.settings.reading_validation_mode = saved


def rescale(rng: random.Random) -> Case:
    slope, intercept = rng.choice(
        [
            ("NaN", "0"),
            ("1", "NaN"),
            ("inf", "0"),
            ("1", "-inf"),
            ("1e308", "0"),
            ("3e38", "0"),
            ("1", "1e39"),
        ]
    )
    data = rescale_file(slope, intercept, rng.choice(["explicit_le", "implicit_le"]))
    return Case("rescale", f"rescale-{slope}-{intercept}", data, expect_error=True)


# --------------------------------------------------------------------------- structure


@functools.cache
def _many_elements(count: int) -> bytes:
    base = _dicom("explicit_le", 8, 8, 8)
    pix = _pixel_data_at(base)
    elems = []
    for i in range(count):
        group, element = 0x0009 + 2 * (i // 0xEFFF), 0x1000 + i % 0xEFFF
        elems.append(struct.pack("<HH2sH", group, element, b"LO", 2) + b"A ")
    filler = b"".join(elems)
    return base[:pix] + filler + base[pix:]


def _nested(depth: int) -> bytes:
    item_start = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    item_end = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    seq_end = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    seq = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF)
    return (seq + item_start) * depth + (item_end + seq_end) * depth


def structure(rng: random.Random) -> Case:
    what = rng.choice(["many", "deep", "length", "undefined"])
    base = _dicom("explicit_le", 8, 8, 8)
    pix = _pixel_data_at(base)
    if what == "many":
        n = rng.choice([30_000, 200_000])
        return Case("structure", f"elements-{n}", _many_elements(n), expect_error=True)
    if what == "deep":
        depth = rng.choice([40, 200, 2000])
        data = base[:pix] + _nested(depth) + base[pix:]
        return Case("structure", f"nesting-{depth}", data, expect_error=True)
    if what == "length":  # an element claiming far more bytes than the file holds
        data = (
            base[:pix]
            + struct.pack("<HH2sHI", 0x0009, 0x1001, b"OB", 0, rng.choice([2**32 - 2, 2**31]))
            + base[pix:]
        )
        return Case("structure", "impossible-length", data, expect_error=True)
    data = base[:pix] + struct.pack("<HH2sHI", 0x0009, 0x1001, b"OB", 0, 0xFFFFFFFF) + bytes(64) + base[pix:]
    return Case("structure", "undefined-length-no-delimiter", data)


# --------------------------------------------------------------------------- damage


def _well_formed(rng: random.Random) -> tuple[str, bytes, str]:
    choice = rng.choice([*fac.TRANSFER_SYNTAXES, "jpeg_baseline", "png", "png-rgb", "jpeg"])
    if choice == "jpeg_baseline":
        return choice, _jpeg_dicom(), ".dcm"
    if choice == "png":
        return choice, _png_bytes(), ".png"
    if choice == "png-rgb":
        return choice, _png_bytes("RGB"), ".png"
    if choice == "jpeg":
        return choice, _jpeg_bytes(progressive=rng.random() < 0.5), ".jpg"
    bits = rng.choice([8, 12, 16])
    if choice.startswith(("j2k", "jpeg_ls")):  # the encoders fail on tiny images
        return choice, _dicom(choice, 64, 60, bits), ".dcm"
    return choice, _dicom(choice, rng.choice([4, 17, 64]), rng.choice([4, 15, 60]), bits), ".dcm"


def truncation(rng: random.Random) -> Case:
    what, data, suffix = _well_formed(rng)
    cut = rng.randrange(1, len(data))
    return Case("truncation", f"{what}-cut-{cut}", data[:cut], suffix)


def flip(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.choice([1, 2, 4, 16, 64])):
        i = rng.randrange(len(out)) if rng.random() < 0.5 else rng.randrange(min(len(out), 2048))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def bit_flips(rng: random.Random) -> Case:
    what, data, suffix = _well_formed(rng)
    return Case("bit-flips", f"{what}-flipped", flip(data, rng), suffix)


def corpus_damage(rng: random.Random, files: list[Path]) -> Case:
    path = rng.choice(files)
    data = path.read_bytes()
    if rng.random() < 0.3:
        cut = rng.randrange(1, len(data))
        return Case("corpus", f"{path.stem}-cut-{cut}", data[:cut])
    return Case("corpus", f"{path.stem}-flipped", flip(data, rng))


GENERATORS: dict[str, Callable[[random.Random], Case]] = {
    "jpeg-sof": jpeg_sof,
    "jpeg-ls-sof": jpeg_ls_sof,
    "j2k-siz": j2k_siz,
    "rle-header": rle_header,
    "rle-data": rle_data,
    "deflate-bomb": deflate_bomb,
    "header-dims": header_dims,
    "png-bomb": png_bomb,
    "jpeg-file": jpeg_file,
    "rescale": rescale,
    "structure": structure,
    "truncation": truncation,
    "bit-flips": bit_flips,
}


def corpus_files(folder: Path | None, max_bytes: int | None = None) -> list[Path]:
    """The DICOM files under ``folder`` (none if it is absent), smallest first, optionally capped in size."""
    if folder is None or not folder.is_dir():
        return []
    files = sorted(
        (p for p in folder.rglob("*.dcm") if p.is_file()), key=lambda p: (p.stat().st_size, str(p))
    )
    return [p for p in files if max_bytes is None or p.stat().st_size <= max_bytes]


def cases(count: int, seed: int = 0, corpus: list[Path] | None = None) -> Iterator[Case]:
    """``count`` cases cycling through every class (and corpus damage when ``corpus`` is given).

    The same ``count``, ``seed`` and corpus always give the same cases.
    """
    rng = random.Random(seed)
    kinds = list(GENERATORS) + (["corpus"] if corpus else [])
    for i in range(count):
        kind = kinds[i % len(kinds)]
        with warnings.catch_warnings():  # pydicom complains about the invalid values written on purpose
            warnings.simplefilter("ignore")
            case = corpus_damage(rng, corpus) if kind == "corpus" else GENERATORS[kind](rng)
        yield Case(
            case.kind, f"{i:05d}-{case.name}", case.data, case.suffix, case.expect_error, case.read_kwargs
        )
