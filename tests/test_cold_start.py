"""What a plain ``flowctx run`` loads: a one-task workflow run through the CLI in a subprocess
does not import what it does not need (jsonschema without parameter schemas, prometheus_client
without a registry or --metrics-port, multiprocessing without the process executor, sqlite3
without durable state or a SQLite key-value store, the HTTP stack without core.http, rich when
the output is piped, regex without a regular expression, uuid without uuid(), socket without
durable state, subprocess without core.local, difflib without a misspelt name).  A behaviour test of ``sys.modules``, not a timing one (the cost is in
benchmarks/test_bench_coldstart.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

NOT_NEEDED = [
    "jsonschema", "prometheus_client", "multiprocessing", "sqlite3", "http.client", "ssl", "rich",
    "regex", "uuid", "platform", "socket", "subprocess", "selectors", "difflib", "pathlib", "getpass", "termios",
]

_PROBE = """
import json, sys
sys.argv = ["flowctx"] + sys.argv[1:]
from flowctx.cli import main
try:
    code = main()
finally:
    print(json.dumps({"loaded": sorted(m for m in %r if m in sys.modules)}), file=sys.stderr)
sys.exit(code)
"""


def _run(tmp_path: Path, workflow: str, *args: str, backend_env: dict[str, str]) -> tuple[int, list[str], str]:
    wf = tmp_path / "wf.yaml"
    wf.write_text(workflow)
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE % (NOT_NEEDED,), "run", str(wf), *args],
        capture_output=True, text=True, timeout=120, env=backend_env,
    )
    last = proc.stderr.strip().splitlines()[-1]
    return proc.returncode, json.loads(last)["loaded"], proc.stdout


@pytest.fixture
def backend_env(backend: object) -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.pop("FLOWCTX_PURE_PYTHON", None)
    if getattr(backend, "__name__", "").endswith("_store_py"):
        env["FLOWCTX_PURE_PYTHON"] = "1"
    return env


ONE_TASK = """\
version: 1.0
input:
  - name: world
tasks:
  hello:
    action: core.echo
    input:
      message: "hello {{ ctx().name }}"
output:
  - greeting: "{{ ctx().name }}"
"""


def test_plain_run_loads_only_what_it_needs(tmp_path: Path, backend_env: dict[str, str]) -> None:
    code, loaded, out = _run(tmp_path, ONE_TASK, backend_env=backend_env)
    assert code == 0, out
    assert "world" in out  # the run really ran and printed its output
    assert loaded == []


def test_what_a_run_needs_is_still_loaded(tmp_path: Path, backend_env: dict[str, str]) -> None:
    """The lazy imports load when asked for: a parameter schema brings jsonschema (and checks
    the value), durable state brings sqlite3."""
    typed = "version: 1.0\ninput:\n  - n\ntasks:\n  t:\n    action: core.noop\n"
    listform = (
        "ref: demo.typed\nversion: '1'\nparameters:\n  n:\n    type: integer\n    required: true\n"
        "tasks:\n  - name: t\n    action: core.noop\n"
    )
    code, loaded, out = _run(tmp_path, listform, "-p", "n=notanumber", backend_env=backend_env)
    assert code != 0 and "jsonschema" in loaded
    code, loaded, out = _run(tmp_path, typed, "--state", str(tmp_path / "run.db"), backend_env=backend_env)
    assert code == 0, out
    assert "sqlite3" in loaded and "socket" in loaded  # the journal's lease names the host


def test_regex_and_uuid_load_when_a_template_uses_them(tmp_path: Path, backend_env: dict[str, str]) -> None:
    """``regex`` (the interruptible engine the regular-expression filters run on) and ``uuid``
    are imported on first use: the filter still runs under the time limit, uuid() still works."""
    wf = (
        "version: 1.0\ntasks:\n  t:\n    action: core.noop\n"
        "output:\n  - m: \"{{ 'host-42' | regex_replace('[0-9]+', 'N') }}\"\n"
        "  - u: \"{{ uuid() | length }}\"\n"
    )
    code, loaded, out = _run(tmp_path, wf, backend_env=backend_env)
    assert code == 0, out
    assert "host-N" in out and "36" in out
    assert "regex" in loaded and "uuid" in loaded


def test_regex_flag_values_match_both_engines() -> None:
    """The render guard names the flags without importing ``regex``: the values must be the
    ones both ``re`` and ``regex`` use."""
    import re

    import regex

    from flowctx.render import _guard

    assert (_guard.IGNORECASE, _guard.MULTILINE, _guard.DOTALL) == (re.IGNORECASE, re.MULTILINE, re.DOTALL)
    assert (_guard.IGNORECASE, _guard.MULTILINE, _guard.DOTALL) == (regex.IGNORECASE, regex.MULTILINE, regex.DOTALL)
    assert isinstance(_guard.rx_compile("a+"), _guard.PATTERN_TYPE)
    assert _guard.RegexError is re.error
