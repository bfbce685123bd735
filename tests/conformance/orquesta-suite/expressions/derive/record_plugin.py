"""pytest plugin (run under /work/venv-orquesta): records every top-level call the Orquesta
expression tests make into the expression API (facade, evaluators, functions), with its
arguments and its outcome (value or exception class), per test node id.

Usage (in an Orquesta 1.6.0 checkout, with Orquesta installed):
    PYTHONPATH=<this dir> RECORD_OUT=/tmp/records.json \
        python -m pytest -p record_plugin orquesta/tests/unit/expressions
"""
import copy
import functools
import json
import os

import pytest

RECORDS = []
_state = {"test": None, "depth": 0}


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return {"__unserializable__": type(v).__name__}


def _wrap(name, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        top = _state["depth"] == 0 and _state["test"] is not None
        rec = None
        if top:
            try:
                a = copy.deepcopy(args)
                k = copy.deepcopy(kwargs)
            except Exception:
                a, k = args, kwargs
            rec = {"test": _state["test"], "fn": name, "args": _jsonable(list(a)), "kwargs": _jsonable(k)}
        _state["depth"] += 1
        try:
            out = fn(*args, **kwargs)
        except BaseException as exc:
            if rec is not None:
                rec.update(ok=False, exc=type(exc).__name__, exc_mro=[c.__name__ for c in type(exc).__mro__],
                           message=str(exc))
                RECORDS.append(rec)
            raise
        finally:
            _state["depth"] -= 1
        if rec is not None:
            rec.update(ok=True, value=_jsonable(out), value_type=type(out).__name__)
            RECORDS.append(rec)
        return out

    return wrapper


def _patch():
    from orquesta.expressions import base
    from orquesta.expressions import jinja as jinja_expr
    from orquesta.expressions import yql as yaql_expr
    from orquesta.expressions.functions import common, workflow

    for attr in ("evaluate", "validate", "extract_vars", "has_expressions"):
        setattr(base, attr, _wrap("facade." + attr, getattr(base, attr)))
    for cls, lang in ((jinja_expr.JinjaEvaluator, "jinja"), (yaql_expr.YAQLEvaluator, "yaql")):
        for attr in ("evaluate", "validate", "extract_vars"):
            orig = getattr(cls, attr)  # bound classmethod
            setattr(cls, attr, staticmethod(_wrap(lang + "." + attr, orig)))
    for attr in ("json_", "zip_", "ctx_"):
        setattr(common, attr, _wrap("common." + attr, getattr(common, attr)))
    for attr in ("item_", "task_status_", "succeeded_", "failed_", "completed_", "result_", "_get_current_task"):
        setattr(workflow, attr, _wrap("workflow." + attr, getattr(workflow, attr)))


def pytest_configure(config):
    _patch()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    _state["test"] = item.nodeid
    yield
    _state["test"] = None


def pytest_sessionfinish(session, exitstatus):
    out = os.environ.get("RECORD_OUT", "records.json")
    with open(out, "w") as f:
        json.dump(RECORDS, f, indent=1, sort_keys=True)
