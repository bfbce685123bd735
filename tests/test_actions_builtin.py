"""The built-in ``core.*`` actions, called directly (executors are tested in test_executors*)."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from flowctx.actions import DEFAULT_REGISTRY, ActionContext, ActionResult
from flowctx.actions.core import INQUIRY_NEEDS_RESPONDER
from flowctx.errors import ActionError
from flowctx.executors import call_action


def act(name: str):
    return DEFAULT_REGISTRY.resolve(name).func


def ctx(task: str = "t", **kw: Any) -> ActionContext:
    return ActionContext(task=task, **kw)


# -- process helpers shared with the executor tests (/proc on Linux, ps(1) elsewhere) ------------
def _ps() -> list[tuple[int, int, str]]:
    """(pid, pgid, state letter) of every process, from ps(1) where there is no /proc."""
    out = subprocess.run(["ps", "-A", "-o", "pid=,pgid=,stat="], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            rows.append((int(parts[0]), int(parts[1]), parts[2][0]))
    return rows


def proc_state(pid: int) -> str | None:
    """The state letter of a process (None if it does not exist)."""
    if not sys.platform.startswith("linux"):
        return next((state for p, _, state in _ps() if p == pid), None)
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data.rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    """Running (zombies, which only wait to be reaped by whoever inherited them, count as gone)."""
    return proc_state(pid) not in (None, "Z", "X")


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid``."""
    if not sys.platform.startswith("linux"):
        return [p for p, g, state in _ps() if g == pgid and state not in ("Z", "X")]
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def wait_until(predicate, limit: float) -> bool:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# -- noop / echo / fail -----------------------------------------------------------------------
def test_noop_accepts_anything(backend):
    assert act("core.noop")(**backend.freeze({"a": 1, "b": [1, 2]})) is None


def test_echo_returns_stdout(backend):
    message = backend.freeze({"nested": [1, 2]})
    assert act("core.echo")(message=message) == {"stdout": message, "message": message}
    with pytest.raises(TypeError):  # message is required (as in st2's core.echo): validate refuses its absence
        act("core.echo")()


def test_fail_fails_with_its_message():
    outcome = call_action(act("core.fail"), {"message": "stop here"}, None)
    assert outcome.status == "failed"
    assert outcome.error == "stop here"
    assert call_action(act("core.fail"), {}, None).error == "core.fail was called"


# -- sleep ------------------------------------------------------------------------------------
def test_sleep_sleeps():
    start = time.monotonic()
    assert act("core.sleep")(seconds=0.05, action_context=ctx()) == {"slept": 0.05}
    assert act("core.sleep")(seconds="0.01") == {"slept": 0.01}
    assert time.monotonic() - start >= 0.06


def test_sleep_stops_when_canceled():
    context = ctx()
    threading.Timer(0.1, context.cancel_event.set).start()
    start = time.monotonic()
    result = act("core.sleep")(seconds=30, action_context=context)
    assert time.monotonic() - start < 5
    assert isinstance(result, ActionResult) and result.status == "failed"
    assert "canceled" in result.error


@pytest.mark.parametrize("bad", [-1, "soon", None, True, float("inf")])
def test_sleep_rejects_bad_seconds(bad):
    with pytest.raises(ActionError, match="core.sleep: 'seconds'"):
        act("core.sleep")(seconds=bad)


# -- local ------------------------------------------------------------------------------------
def test_local_captures_stdout_stderr_and_return_code():
    result = act("core.local")(cmd="echo hello; echo oops >&2", action_context=ctx())
    assert result == {"stdout": "hello", "stderr": "oops", "return_code": 0, "succeeded": True, "failed": False}


def test_local_nonzero_exit_is_failed_with_the_result():
    result = act("core.local")(cmd="echo partial; echo 'bad thing' >&2; exit 3", action_context=ctx())
    assert isinstance(result, ActionResult)
    assert result.status == "failed"
    assert result.result == {"stdout": "partial", "stderr": "bad thing", "return_code": 3, "succeeded": False, "failed": True}
    assert result.error == "core.local: command exited with code 3: bad thing"


