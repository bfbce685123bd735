"""Backend selection: ``flowctx.BACKEND``, ``FLOWCTX_PURE_PYTHON``, ``FLOWCTX_REQUIRE_COMPILED``.

The in-process test checks that the running session uses the backend its environment asks for
(the CI legs run this file with and without ``FLOWCTX_PURE_PYTHON=1``).  The selection rules are
checked in subprocesses, with the compiled module hidden by an import hook where a missing build
is simulated.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import flowctx

ROOT = Path(__file__).resolve().parent.parent

# Run in a subprocess: optionally hide flowctx._store, then report what flowctx selected.
PROBE = textwrap.dedent(
    """
    import json, sys
    if {hide!r}:
        class Hide:
            def find_spec(self, name, path=None, target=None):
                if name == "flowctx._store":
                    raise ImportError("simulated: no compiled build")
        sys.meta_path.insert(0, Hide())
    try:
        import flowctx
    except ImportError as exc:
        print(json.dumps({{"error": str(exc)}}))
    else:
        print(json.dumps({{"backend": flowctx.BACKEND, "module": flowctx.Context.__module__}}))
    """
)


def _env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FLOWCTX_PURE_PYTHON", "FLOWCTX_REQUIRE_COMPILED")}
    env.update(overrides)
    return env


def probe(hide: bool = False, **env: str) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(hide=hide)],
        env=_env(**env),
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def test_backend_matches_the_environment() -> None:
    expected = "python" if _truthy("FLOWCTX_PURE_PYTHON") and not _truthy("FLOWCTX_REQUIRE_COMPILED") else "cython"
    assert flowctx.BACKEND == expected
    module = {"cython": "flowctx._store", "python": "flowctx._store_py"}[expected]
    assert flowctx.Context.__module__ == module
    impl = sys.modules[module]
    for name in impl.__all__:
        assert getattr(flowctx, name) is getattr(impl, name)


def test_public_api_works_on_the_active_backend() -> None:
    ctx = flowctx.Context(parameters={"n": 1})
    item = ctx.with_item({"host": "a"}, 0)
    item.set_var("out", [1, 2])
    assert item.export()["variables"] == {"out": [1, 2]} and ctx.export()["variables"] == {}
    assert isinstance(flowctx.freeze({"a": 1}), flowctx.FrozenDict)
    assert flowctx.thaw(flowctx.freeze([1])) == [1]
    assert set(flowctx.store_stats()) == {"clones", "items", "merges"}


@pytest.mark.compiled
def test_default_selects_the_compiled_store() -> None:
    assert probe() == {"backend": "cython", "module": "flowctx._store"}
    assert probe(FLOWCTX_PURE_PYTHON="0") == {"backend": "cython", "module": "flowctx._store"}


def test_pure_python_flag_selects_the_twin() -> None:
    for value in ("1", "true", "yes"):
        assert probe(FLOWCTX_PURE_PYTHON=value) == {"backend": "python", "module": "flowctx._store_py"}


@pytest.mark.compiled
def test_require_compiled_with_a_build_imports_it() -> None:
    assert probe(FLOWCTX_REQUIRE_COMPILED="1") == {"backend": "cython", "module": "flowctx._store"}


def test_missing_build_falls_back_to_the_twin() -> None:
    assert probe(hide=True) == {"backend": "python", "module": "flowctx._store_py"}


def test_missing_build_with_require_compiled_is_an_import_error() -> None:
    result = probe(hide=True, FLOWCTX_REQUIRE_COMPILED="1")
    assert "FLOWCTX_REQUIRE_COMPILED=1" in result["error"]
    assert "simulated: no compiled build" in result["error"]


def _pytest(args: list[str], hide: bool, **env: str) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(
        f"""
        import sys
        if {hide!r}:
            class Hide:
                def find_spec(self, name, path=None, target=None):
                    if name == "flowctx._store":
                        raise ImportError("simulated: no compiled build")
            sys.meta_path.insert(0, Hide())
        import pytest
        sys.exit(pytest.main({args!r}))
        """
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=_env(**env), capture_output=True, text=True, cwd=ROOT
    )


TARGET = "tests/test_store.py::TestAccess::test_variable_access"


def test_missing_build_makes_the_compiled_cases_error_not_skip() -> None:
    run = _pytest([TARGET, "-q", "-p", "no:cacheprovider", "-rA"], hide=True)
    assert run.returncode == 1, run.stdout
    assert "1 passed, 1 error" in run.stdout, run.stdout
    assert "ERROR at setup of TestAccess.test_variable_access[cython]" in run.stdout
    assert "skipped" not in run.stdout


def test_no_compiled_option_deselects_the_compiled_cases() -> None:
    run = _pytest([TARGET, "-q", "-p", "no:cacheprovider", "--no-compiled"], hide=True)
    assert run.returncode == 0, run.stdout
    assert "1 passed, 1 deselected" in run.stdout, run.stdout


@pytest.mark.compiled  # needs an importable compiled build: REQUIRE_COMPILED wins over a pure install
def test_require_compiled_contradicts_no_compiled() -> None:
    run = _pytest([TARGET, "-q", "-p", "no:cacheprovider", "--no-compiled"], hide=False, FLOWCTX_REQUIRE_COMPILED="1")
    assert run.returncode == 4  # pytest's usage-error exit code
    assert "contradicts --no-compiled" in run.stderr + run.stdout
