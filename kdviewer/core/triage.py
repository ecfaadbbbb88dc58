"""The triage worklist: the study list ordered and filtered by what the models already said.

Everything here works on results the viewer holds (the student's background scores of every
study, the teacher's scores of the studies it was shown with), so sorting and filtering never run
a model. Qt-free; :class:`~kdviewer.core.viewer_model.ViewerModel` keeps the chosen
:class:`TriageView` and emits the resulting order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdviewer.core.findings import FINDING_KEYS, finding

SORTS = {
    "arrival": "arrival",
    "name": "name",
    "top_score": "top student score",
    "finding": "score of a finding",
    "disagreement": "student/teacher disagreement",
}


@dataclass(frozen=True)
class TriageView:
    """How the list is shown: ``sort`` (a key of :data:`SORTS`), the finding it sorts by (for
    ``"finding"``), ``positive_for`` (show only studies the student calls positive for that
    finding), ``unread_only``. Scored studies sort before unscored and unreadable ones, highest
    first for scores and disagreement, alphabetically for names, in arrival order otherwise."""

    sort: str = "arrival"
    finding: str = FINDING_KEYS[0]
    positive_for: str | None = None
    unread_only: bool = False

    def __post_init__(self):
        if self.sort not in SORTS:
            raise ValueError(f"unknown sort {self.sort!r} (one of {', '.join(SORTS)})")
        object.__setattr__(self, "finding", finding(self.finding).key)
        if self.positive_for is not None:
            object.__setattr__(self, "positive_for", finding(self.positive_for).key)


def disagreement(student: Any, teacher: Any) -> float | None:
    """The largest absolute difference between the two models' scores over the findings both
    score, or None without both."""
    if student is None or teacher is None:
        return None
    common = [k for k in student.scores if k in teacher.scores]
    if not common:
        return None
    return max(abs(float(student.scores[k]) - float(teacher.scores[k])) for k in common)


def _sort_value(view: TriageView, path: str, student: Any, teacher: Any) -> float | str | None:
    if view.sort == "name":
        return Path(path).name.lower()
    if view.sort == "top_score":
        return None if student is None else max(float(v) for v in student.scores.values())
    if view.sort == "finding":
        return None if student is None else float(student.scores.get(view.finding, float("nan")))
    if view.sort == "disagreement":
        return disagreement(student, teacher)
    return None


def _known(value: float | str | None) -> bool:
    """A value to sort by: not missing, and not NaN (a finding the model does not score)."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def worklist(
    studies: Sequence[str],
    view: TriageView,
    *,
    student: Mapping[str, Any],
    teacher: Mapping[str, Any],
    read: set[str] | frozenset[str] = frozenset(),
) -> list[str]:
    """The paths of ``studies`` (arrival order) to show, in the order ``view`` asks for.
    ``student`` and ``teacher`` map paths to the predictions already made."""
    rows = []
    for arrival, path in enumerate(studies):
        pred = student.get(path)
        if view.unread_only and path in read:
            continue
        if view.positive_for is not None and not (pred is not None and pred.positive.get(view.positive_for)):
            continue
        rows.append((arrival, path, _sort_value(view, path, pred, teacher.get(path))))
    if view.sort == "arrival":
        return [p for _, p, _ in rows]
    known = [r for r in rows if _known(r[2])]
    unknown = [r for r in rows if not _known(r[2])]
    if view.sort == "name":
        known.sort(key=lambda r: (r[2], r[0]))
    else:
        known.sort(key=lambda r: (-r[2], r[0]))
    return [p for _, p, _ in known + unknown]


def positive_counts(studies: Sequence[str], student: Mapping[str, Any]) -> dict[str, int]:
    """How many of ``studies`` the student calls positive, per finding (registry order)."""
    counts = dict.fromkeys(FINDING_KEYS, 0)
    for path in studies:
        for k, flag in getattr(student.get(path), "positive", {}).items():
            if flag and k in counts:
                counts[k] += 1
    return counts
