"""``kdviewer report``: a PDF with a page per study for the record, de-identified by default.

Each page shows the image without and with the student's Grad-CAM heat map for its top finding
(or the one asked for), every finding's student (and teacher) score with the card's threshold and
the positive flag, where the two models disagree, the models (name, version, architecture,
weights SHA-256, runtime, precision), the latency and energy of each inference with the method
that measured it, input-scope warnings, the date and time, and "research use only — not for
diagnosis" on every page.

Scoring is predict's (:func:`kdviewer.cli.load_engines`, the isolated read, ``prediction_record`` for the
figures); every inference and the export are written to the audit log. Without
``with_identifiers`` the PDF holds no patient name, ID, birth date, accession number, UID, file
name or study date: a study is named by its number and the first digits of its salted audit
digest, which the audit log also holds.
"""

from __future__ import annotations

import io
import logging
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.platypus import Image as RLImage
from reportlab.platypus import (
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from kdviewer import RESEARCH_NOTICE, __version__
from kdviewer.cli import load_engines
from kdviewer.core import audit, scope
from kdviewer.core.display import to_display_uint8
from kdviewer.core.findings import FINDING_KEYS, finding
from kdviewer.core.imageio import iter_image_files
from kdviewer.core.readpool import read_image_isolated
from kdviewer.core.records import display_path, prediction_record

log = logging.getLogger(__name__)

# inferno (matplotlib's, CC0; the viewer's default heat-map colours) at 0, 1/8, …, 1
_INFERNO = np.array(
    [
        (0.001462, 0.000466, 0.013866),
        (0.129285, 0.047293, 0.290788),
        (0.341500, 0.062325, 0.429425),
        (0.540920, 0.134729, 0.415123),
        (0.735683, 0.215906, 0.330245),
        (0.894305, 0.353399, 0.193584),
        (0.978422, 0.557937, 0.034931),
        (0.974638, 0.797692, 0.206332),
        (0.988362, 0.998364, 0.644924),
    ]
)
_PICTURE_SIDE = 1000  # pixels of the longer side of each picture in the PDF


@dataclass
class StudyResult:
    """One study's scores (or why it failed), as the report shows it."""

    number: int
    path: str
    subject: str | None = None
    image: Any = None
    records: list[dict[str, Any]] = field(default_factory=list)  # predict's records, student first
    predictions: list[Any] = field(default_factory=list)
    engines: list[Any] = field(default_factory=list)
    error: str | None = None
    measurements: list[str] = field(default_factory=list)  # made in the viewer, as shown there


def scope_warnings(image, pred: Any = None, engine: Any = None) -> list[str]:
    """Why the scores may not apply to ``image``: the scope check's verdict
    (:func:`kdviewer.core.scope.check`, from the header and, given the student's prediction and
    engine, its features), a missing header to check, then the reader's own warnings."""
    model = scope.scope_of_engine(engine) if engine is not None else None
    verdict = scope.check(image, getattr(pred, "features", None), model)
    out = []
    if not verdict.in_scope:
        score = "" if verdict.ood_score is None else f" (out-of-scope score {verdict.ood_score:.2f}, limit 1)"
        out.append(f"out of scope: {verdict.reason}{score}")
    if image.metadata.source_format != "DICOM":
        out.append(f"{image.metadata.source_format} file: no header to check the view, body part or age")
    return out + list(image.warnings)


def _overlay(grey: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """RGB: the heat map in inferno over the grey image, low values see-through as in the viewer."""
    h = np.clip(np.nan_to_num(heat.astype(np.float32)), 0.0, 1.0)
    stops = np.linspace(0.0, 1.0, len(_INFERNO))
    colour = np.stack([np.interp(h, stops, _INFERNO[:, c]) for c in range(3)], axis=-1) * 255.0
    alpha = (np.clip((h - 0.15) / 0.45, 0.0, 1.0) * 0.7)[..., None]
    base = grey.astype(np.float32)[..., None]
    return np.clip(base * (1.0 - alpha) + colour * alpha, 0, 255).astype(np.uint8)


def _pictures(image, heatmap: np.ndarray | None) -> tuple[Image.Image, Image.Image | None]:
    grey = to_display_uint8(image)
    plain = Image.fromarray(np.ascontiguousarray(grey))
    scale = _PICTURE_SIDE / max(plain.size)
    size = (max(1, round(plain.width * min(1.0, scale))), max(1, round(plain.height * min(1.0, scale))))
    plain = plain.resize(size, Image.Resampling.BILINEAR)
    if heatmap is None:
        return plain, None
    heat = Image.fromarray(np.asarray(heatmap, dtype=np.float32), mode="F").resize(
        size, Image.Resampling.BILINEAR
    )
    return plain, Image.fromarray(_overlay(np.asarray(plain), np.asarray(heat)))


def _score_study(number: int, path, engines, *, source: str) -> StudyResult:
    result = StudyResult(number, display_path(path))
    try:
        image = read_image_isolated(path, reduce_to=max(e.card.input.read_min_side for e in engines))
    except Exception as exc:  # noqa: BLE001 - this study's failure, reported on its page
        result.error = getattr(exc, "cause", None) or type(exc).__name__
        return result
    result.image = image
    for engine in engines:
        try:
            pred = engine.predict(image, heatmaps=engine is engines[0])
            record = prediction_record(path, pred)
        except Exception as exc:  # noqa: BLE001 - one model call never stops the report
            result.error = f"{engine.name}: {exc or type(exc).__name__}"
            return result
        audit.record_inference(pred, engine=engine, image=image, path=path, source=source)
        result.predictions.append(pred)
        result.records.append(record)
        result.engines.append(engine)
    try:
        result.subject = audit.default_log().subject(image, path)[0]
    except Exception:  # noqa: BLE001 - the digest is a label here; the audit log reports its own failures
        log.warning("report: no audit digest for study %d", number)
    return result


# -- the PDF -----------------------------------------------------------------------------------


def _styles():
    base = getSampleStyleSheet()
    return {
        "title": base["Title"],
        "h2": base["Heading2"],
        "body": base["BodyText"],
        "small": ParagraphStyle("small", parent=base["BodyText"], fontSize=8, leading=10),
        "mono": ParagraphStyle("mono", parent=base["BodyText"], fontName="Courier", fontSize=6.5, leading=8),
        "notice": ParagraphStyle(
            "notice",
            parent=base["BodyText"],
            fontName="Helvetica-Bold",
            fontSize=13,
            leading=16,
            textColor=colors.white,
            backColor=colors.HexColor("#b00020"),
            alignment=1,
            borderPadding=(5, 5, 5, 5),
            spaceAfter=10,
        ),
        "marked": ParagraphStyle(
            "marked", parent=base["BodyText"], fontName="Helvetica-Bold", textColor=colors.HexColor("#b00020")
        ),
    }


def _fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _png(img: Image.Image, width_pt: float, max_height_pt: float = 215.0):
    width_pt = min(width_pt, max_height_pt * img.width / img.height)  # keeps a study on one page
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    buf.seek(0)
    return RLImage(buf, width=width_pt, height=width_pt * img.height / img.width)


def _identifiers(image, path: str) -> list[tuple[str, str]]:
    meta = image.metadata if image is not None else None
    rows = [("File", path)]
    if meta is not None:
        for label, value in (
            ("Patient name", meta.patient_name),
            ("Patient ID", meta.patient_id),
            ("Birth date", meta.patient_birth_date),
            ("Accession number", meta.accession_number),
            ("Study date", meta.study_date),
            ("Study UID", meta.study_instance_uid),
            ("Series UID", meta.series_instance_uid),
            ("SOP Instance UID", meta.sop_instance_uid),
            ("Institution", meta.institution_name),
        ):
            if value:
                rows.append((label, str(value)))
    return rows


def _study_flowables(
    study: StudyResult,
    total: int,
    st,
    *,
    focus: str | None,
    with_identifiers: bool,
    generated: str,
    width: float,
) -> list:
    out: list = [Paragraph(RESEARCH_NOTICE.upper(), st["notice"])]
    label = f"Study {study.number} of {total}"
    if study.subject:
        label += f" · audit digest {study.subject[:16]}"
    out.append(Paragraph(label, st["h2"]))
    out.append(Paragraph(f"Generated {generated} by kdviewer {__version__}", st["small"]))
    if with_identifiers:
        out.append(
            Paragraph(
                "IDENTIFIERS INCLUDED (--with-identifiers): this page identifies a patient.", st["marked"]
            )
        )
        rows = [[k, Paragraph(v, st["small"])] for k, v in _identifiers(study.image, study.path)]
        t = Table(rows, colWidths=[110, width - 110])
        t.setStyle(TableStyle([("FONTSIZE", (0, 0), (-1, -1), 8), ("BOX", (0, 0), (-1, -1), 1, colors.red)]))
        out.append(t)
    else:
        out.append(
            Paragraph(
                "De-identified: no patient name, ID, birth date, accession number, UIDs, "
                "file name or study date.",
                st["small"],
            )
        )
    if study.error:
        out.append(Spacer(1, 12))
        out.append(Paragraph(f"This study could not be scored: {study.error}", st["marked"]))
        return out

    image, student = study.image, study.predictions[0]
    meta = image.metadata
    facts = [f"{meta.source_format}", f"{meta.cols}×{meta.rows}"]
    facts += [v for v in (meta.modality, meta.view_position, meta.body_part) if v]
    if meta.pixel_spacing:
        facts.append(f"pixel spacing {meta.pixel_spacing[0]:g}×{meta.pixel_spacing[1]:g} mm")
    out.append(Paragraph("Image: " + ", ".join(facts), st["small"]))
    scope_notes = scope_warnings(image, student, study.engines[0] if study.engines else None)
    if scope_notes:
        out.append(Paragraph("Input-scope warnings: " + "; ".join(scope_notes), st["marked"]))

    key = focus or max(student.findings, key=lambda k: student.scores[k])
    plain, overlay = _pictures(image, student.heatmaps.get(key))
    side = (width - 12) / 2
    pics = [[_png(plain, side), _png(overlay, side) if overlay is not None else ""]]
    caption = [
        [
            Paragraph("Image (default window)", st["small"]),
            Paragraph(
                f"Student {student.cam_method or 'heat map'} for {finding(key).name} "
                f"(score {_fmt(student.scores[key])}){'' if focus else ', its top finding'}",
                st["small"],
            ),
        ]
    ]
    out.append(Table(pics + caption, colWidths=[side + 6, side + 6]))
    if study.measurements:
        out.append(Paragraph("Measurements: " + "; ".join(study.measurements), st["body"]))

    records = study.records
    head = ["Finding"] + [h for r in records for h in (f"{r['model']} score", "threshold", "positive")]
    if len(records) > 1:
        head.append("disagree")
    rows, disagreements = [head], []
    for k in FINDING_KEYS:
        cells = [finding(k).name]
        flags = []
        for r in records:
            f = r["findings"].get(k)
            if f is None:
                cells += ["—", "—", "—"]
                continue
            cells += [_fmt(f["score"]), _fmt(f["threshold"], 3), "POSITIVE" if f["positive"] else "negative"]
            flags.append(f["positive"])
        if len(records) > 1:
            differ = len(set(flags)) > 1
            cells.append("YES" if differ else "")
            if differ:
                disagreements.append(finding(k).name)
        rows.append(cells)
    t = Table(rows, repeatRows=1)
    t.setStyle(
        TableStyle(
            [
                ("FONTSIZE", (0, 0), (-1, -1), 8),
                ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
            ]
        )
    )
    out.append(Spacer(1, 6))
    out.append(t)
    if len(records) > 1:
        out.append(
            Paragraph("Student and teacher disagree on: " + (", ".join(disagreements) or "none"), st["body"])
        )

    costs: list = [Paragraph(f"Models and cost (study {study.number})", st["h2"])]
    model_rows = [["model", "version", "architecture", "runtime / precision", "weights SHA-256"]]
    cost_rows = [["model", "latency (ms)", "energy (mJ)", "idle baseline (W)", "energy method"]]
    for r, engine in zip(records, study.engines, strict=True):
        card = getattr(engine, "card", None)
        trained = "" if r["trained"] else " UNTRAINED"
        model_rows.append(
            [
                r["model"] + trained,
                getattr(card, "version", "—"),
                r["architecture"],
                f"{getattr(engine, 'runtime_name', '—')} / {audit.engine_precision(engine)}",
                Paragraph(r["weights_sha256"], st["mono"]),
            ]
        )
        method = r["energy_method"] or "not measured"
        if r["energy_is_estimate"]:
            method += " (estimate)"
        cost_rows.append(
            [
                r["model"],
                _fmt(r["latency_ms"], 1),
                _fmt(r["energy_mj"], 1),
                _fmt(r["idle_power_w"], 2),
                Paragraph(method, st["small"]),
            ]
        )
    for rows_, widths in (
        (model_rows, [58, 34, 62, 88, width - 242]),
        (cost_rows, [62, 60, 60, 80, width - 262]),
    ):
        t = Table(rows_, colWidths=widths)
        t.setStyle(
            TableStyle(
                [
                    ("FONTSIZE", (0, 0), (-1, -1), 7.5),
                    ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        costs += [t, Spacer(1, 6)]
    costs.append(
        Paragraph(
            "Latency is preprocessing, forward pass and heat maps, timed per inference; energy is "
            "the marginal energy above the idle baseline, by the method named.",
            st["small"],
        )
    )
    return [*out, KeepTogether(costs)]


def write_pdf(
    studies: Iterable[StudyResult],
    out,
    *,
    total: int | None = None,
    focus: str | None = None,
    with_identifiers: bool = False,
) -> None:
    """Write ``studies`` to ``out`` (a path or a binary stream) as a PDF, one page (or more) per
    study, numbered out of ``total`` (default: their count). A generator is consumed one study at
    a time, so only the compressed pictures of the studies done stay in memory. Raises OSError."""

    if total is None:
        studies = list(studies)
        total = len(studies)
    st = _styles()
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")

    def footer(canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica-Bold", 8)
        canvas.setFillColorRGB(0.69, 0, 0.125)
        canvas.drawString(36, 20, f"kdviewer — {RESEARCH_NOTICE}")
        canvas.drawRightString(A4[0] - 36, 20, f"page {doc.page}")
        canvas.restoreState()

    doc = SimpleDocTemplate(
        out if hasattr(out, "write") else str(out),
        pagesize=A4,
        leftMargin=36,
        rightMargin=36,
        topMargin=32,
        bottomMargin=36,
        title="kdviewer report",
        author="kdviewer",
        subject=RESEARCH_NOTICE,
    )
    story: list = []
    for i, study in enumerate(studies):
        if i:
            story.append(PageBreak())
        story += _study_flowables(
            study,
            total,
            st,
            focus=focus,
            with_identifiers=with_identifiers,
            generated=generated,
            width=doc.width,
        )
    doc.build(story, onFirstPage=footer, onLaterPages=footer)


def report_command(
    paths: Sequence[str],
    output: Path,
    *,
    teacher: bool = False,
    focus: str | None = None,
    with_identifiers: bool = False,
    runtime: str = "auto",
) -> int:
    """Score ``paths`` (files or folders) like ``kdviewer predict`` and write the PDF. Returns 0
    when every study was scored, 1 when some were not (their pages say why), 2 when the command
    failed (no usable model, nothing to report, the PDF cannot be written)."""

    try:
        key = finding(focus).key if focus else None
    except KeyError:
        print(f"kdviewer: error: unknown finding {focus!r}", file=sys.stderr)
        return 2
    try:
        engines = load_engines(teacher, runtime)
    except RuntimeError as exc:
        print(f"kdviewer: error: {exc}", file=sys.stderr)
        return 2
    unlisted: list[str] = []

    def on_error(path, why: str) -> None:
        unlisted.append(display_path(path))
        print(f"kdviewer: error: {display_path(path)}: {why}", file=sys.stderr)

    files = list(iter_image_files(paths, on_error=on_error))
    if not files:
        print("kdviewer: error: no image to report on", file=sys.stderr)
        return 2
    try:  # before any scoring: an output that cannot be written fails at once
        stream = open(output, "wb")  # noqa: SIM115 - closed below, after the PDF is built
    except OSError as exc:
        print(f"kdviewer: error: cannot write {display_path(output)}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    subjects: list[str] = []
    failed = list(unlisted)

    def scored():
        for number, path in enumerate(files, start=1):
            study = _score_study(number, path, engines, source="report")
            if study.error:
                failed.append(study.path)
                print(f"kdviewer: error: {study.path}: {study.error}", file=sys.stderr)
            if study.subject:
                subjects.append(study.subject)
            yield study

    try:
        with stream:
            write_pdf(scored(), stream, total=len(files), focus=key, with_identifiers=with_identifiers)
    except OSError as exc:
        print(f"kdviewer: error: cannot write {display_path(output)}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    audit.record_export(
        "report-pdf", subjects=subjects, output=output, with_identifiers=with_identifiers, source="report"
    )
    print(
        f"{len(files)} stud{'y' if len(files) == 1 else 'ies'} written to {display_path(output)}"
        + (f"; {len(failed)} could not be scored" if failed else ""),
        file=sys.stderr,
    )
    return 1 if failed else 0
