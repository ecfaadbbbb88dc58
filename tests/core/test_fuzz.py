"""Fuzz test: a few hundred hostile files (tests/core/fuzz_cases.py) are read in the isolated reader.

Each must come back as a LoadedImage with finite pixels or as an ImageReadError naming the file,
never as another exception, and never through the reader's safety nets (the time limit, the
memory limit, a crash): the size checks before decoding must catch them first. Cases marked
``expect_error`` must be refused. ``benchmarks/fuzz.py`` runs thousands with timings and memory.
"""

from __future__ import annotations

import collections
import math

from kdviewer.core import readpool
from kdviewer.core.errors import ImageReadError
from kdviewer.core.image import LoadedImage
from tests.conftest import SHARED
from tests.core import fuzz_cases

CASES = 280
SAFETY_NETS = ("longer than", "crashed or ran out of memory", "not enough memory", "image reader failed")


def test_hostile_files_are_read_or_refused_cleanly(tmp_path):
    corpus = fuzz_cases.corpus_files(SHARED / "data" / "dicom", max_bytes=300_000)  # small ones: quick
    outcomes: collections.Counter = collections.Counter()
    problems = []
    for case in fuzz_cases.cases(CASES, seed=0, corpus=corpus):
        path = tmp_path / f"{case.name}{case.suffix}"
        path.write_bytes(case.data)
        try:
            image = readpool.read_image_isolated(path, **case.read_kwargs)
        except ImageReadError as err:
            outcomes[case.kind, "refused"] += 1
            if err.path != str(path):
                problems.append(f"{case.name}: error names {err.path!r}")
            if any(net in err.cause for net in SAFETY_NETS):
                problems.append(f"{case.name}: caught only by a safety net: {err.cause}")
        else:
            outcomes[case.kind, "read"] += 1
            assert isinstance(image, LoadedImage)
            if case.expect_error:
                problems.append(f"{case.name}: accepted, shape {image.shape}")
            if not all(math.isfinite(v) for v in image.value_range):
                problems.append(f"{case.name}: non-finite pixels {image.value_range}")
        path.unlink()
    assert not problems, "\n".join(problems)
    kinds = {kind for kind, _ in outcomes}
    assert kinds >= set(fuzz_cases.GENERATORS), sorted(kinds)
    assert sum(n for (_, how), n in outcomes.items() if how == "refused") > CASES // 2
