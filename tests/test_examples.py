"""Every workflow in ``examples/`` runs, through the CLI, and produces the output it promises."""
from __future__ import annotations

import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flowctx
from flowctx.actions import DEFAULT_REGISTRY
from flowctx.cli import main
from flowctx.cli.validate import check_file

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
ACTIONS = str(EXAMPLES / "actions.py")
WORKFLOWS = sorted(p.name for p in EXAMPLES.glob("*.yaml"))


@pytest.fixture(autouse=True)
def _restore_registry():
    """examples/actions.py registers examples.*; undo it (and its import) after each test."""
    before = set(DEFAULT_REGISTRY._actions)
    path = list(sys.path)
    had = "actions" in sys.modules
    yield
    for name in set(DEFAULT_REGISTRY._actions) - before:
        del DEFAULT_REGISTRY._actions[name]
    mod = sys.modules.get("actions")
    if not had and mod is not None and os.path.abspath(getattr(mod, "__file__", "") or "") == ACTIONS:
        del sys.modules["actions"]
    sys.path[:] = path


def run_json(capsys: pytest.CaptureFixture[str], *args: str, expect: int = 0) -> dict[str, Any]:
    rc = main(["run", *args, "--json"])
    out, err = capsys.readouterr()
    assert rc == expect, err
    return json.loads(out)


def test_every_example_is_tested() -> None:
    assert WORKFLOWS == [
        "fanout.yaml", "hello-list.yaml", "hello-orquesta.yaml", "orquesta-yaql.yaml",
        "retry-timeout.yaml", "shell-http.yaml",
    ]


@pytest.mark.parametrize("name", WORKFLOWS)
def test_examples_validate_without_errors(name: str) -> None:
    errors = [p for p in check_file(str(EXAMPLES / name)) if p.is_error]
    assert errors == []


# ====================================================================== hello
def test_hello_orquesta(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, str(EXAMPLES / "hello-orquesta.yaml"), "-p", "name=Ada")
    assert doc["output"] == {"greeting": "Hello, Ada!", "shouted": "HELLO, ADA!"}
    assert [t["task"] for t in doc["tasks"]] == ["greet", "shout"]


def test_hello_list(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, str(EXAMPLES / "hello-list.yaml"), "-p", "name=Ada", "-p", "times=3")
    assert doc["output"] == {
        "greeting": "Hello, Ada!",
        "lines": ["1: Hello, Ada!", "2: Hello, Ada!", "3: Hello, Ada!"],
    }
    assert doc["tasks"][1]["items"] == 3


# ====================================================================== fan-out
def test_fanout(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, str(EXAMPLES / "fanout.yaml"), "--actions", ACTIONS)
    assert doc["output"] == {
        "items": 10000, "first": "host-00000", "last": "host-00999",
        "context_bytes": doc["output"]["context_bytes"],
    }
    assert 900_000 < doc["output"]["context_bytes"] < 1_100_000  # a ~1 MB context
    fan = doc["tasks"][1]
    assert (fan["task"], fan["status"], fan["items"]) == ("fan_out", "succeeded", 10000)
    assert doc["metrics"]["actions"] == 10001
    print(f"fan-out: {doc['elapsed']:.3f} s ({flowctx.BACKEND} store)")
    # how long it takes is a benchmark's business (benchmarks/), not a test's: only its shape here
    assert isinstance(doc["elapsed"], float) and doc["elapsed"] > 0


def test_fanout_readme_command_prints_elapsed_last() -> None:
    # README main job: pip install . && flowctx run examples/fanout.yaml --actions examples/actions.py
    proc = subprocess.run(
        [sys.executable, "-m", "flowctx", "run", "examples/fanout.yaml", "--actions", "examples/actions.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert '"items": 10000' in proc.stdout
    last = proc.stdout.splitlines()[-1]
    assert re.fullmatch(
        r"succeeded in [\d.]+ (ms|s) \(2 task\(s\), 10,001 action call\(s\), (cython|python) context store\)", last
    ), last


def test_fanout_smaller_with_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, str(EXAMPLES / "fanout.yaml"), "--actions", ACTIONS, "-p", "items=25", "-p", "hosts=10")
    assert doc["output"]["items"] == 25
    assert doc["output"]["last"] == "host-00004"  # item 24 -> host 24 % 10


# ====================================================================== shell + HTTP
@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    inventory = {
        "hosts": [
            {"name": "web-1", "region": "eu"},
            {"name": "web-2", "region": "eu"},
            {"name": "web-3", "region": "us"},
            {"name": "db-1", "region": "eu"},
        ]
    }
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_shell_http(capsys: pytest.CaptureFixture[str], http_server: str) -> None:
    doc = run_json(capsys, str(EXAMPLES / "shell-http.yaml"), "-p", f"url={http_server}")
    assert doc["status"] == "succeeded", doc["reason"]
    assert doc["output"] == {
        "hosts": 4,
        "status_code": 200,
        "busiest_region": "eu",
        "busiest_count": 3,
        "probe": "not found (404)",
    }
    statuses = {t["task"]: t["status"] for t in doc["tasks"]}
    assert statuses == {
        "fetch": "succeeded", "regions": "succeeded", "probe": "failed",
        "note_missing": "succeeded", "done": "succeeded",
    }


def test_shell_http_needs_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(EXAMPLES / "shell-http.yaml")]) == 2
    assert "missing required parameter 'url'" in capsys.readouterr().err


