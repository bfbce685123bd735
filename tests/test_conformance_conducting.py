"""Conformance group ``conducting``: Orquesta 1.6.0's conductor tests replayed step by step on
flowctx's conductor, on both store backends (data and mapping: tests/_conformance_conducting.py)."""
from __future__ import annotations

from types import ModuleType

import pytest

import _conformance_conducting as group

CASES = group.cases()


def _param(case: group.Case) -> object:
    reason = group.KNOWN_FAILURES.get(case.id)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(case, id=case.id, marks=marks)


def test_group_is_present() -> None:
    assert len(CASES) >= 180, "the conducting cases (tests/conformance/orquesta-suite/conducting/cases) are missing"
    unknown = set(group.KNOWN_FAILURES) - {c.id for c in CASES}
    assert not unknown, f"KNOWN_FAILURES names cases that do not exist: {sorted(unknown)}"


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_conducting_case(backend: ModuleType, case: group.Case) -> None:
    problems = group.check(case, backend)
    assert problems == [], "\n".join(problems)
