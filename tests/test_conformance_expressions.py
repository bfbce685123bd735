"""Orquesta 1.6.0's expression tests (``orquesta/tests/unit/expressions``) as conformance cases.

Each case runs on both store backends; the data and its provenance are under
``tests/conformance/orquesta-suite/expressions``; ``tests/_conformance_expressions.py`` loads and checks.
"""
from __future__ import annotations

import pytest

import _conformance_expressions as conf

_CASES = conf.cases()


def _param(case: conf.Case):
    reason = conf.KNOWN_FAILURES.get(case.id)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(case, id=case.id, marks=marks)


def test_case_ids_unique_and_provenanced() -> None:
    ids = [c.id for c in _CASES]
    assert len(ids) == len(set(ids))
    assert all(c.provenance.startswith("expressions/") and c.provenance.count("::") == 2 for c in _CASES)
    assert set(conf.KNOWN_FAILURES) <= set(ids), "KNOWN_FAILURES names a case that does not exist"
    assert not any(conf.KNOWN_FAILURES.get(c.id) and c.deviation for c in _CASES)


@pytest.mark.parametrize("case", [_param(c) for c in _CASES])
def test_expression_case(case: conf.Case, backend) -> None:
    assert conf.check(case, backend) == []
