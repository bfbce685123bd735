"""The Orquesta conformance figure: every case derived from Orquesta 1.6.0's unit suite, run on one
store backend, counted in one line -- ``orquesta conformance: N of M cases`` -- with the deviations
(where flowctx is deliberately safer) and the cases that still differ.

The sources (each also has its own parametrized test module):

* ``orquesta``       tests/conformance/orquesta/specs: rehearsals of the eight native conductor
                     modules and the rehearsal fixtures (test_conformance.py);
* ``orquesta-more``  tests/conformance/orquesta-more/specs: the sample of further rehearsals;
* ``conducting``     every other conducting/ module, step by step (test_conformance_conducting.py);
* ``expressions``    every expressions/ test (test_conformance_expressions.py);
* ``inspection``     every specs/ inspection verdict (test_conformance_inspection.py).

A deviation case passes when flowctx behaves as the deviation documents, so it counts among the N.
The test fails when a case differs that no list of known differences names, or when a listed case
no longer differs (the list must shrink with the fixes), so the figure cannot drift silently.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

import _conformance_conducting as conducting
import _conformance_expressions as expressions
import _conformance_inspection as inspection
import test_conformance as rehearsals
from flowctx.rehearse import Rehearsal


def _rehearsal_cases() -> list[tuple[str, str, str | None, Callable[[ModuleType], list[str]]]]:
    out = []
    for group, files, known in (
        ("orquesta", rehearsals.SPECS, {}),
        ("orquesta-more", rehearsals.MORE, getattr(rehearsals, "MORE_KNOWN_FAILURES", {})),
    ):
        for path in files:
            name = os.path.basename(path)

            def run(backend: ModuleType, _path: str = path, _name: str = name) -> list[str]:
                result = Rehearsal(store=backend).run_file(_path)
                if _name == rehearsals.NEGATIVE:  # its expected sequence is wrong on purpose
                    ok = result.ok and bool(result.mismatches)
                    return [] if ok else ["the deliberate mismatch was not reported"]
                return list(result.mismatches) if not result.ok else []

            out.append((f"{group}/{name[:-5]}", group, known.get(name) or known.get(name[:-5]), run))
    return out


def _group_cases(module: Any, group: str) -> list[tuple[str, str, str | None, Callable[[ModuleType], list[str]]]]:
    out = []
    for case in module.cases():
        out.append((
            f"{group}/{case.id}", group, module.KNOWN_FAILURES.get(case.id),
            lambda backend, _case=case: module.check(_case, backend),
        ))
    return out


def all_cases() -> list[tuple[str, str, str | None, Callable[[ModuleType], list[str]]]]:
    return (
        _rehearsal_cases()
        + _group_cases(conducting, "conducting")
        + _group_cases(expressions, "expressions")
        + _group_cases(inspection, "inspection")
    )


def deviations() -> dict[str, str]:
    out: dict[str, str] = {}
    for module, group in ((conducting, "conducting"), (expressions, "expressions"), (inspection, "inspection")):
        for case in module.cases():
            if case.deviation:
                out[f"{group}/{case.id}"] = case.deviation
    return out


def test_orquesta_conformance_figure(backend: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    cases = all_cases()
    passed, differ, unexpected, fixed = 0, [], [], []
    per_group: dict[str, list[int]] = {}
    for key, group, known, run in cases:
        try:
            problems = run(backend)
        except Exception as exc:  # a case that crashes the checker differs, it does not stop the count
            problems = [f"{type(exc).__name__}: {exc}"]
        tally = per_group.setdefault(group, [0, 0])
        tally[1] += 1
        if not problems:
            passed += 1
            tally[0] += 1
            if known:
                fixed.append(key)
        else:
            differ.append((key, known or problems[0]))
            if not known:
                unexpected.append(f"{key}: {problems[0]}")
    devs = deviations()
    lines = [f"orquesta conformance: {passed} of {len(cases)} cases ({backend.__name__})"]
    lines += [f"  {g}: {p} of {t}" for g, (p, t) in per_group.items()]
    lines.append(f"  deviations (flowctx deliberately safer, counted as passing): {len(devs)}")
    lines += [f"    {k}: {why}" for k, why in sorted(devs.items())]
    lines.append(f"  still different: {len(differ)}")
    lines += [f"    {k}: {why}" for k, why in differ]
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert not unexpected, "cases that differ and are not listed as known failures:\n" + "\n".join(unexpected)
    assert not fixed, "listed as known failures but now passing (remove them from the lists):\n" + "\n".join(fixed)
