"""Run-directory records: the per-epoch JSON-lines log and small JSON files, written atomically."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

import torch
import torchvision

from kdviewer.core.versions import library_versions


def clean_json(obj: Any) -> Any:
    """``obj`` with non-finite floats replaced by None (strict JSON)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    return obj


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON (NaN/inf as null) via a temporary file and rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(clean_json(obj), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    """Rewrite the whole log from the history (a resumed run never duplicates lines)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(clean_json(r)) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, path)


def read_jsonl(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def git_revision() -> str | None:
    """The checkout's commit (with ``-dirty`` when it has changes), or None outside a git checkout."""
    here = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        )
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str | None]:
    """Versions recorded with a trained model: kdviewer, Python and the training libraries."""
    out = library_versions(("torch", "torchvision", "numpy"))
    # The build tag (+cu130, +cpu) is in the module's version, not always in the installed metadata.
    out["torch"], out["torchvision"] = torch.__version__, torchvision.__version__
    return out