def test_local_cwd_env_and_argument_lists(tmp_path, backend):
    result = act("core.local")(cmd="pwd; echo $FX_VAR", cwd=str(tmp_path), env=backend.freeze({"FX_VAR": 42}))
    assert result["stdout"].splitlines() == [str(tmp_path), "42"]
    listed = act("core.local")(cmd=backend.freeze(["printf", "%s|", "a b", "$HOME"]))
    assert listed["stdout"] == "a b|$HOME|"


def test_local_relative_cwd_is_taken_from_the_workflow_directory(tmp_path):
    (tmp_path / "sub").mkdir()
    context = ctx(workflow_file=str(tmp_path / "flow.yaml"))
    assert act("core.local")(cmd="pwd", cwd="sub", action_context=context)["stdout"] == str(tmp_path / "sub")


def test_local_env_none_removes_a_variable(monkeypatch):
    monkeypatch.setenv("FX_GONE", "present")
    assert act("core.local")(cmd='echo "[${FX_GONE-unset}]"', env={"FX_GONE": None})["stdout"] == "[unset]"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cmd": ""}, "'cmd' is empty"),
        ({"cmd": 5}, "'cmd' must be a shell command string"),
        ({"cmd": ["ls", {"a": 1}]}, "every element of a 'cmd' list must be a string"),
        ({"cmd": "true", "cwd": "/no/such/dir"}, "'cwd' '/no/such/dir' is not a directory"),
        ({"cmd": "true", "env": ["A=1"]}, "'env' must be a mapping"),
        ({"cmd": "true", "env": {"A=B": 1}}, "invalid environment variable name"),
        ({"cmd": "true", "timeout": "never"}, "core.local: 'timeout' must be a number"),
        ({"cmd": ["/no/such/binary"]}, "cannot start /no/such/binary"),
    ],
)
def test_local_bad_inputs_are_clear_errors(kwargs, message):
    with pytest.raises(ActionError, match=message.replace("(", r"\(")):
        act("core.local")(**kwargs)


def test_local_timeout_kills_the_whole_process_group(tmp_path):
    pids = tmp_path / "pids"
    start = time.monotonic()
    result = act("core.local")(
        cmd=f"sleep 30 & echo $! > {pids}; echo $$ >> {pids}; echo started; sleep 30",
        timeout=1,
        action_context=ctx(),
    )
    elapsed = time.monotonic() - start
    assert isinstance(result, ActionResult)
    assert result.status == "timeout"
    assert "timed out after 1s" in result.error
    assert result.result["stdout"] == "started"
    assert result.result["failed"] is True
    assert elapsed < 15, "the command ran on (it sleeps 30 s): the timeout did not kill it"
    background, shell = (int(x) for x in pids.read_text().split())
    assert not alive(shell) and not alive(background)
    # SIGKILL is delivered at once but a loaded machine may take a moment to tear processes down
    assert wait_until(lambda: group_members(shell) == [], 10.0), group_members(shell)


def test_local_cancel_event_kills_the_process_group(tmp_path):
    pidfile = tmp_path / "pid"
    context = ctx()
    box: dict[str, Any] = {}

    def run() -> None:
        box["result"] = act("core.local")(cmd=f"echo $$ > {pidfile}; sleep 30", action_context=context)

    t = threading.Thread(target=run)
    t.start()
    assert wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 5)
    pgid = int(pidfile.read_text())
    assert alive(pgid)
    context.cancel_event.set()
    t.join(2)
    assert not t.is_alive()
    assert box["result"].status == "failed" and "canceled" in box["result"].error
    assert wait_until(lambda: group_members(pgid) == [], 1.0), group_members(pgid)


