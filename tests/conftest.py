"""Shared fixtures: every behaviour test runs on both store backends through ``backend``.

The ``cython`` case needs the compiled module: if it cannot be imported the test *errors*
(never skips).  ``--no-compiled`` deselects the compiled cases for a pure-Python run.
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

import flowctx


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-compiled",
        action="store_true",
        default=False,
        help="deselect the tests that need the compiled context store (for a pure-Python run)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("FLOWCTX_REQUIRE_COMPILED", "") not in ("", "0") and config.getoption("--no-compiled"):
        raise pytest.UsageError("FLOWCTX_REQUIRE_COMPILED=1 contradicts --no-compiled")


def pytest_report_header(config: pytest.Config) -> str:
    return f"flowctx backend: {flowctx.BACKEND} (flowctx {flowctx.__version__})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--no-compiled"):
        return
    keep, drop = [], []
    for item in items:
        (drop if item.get_closest_marker("compiled") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


BACKENDS = [pytest.param("cython", marks=pytest.mark.compiled), "python"]


def load_backend(name: str) -> ModuleType:
    """Import a store implementation by backend name; a missing compiled build raises."""
    if name == "cython":
        return importlib.import_module("flowctx._store")
    return importlib.import_module("flowctx._store_py")


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> ModuleType:
    """The store implementation module (``flowctx._store`` or ``flowctx._store_py``)."""
    return load_backend(request.param)
