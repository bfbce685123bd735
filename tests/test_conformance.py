"""The Orquesta conformance suites (copies live in tests/conformance/: orquesta/ and
orquesta-more/) through the rehearsal, on both store backends, plus the two list-form workflows
of tests/conformance/attune run to completion with mocked actions."""
from __future__ import annotations

import glob
import os
from types import ModuleType

import pytest

from flowctx.rehearse import Rehearsal

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("FLOWCTX_CONFORMANCE_DIR") or os.path.join(HERE, "conformance")
SPECS = sorted(glob.glob(os.path.join(SHARED, "orquesta", "specs", "*.yaml")))
MORE = sorted(glob.glob(os.path.join(SHARED, "orquesta-more", "specs", "*.yaml")))
NEGATIVE = "rehearsals__sequential_failure.yaml"


def test_suite_is_present() -> None:
    assert len(SPECS) == 88, f"expected the 88 conformance specs under {SHARED}"
    assert len(MORE) == 47, f"expected the 47 orquesta-more specs under {SHARED}"


@pytest.mark.parametrize("spec_file", SPECS, ids=[os.path.basename(p)[:-5] for p in SPECS])
def test_orquesta_spec(backend: ModuleType, spec_file: str) -> None:
    result = Rehearsal(store=backend).run_file(spec_file)
    if os.path.basename(spec_file) == NEGATIVE:
        # the fixture's expected sequence is wrong on purpose: exactly that must be reported
        assert result.mismatches and all(m.startswith("expected_task_sequence") for m in result.mismatches)
        assert result.ok
    else:
        assert result.ok, "\n".join(result.mismatches)


@pytest.mark.parametrize("spec_file", MORE, ids=[os.path.basename(p)[:-5] for p in MORE])
def test_orquesta_more_spec(backend: ModuleType, spec_file: str) -> None:
    result = Rehearsal(store=backend).run_file(spec_file)
    assert result.ok, "\n".join(result.mismatches)