def test_shell_http_server_down(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, str(EXAMPLES / "shell-http.yaml"), "-p", "url=http://127.0.0.1:9", expect=1)
    assert doc["status"] == "failed"
    assert doc["reason"].startswith("task 'fetch' failed:")


# ====================================================================== retry / timeout
def test_retry_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, str(EXAMPLES / "retry-timeout.yaml"), "--actions", ACTIONS)
    assert doc["status"] == "succeeded", doc["reason"]
    assert doc["output"] == {"attempts": 3, "path": "timeout branch", "slow_command": "timeout"}
    tasks = {t["task"]: t for t in doc["tasks"]}
    assert tasks["flaky_call"]["attempts"] == 3
    # back-off 0.05 s then 0.1 s between the three attempts
    assert tasks["flaky_call"]["duration"] >= 0.14
    slow = tasks["slow_command"]
    assert slow["status"] == "timeout"
    assert 0.4 < slow["duration"] < 1.5  # killed at its 0.5 s timeout, not after 30 s
    assert "took_too_long" in tasks and "finished_in_time" not in tasks


def test_retry_timeout_other_paths(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, str(EXAMPLES / "retry-timeout.yaml"), "--actions", ACTIONS,
                   "-p", "failures=0", "-p", "sleep=0.01")
    assert doc["output"] == {"attempts": 1, "path": "in time", "slow_command": "succeeded"}
    doc = run_json(capsys, str(EXAMPLES / "retry-timeout.yaml"), "--actions", ACTIONS,
                   "-p", "failures=9", expect=1)
    assert doc["reason"] == (
        "task 'flaky_call' failed: flaky: attempt 5 failed on purpose (9 failure(s) planned)"
    )
    assert doc["tasks"][0]["attempts"] == 5


# ====================================================================== Orquesta + YAQL
def test_orquesta_yaql(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("yaql")
    doc = run_json(capsys, str(EXAMPLES / "orquesta-yaql.yaml"))
    assert doc["output"] == {
        "checked": ["api=ok", "web=ok", "worker=ok"],
        "unhealthy": [],
        "verdict": "all 3 services healthy",
    }
    doc = run_json(capsys, str(EXAMPLES / "orquesta-yaql.yaml"), "-p", "services=[api, db, web, db]")
    assert doc["output"] == {
        "checked": ["api=ok", "db=degraded", "web=ok", "db=degraded"],
        "unhealthy": ["db", "db"],
        "verdict": "2 of 4 degraded (db, db)",
    }
    assert doc["tasks"][0]["items"] == 4


# ====================================================================== README tour
def _tour_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## Tour\n")
    end = text.find("\n## ", start + 1)
    return text[start: end if end != -1 else len(text)]


def _blocks(section: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```(\w+)\n(.*?)```", section, re.S)]


def _flowctx(command: str) -> str:
    """The README's `flowctx ...` run with this interpreter (the console script may not be on PATH)."""
    return re.sub(r"(^|&& )flowctx ", lambda m: f"{m.group(1)}{sys.executable} -m flowctx ", command)


def test_readme_tour(tmp_path: Path) -> None:
    blocks = _blocks(_tour_section())
    files = {}
    for lang, body in blocks:
        first = body.splitlines()[0]
        m = re.fullmatch(r"# (\S+\.(?:yaml|py))", first)
        if lang in ("yaml", "python") and m:
            files[m.group(1)] = body
            (tmp_path / m.group(1)).write_text(body)
    assert set(files) == {"deploy.yaml", "tour_actions.py", "deploy-fails.rehearsal.yaml"}

    env = {**os.environ, "PYTHONPATH": str(tmp_path), "COLUMNS": "200"}
    transcripts = [body for lang, body in blocks if lang == "console"]
    assert len(transcripts) == 3
    ran = 0
    for transcript in transcripts:
        steps: list[tuple[str, list[str]]] = []
        for line in transcript.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
        for command, expected in steps:
            proc = subprocess.run(_flowctx(command), shell=True, cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=120)
            actual = (proc.stdout + proc.stderr).splitlines()
            ran += 1
            # every expected line shows up, in order (timings and "..." are not compared)
            pos = 0
            for want in expected:
                if want == "..." or re.search(r"(succeeded|failed) in [\d.]+ m?s", want):
                    continue
                while pos < len(actual) and actual[pos].rstrip() != want.rstrip():
                    pos += 1
                assert pos < len(actual), f"{command!r}: line {want!r} missing from:\n{proc.stdout}{proc.stderr}"
                pos += 1
            timing = [w for w in expected if re.search(r"(succeeded|failed) in ", w)]
            for want in timing:
                status = want.split()[0]
                assert any(a.startswith(f"{status} in ") for a in actual), (command, actual)
    assert ran == 6

    python = next(body for lang, body in blocks if lang == "python" and not body.startswith("# "))
    proc = subprocess.run([sys.executable, "-c", python + "\nprint(result.status, result.output)"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "succeeded {'deployed': ['web-1', 'web-2', 'web-3']}"