def test_local_kills_background_jobs_left_when_the_command_exits(tmp_path):
    pidfile = tmp_path / "pid"
    result = act("core.local")(cmd=f"sleep 30 > /dev/null 2>&1 & echo $! > {pidfile}; echo done")
    assert result["stdout"] == "done"
    assert wait_until(lambda: not alive(int(pidfile.read_text())), 1)


def test_local_child_ignoring_sigterm_is_killed(tmp_path):
    pidfile = tmp_path / "pid"
    start = time.monotonic()
    result = act("core.local")(
        cmd=f"trap '' TERM; echo $$ > {pidfile}; while true; do sleep 0.05; done", timeout=0.5
    )
    assert result.status == "timeout"
    assert time.monotonic() - start < 15  # the command never ends by itself
    assert wait_until(lambda: group_members(int(pidfile.read_text())) == [], 10.0)


# -- http -------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _send(self, code: int, body: bytes, content_type: str = "application/json", extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        payload = {
            "method": self.command,
            "path": self.path,
            "body": body,
            "content_type": self.headers.get("Content-Type"),
            "x_token": self.headers.get("X-Token"),
        }
        self._send(200, json.dumps(payload).encode(), extra={"X-Reply": "yes"})

    def do_GET(self) -> None:
        if self.path.startswith("/status/"):
            code = int(self.path.rsplit("/", 1)[1])
            self._send(code, json.dumps({"error": f"status {code}"}).encode())
        elif self.path == "/text":
            self._send(200, "plain text é".encode(), "text/plain; charset=utf-8")
        elif self.path == "/slow":
            time.sleep(20)
            try:
                self._send(200, b"{}")
            except OSError:  # the client gave up (that is the point of the test)
                pass
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/text")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._echo()

    do_POST = do_PUT = do_DELETE = do_PATCH = _echo


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_http_get_json(server):
    result = act("core.http")(url=f"{server}/things?x=1", headers={"X-Token": "abc"})
    assert result["status_code"] == 200
    assert result["json"] == {"method": "GET", "path": "/things?x=1", "body": "", "content_type": None, "x_token": "abc"}
    assert result["headers"]["X-Reply"] == "yes"
    assert json.loads(result["body"]) == result["json"]


def test_http_post_json_with_frozen_values(server, backend):
    payload = backend.freeze({"items": [1, 2, {"a": None}]})
    result = act("core.http")(url=f"{server}/create", method="post", json=payload)
    assert result["json"]["method"] == "POST"
    assert result["json"]["content_type"] == "application/json"
    assert json.loads(result["json"]["body"]) == {"items": [1, 2, {"a": None}]}


def test_http_body_string_and_form(server):
    sent = act("core.http")(url=server, method="PUT", body="raw text", headers={"Content-Type": "text/plain"})
    assert sent["json"]["body"] == "raw text" and sent["json"]["content_type"] == "text/plain"
    form = act("core.http")(url=server, method="POST", body={"a": "1", "b": ["x", "y"]})
    assert form["json"]["body"] == "a=1&b=x&b=y"
    assert form["json"]["content_type"] == "application/x-www-form-urlencoded"


def test_http_text_response_has_no_json(server):
    result = act("core.http")(url=f"{server}/redirect")
    assert result["status_code"] == 200
    assert result["body"] == "plain text é"
    assert result["json"] is None


@pytest.mark.parametrize("code", [404, 500])
def test_http_error_status_fails_with_the_result(server, code):
    result = act("core.http")(url=f"{server}/status/{code}")
    assert isinstance(result, ActionResult)
    assert result.status == "failed"
    assert result.result["status_code"] == code
    assert result.result["json"] == {"error": f"status {code}"}
    assert result.error == f"core.http: GET {server}/status/{code} returned HTTP {code}"


def test_http_timeout_is_a_timeout(server):
    start = time.monotonic()
    result = act("core.http")(url=f"{server}/slow", timeout=0.3)
    assert isinstance(result, ActionResult) and result.status == "timeout"
    assert "timed out after 0.3s" in result.error
    assert time.monotonic() - start < 10  # the server answers only after 20 s


