"""Conformance group ``expressions``: Orquesta 1.6.0's expression tests as data, checked on flowctx.

Data: ``tests/conformance/orquesta-suite/expressions/*.yaml`` (one file per upstream module under
``orquesta/tests/unit/expressions``; how it was derived is in ``PROVENANCE.md`` beside it).  Every
case names the upstream test it comes from and carries what Orquesta did.

Kinds of case and how flowctx is asked (the public paths the engine and the validator use):

* ``evaluate`` -- ``Renderer.render_template`` (a string) or ``Renderer.render_json`` (a list or
  mapping) against a store ``Context`` whose *variables* are the case's ``variables`` (what
  Orquesta's ``ctx()`` reads), ``Context.with_item(item, 0)`` when the case has a current
  ``item``, and a ``TaskScope(status, result, statuses)`` when it has a ``task_scope`` (what the
  conductor passes for transitions).  ``valid`` says whether Orquesta validates the string: flowctx's
  ``Renderer.check`` must agree.  ``expect`` is ``value`` (compared strictly: ``True`` is not
  ``1``) or ``error: evaluation`` (a ``TemplateError`` at render time, message text not compared).
* ``validate`` -- ``Renderer.check`` on every string of the statement (mapping keys included):
  the set of strings that fail must be the set Orquesta reports as invalid (``expect.invalid``,
  as paths).
* ``extract_vars`` -- ``flowctx.spec.validate.referenced_variables`` over the statement's strings
  (what the validator warns about as "never defined") against the variable names Orquesta extracts.
* ``has_expressions`` -- ``Renderer.is_template``.

A case with ``deviation`` is one where flowctx is deliberately safer than Orquesta (values that
arrive as data are never evaluated as templates); its ``deviation_expect`` is what flowctx must
give instead, derived by running Orquesta with those values made inert (see PROVENANCE.md).
"""
from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import yaml

from flowctx.errors import TemplateError

DATA_DIR = Path(__file__).parent / "conformance" / "orquesta-suite" / "expressions"

# Cases flowctx does not pass yet: id -> reason (the test is xfail(strict=True), so a fix shows).
KNOWN_FAILURES: dict[str, str] = {}


@dataclass(frozen=True)
class Case:
    id: str
    provenance: str
    deviation: str | None
    module: str = field(default="", compare=False)
    spec: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)


@functools.lru_cache(maxsize=1)
def _load() -> tuple[Case, ...]:
    out: list[Case] = []
    ids: set[str] = set()
    for path in sorted(DATA_DIR.glob("*.yaml")):
        for raw in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            cid = raw["id"]
            if cid in ids:
                raise ValueError(f"{path.name}: duplicate case id {cid!r}")
            ids.add(cid)
            out.append(Case(id=cid, provenance=raw["provenance"], deviation=raw.get("deviation"),
                            module=raw["provenance"].split("::")[0], spec=raw))
    return tuple(out)


def cases() -> list[Case]:
    """Every case of the group, in file order."""
    return list(_load())


@functools.lru_cache(maxsize=1)
def _renderer() -> Any:
    from flowctx.render import Renderer

    return Renderer()


