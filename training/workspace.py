"""Where a run's stages put their outputs: one work folder, one subfolder per stage.

``<workdir>/splits.csv`` (written by the first stage, reused by the others),
``<workdir>/cache/`` (decoded images), ``<workdir>/teacher``, ``<workdir>/student_plain``,
``<workdir>/student`` (the distilled student: the viewer's default), ``<workdir>/evaluation``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Stage:
    """A training stage: the model it produces, the config section it trains with, distilled or not."""

    name: str
    model_name: str
    role: str  # "teacher" or "student": which ModelStageConfig section
    distill: bool


STAGES: dict[str, Stage] = {
    "teacher": Stage("teacher", "teacher", "teacher", False),
    "student": Stage("student", "student_plain", "student", False),
    "distill": Stage("distill", "student", "student", True),
}
MODEL_NAMES = tuple(s.model_name for s in STAGES.values())  # teacher, student_plain, student


@dataclass(frozen=True)
class Workspace:
    root: Path

    def run_dir(self, stage: str) -> Path:
        return self.root / STAGES[stage].model_name

    def model_dir(self, model_name: str) -> Path:
        return self.root / model_name

    @property
    def splits(self) -> Path:
        return self.root / "splits.csv"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation"