def test_http_connection_refused_is_a_clear_error():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(ActionError, match=rf"core.http: GET http://127.0.0.1:{port}/ failed: .*refused"):
        act("core.http")(url=f"http://127.0.0.1:{port}/", timeout=2)


def test_http_verify_ssl_false_builds_an_unverified_context():
    from flowctx.actions.http import _ssl_context
    import ssl

    assert _ssl_context(False).verify_mode == ssl.CERT_NONE
    assert _ssl_context(True).verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "file:///etc/passwd"}, "must start with http:// or https://"),
        ({"url": ""}, "'url' must be a non-empty string"),
        ({"url": "http://x", "method": "FETCH"}, "'method' must be one of"),
        ({"url": "http://x", "body": "a", "json": {}}, "either 'body' or 'json'"),
        ({"url": "http://x", "headers": {"Bad\nName": "v"}}, "invalid header name"),
        ({"url": "http://x", "body": 12}, "'body' must be a string, bytes or a mapping"),
    ],
)
def test_http_bad_inputs_are_clear_errors(kwargs, message):
    with pytest.raises(ActionError, match=message):
        act("core.http")(**kwargs)


# -- inquiry ----------------------------------------------------------------------------------
def test_inquiry_without_responder_fails_with_the_message():
    outcome = call_action(act("core.inquiry"), {"prompt": "ok?"}, ctx("approve"))
    assert outcome.status == "failed"
    assert outcome.error == INQUIRY_NEEDS_RESPONDER
    assert INQUIRY_NEEDS_RESPONDER == (
        "core.inquiry needs a responder: pass responder=... to flowctx.run (or --answer on the CLI)"
    )
    assert call_action(act("core.inquiry"), {}, None).error == INQUIRY_NEEDS_RESPONDER


def test_inquiry_with_responder_returns_the_response(backend):
    seen: list[Any] = []

    def responder(payload):
        seen.append(payload)
        return {"approved": True, "approver_notes": "fine"}

    schema = backend.freeze(
        {"type": "object", "properties": {"approved": {"type": "boolean"}, "tags": {"type": "array"}}, "required": ["approved"]}
    )
    outcome = call_action(
        act("core.inquiry"),
        {"prompt": "Approve?", "schema": schema, "assigned_to": "ops", "timeout": 3600},
        ctx("approve", responder=responder, workflow_file="/w/flow.yaml"),
    )
    assert outcome.status == "succeeded"
    assert outcome.result == {"approved": True, "approver_notes": "fine"}
    assert seen[0]["task"] == "approve"
    assert seen[0]["prompt"] == "Approve?"
    assert seen[0]["assigned_to"] == "ops"
    assert seen[0]["timeout"] == 3600
    assert seen[0]["workflow_file"] == "/w/flow.yaml"


def test_inquiry_response_not_matching_the_schema_fails():
    schema = {"type": "object", "properties": {"approved": {"type": "boolean"}}, "required": ["approved"]}
    outcome = call_action(act("core.inquiry"), {"schema": schema}, ctx(responder=lambda p: {"approved": "yes"}))
    assert outcome.status == "failed"
    assert outcome.error == "core.inquiry: the response does not match the schema at approved: 'yes' is not of type 'boolean'"
    bad_schema = call_action(act("core.inquiry"), {"schema": {"type": 5}}, ctx(responder=lambda p: 1))
    assert bad_schema.status == "failed" and "is not a valid JSON schema" in bad_schema.error


def test_inquiry_responder_timeout_is_a_timeout():
    def responder(payload):
        raise TimeoutError("nobody answered")

    outcome = call_action(act("core.inquiry"), {"prompt": "?"}, ctx(responder=responder))
    assert outcome.status == "timeout"
    assert outcome.error == "core.inquiry: no answer in time: nobody answered"