# ---------------------------------------------------------------------- helpers
def _plain(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def _same(a: Any, b: Any) -> bool:
    """Equality that also compares scalar types (``True`` != ``1``, ``1`` != ``1.0``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _leaves(statement: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, string) of every string in a statement; keys as ``<path>.<key>`` (the data's notation)."""
    if isinstance(statement, str):
        return [(path or "$", statement)]
    out: list[tuple[str, str]] = []
    if isinstance(statement, Mapping):
        for k, v in statement.items():
            sub = f"{path}.{k}" if path else str(k)
            if isinstance(k, str):
                out.append((sub + ".<key>", k))
            out.extend(_leaves(v, sub))
    elif isinstance(statement, list):
        for i, v in enumerate(statement):
            out.extend(_leaves(v, f"{path}[{i}]"))
    return out


def _is_invalid(renderer: Any, source: str) -> bool:
    try:
        renderer.check(source)
    except TemplateError:
        return True
    return False


# ---------------------------------------------------------------------- checks
def _check_evaluate(spec: Mapping[str, Any], expect: Mapping[str, Any], backend: ModuleType) -> list[str]:
    from flowctx.render import TaskScope
    from flowctx.render._scope import RouteStatuses

    renderer = _renderer()
    statement = spec["statement"]
    problems: list[str] = []
    if "valid" in spec:
        invalid = _is_invalid(renderer, statement)
        if invalid == spec["valid"]:
            problems.append(
                f"Renderer.check: Orquesta validates {statement!r} as {'valid' if spec['valid'] else 'an error'}, "
                f"flowctx {'rejects' if invalid else 'accepts'} it"
            )
        if not spec["valid"]:
            return problems  # an invalid expression: the check above is the whole case
    ctx = backend.Context(variables=dict(spec.get("variables") or {}))
    if "item" in spec:
        ctx = ctx.with_item(spec["item"], 0)
    scope = None
    ts = spec.get("task_scope")
    if ts is not None:
        statuses: Mapping[str, Any] = dict(ts.get("statuses") or {})
        if ts.get("route"):
            # a task on a route of a split: the conductor passes its task runs and routes
            runs = [SimpleNamespace(**r) for r in ts["runs"]]
            statuses = RouteStatuses(runs, [list(r) for r in ts["routes"]], ts["route"])
        scope = TaskScope(status=ts.get("status"), result=ts.get("result"), statuses=statuses)
    try:
        if isinstance(statement, str):
            got = renderer.render_template(statement, ctx, scope=scope)
        else:
            got = renderer.render_json(statement, ctx, scope=scope)
    except TemplateError as exc:
        if "error" not in expect:
            problems.append(f"render raised TemplateError({exc.reason if hasattr(exc, 'reason') else exc}); "
                            f"expected {expect['value']!r}")
        return problems
    except Exception as exc:  # noqa: BLE001 - anything but a TemplateError is a bug
        return problems + [f"render raised {type(exc).__name__}: {exc} (not a TemplateError)"]
    got = _plain(got)
    if "error" in expect:
        problems.append(f"render gave {got!r}; expected an evaluation error (Orquesta: {expect.get('orquesta_exception')})")
    elif not _same(got, expect["value"]):
        problems.append(f"render gave {got!r}; expected {expect['value']!r}")
    return problems


def _check_validate(spec: Mapping[str, Any]) -> list[str]:
    renderer = _renderer()
    want = set(spec["expect"]["invalid"])
    got = {p for p, s in _leaves(spec["statement"]) if _is_invalid(renderer, s)}
    problems = []
    if got - want:
        problems.append(f"flowctx rejects {sorted(got - want)}, Orquesta accepts them")
    if want - got:
        problems.append(f"flowctx accepts {sorted(want - got)}, Orquesta reports them invalid")
    return problems


def _check_extract(spec: Mapping[str, Any]) -> list[str]:
    from flowctx.spec.validate import referenced_variables

    got: set[str] = set()
    for _, s in _leaves(spec["statement"]):
        got |= referenced_variables(s)
    want = set(spec["expect"]["variables"])
    if got != want:
        return [f"referenced variables {sorted(got)}; Orquesta extracts {sorted(want)}"]
    return []


def _check_has_expressions(spec: Mapping[str, Any]) -> list[str]:
    got = _renderer().is_template(spec["statement"])
    if got != spec["expect"]["value"]:
        return [f"is_template({spec['statement']!r}) is {got}; Orquesta's has_expressions is {spec['expect']['value']}"]
    return []


def check(case: Case, backend: ModuleType) -> list[str]:
    """[] when flowctx (on ``backend``) gives Orquesta's outcome -- or, for a deviation, the
    documented safer outcome; else one line per mismatch."""
    spec = case.spec
    kind = spec["kind"]
    if kind == "evaluate":
        expect = spec["deviation_expect"] if case.deviation else spec["expect"]
        return _check_evaluate(spec, expect, backend)
    if kind == "validate":
        return _check_validate(spec)
    if kind == "extract_vars":
        return _check_extract(spec)
    if kind == "has_expressions":
        return _check_has_expressions(spec)
    return [f"unknown case kind {kind!r}"]


def counts_by_module() -> dict[str, int]:
    """Number of cases per upstream module."""
    out: dict[str, int] = {}
    for c in cases():
        out[c.module] = out.get(c.module, 0) + 1
    return out
