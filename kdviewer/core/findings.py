"""The one registry of findings: names, keys and their order in every model head."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    """One finding a model scores: a stable key and the name a person reads."""

    key: str
    name: str


FINDINGS: tuple[Finding, ...] = (
    Finding("atelectasis", "Atelectasis"),
    Finding("cardiomegaly", "Cardiomegaly"),
    Finding("consolidation", "Consolidation"),
    Finding("edema", "Edema"),
    Finding("pleural_effusion", "Pleural Effusion"),
)

FINDING_KEYS: tuple[str, ...] = tuple(f.key for f in FINDINGS)
FINDING_NAMES: tuple[str, ...] = tuple(f.name for f in FINDINGS)
NUM_FINDINGS = len(FINDINGS)

_BY_KEY = {f.key: f for f in FINDINGS}
_BY_NAME = {f.name.lower(): f for f in FINDINGS}


def finding(key_or_name: str) -> Finding:
    """Return the finding for a key (``pleural_effusion``) or a name (``Pleural Effusion``).

    Raises KeyError naming the unknown value and the known keys.
    """
    hit = _BY_KEY.get(key_or_name) or _BY_NAME.get(key_or_name.strip().lower())
    if hit is None:
        raise KeyError(f"unknown finding {key_or_name!r}; known: {', '.join(FINDING_KEYS)}")
    return hit


def check_keys(keys: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validate that ``keys`` are exactly the registry's findings in registry order."""
    keys = tuple(keys)
    unknown = [k for k in keys if k not in _BY_KEY]
    if unknown:
        raise KeyError(f"unknown finding keys {unknown}; known: {', '.join(FINDING_KEYS)}")
    if keys != FINDING_KEYS:
        raise ValueError(f"findings {keys} are not the registry's order {FINDING_KEYS}")
    return keys
