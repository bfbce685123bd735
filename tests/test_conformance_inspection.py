"""Orquesta 1.6.0's inspection verdicts (conformance group ``inspection``) on flowctx's validator,
plus the 70-verdict sample of tests/conformance/orquesta-more/inspect."""
from __future__ import annotations

import os
from types import ModuleType

import pytest

import _conformance_inspection as conf

CASES = conf.cases()
_KINDS = {"syntax": "syntax", "semantics": "semantics", "expressions": "expression", "context": "context"}


def _param(case: conf.Case) -> object:
    reason = conf.KNOWN_FAILURES.get(case.id)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(case, id=case.id, marks=marks)


def test_inspection_data_is_present() -> None:
    assert len(CASES) == 253
    assert len({c.id for c in CASES}) == len(CASES)
    assert sum(not c.expected_valid for c in CASES) == 38
    assert not set(conf.KNOWN_FAILURES) - {c.id for c in CASES}
    assert [c.id for c in CASES if c.deviation] == [k for k in conf.DEVIATIONS if not k.endswith(".yaml")]


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_inspection_case(backend: ModuleType, case: conf.Case) -> None:
    assert conf.check(case, backend) == []


SAMPLE = conf.sample()


@pytest.mark.parametrize("path,valid,first_error", SAMPLE, ids=[os.path.basename(p)[:-5] for p, _, _ in SAMPLE])
def test_orquesta_more_inspect_sample(path: str, valid: bool, first_error: str | None) -> None:
    kinds = (_KINDS[first_error.split(":", 1)[0]],) if first_error else ()
    deviation = conf.DEVIATIONS.get(os.path.basename(path))
    if deviation is not None:
        valid, kinds = False, deviation[1]
    assert conf.compare(conf.flowctx_errors(path), valid, kinds) == []


def test_sample_is_present() -> None:
    assert len(SAMPLE) == 70
    assert os.path.isfile(os.path.join(conf.SAMPLE, "LICENSE"))
