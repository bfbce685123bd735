"""core.http against a real HTTP/1.1 server on 127.0.0.1: connections reused, one overall
timeout, a response-size cap, redirects (307/308 keep the method and body), no credentials to
another host."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from flowctx.actions import DEFAULT_REGISTRY, ActionResult
from flowctx.actions.http import POOL


def http(**kw: Any) -> Any:
    return DEFAULT_REGISTRY.resolve("core.http").func(**kw)


class _KeepAlive(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as production servers do (tcp_nodelay): no 40 ms delayed-ACK stalls
    connections: set[int] = set()
    seen: list[dict[str, Any]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        type(self).connections.add(id(self.connection))

    def _send(self, code: int, body: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        type(self).seen.append({"method": self.command, "path": self.path, "body": body,
                                "auth": self.headers.get("Authorization")})
        if self.path.startswith("/redirect/"):
            code, target = self.path.split("/", 3)[2:4]
            self._send(int(code), b"", {"Location": "/" + target if "://" not in target else target})
        elif self.path == "/big":
            self._send(200, b"x" * 200_000)
        elif self.path == "/trickle":  # each byte in time for a per-read timeout, not for the whole
            self.send_response(200)
            self.send_header("Content-Length", "40")
            self.end_headers()
            try:
                for _ in range(40):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
        else:
            self._send(200, json.dumps({"method": self.command, "path": self.path, "body": body}).encode())

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


@pytest.fixture
def server() -> Iterator[str]:
    _KeepAlive.connections = set()
    _KeepAlive.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAlive)
    httpd.daemon_threads = True
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    POOL.clear()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    POOL.clear()
    httpd.shutdown()
    httpd.server_close()


def test_connections_are_reused_across_calls(server: str) -> None:
    for i in range(50):
        assert http(url=f"{server}/n/{i}")["json"]["path"] == f"/n/{i}"
    assert len(_KeepAlive.connections) == 1  # 50 calls, one connection


def test_concurrent_calls_use_a_few_connections(server: str) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for i in range(25):
                assert http(url=f"{server}/c/{i}")["status_code"] == 200
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(_KeepAlive.connections) <= 4  # one per concurrent caller at most, not 100


def test_the_timeout_bounds_the_whole_request(server: str) -> None:
    result = http(url=f"{server}/trickle", timeout=0.5)  # 40 bytes at 0.1 s each: 4 s in all
    assert isinstance(result, ActionResult) and result.status == "timeout"
    assert result.error == f"core.http: GET {server}/trickle timed out after 0.5s"


def test_a_response_over_max_bytes_fails(server: str) -> None:
    result = http(url=f"{server}/big", max_bytes=100_000)
    assert isinstance(result, ActionResult) and result.status == "failed"
    assert "larger than max_bytes (100000 bytes)" in result.error
    assert len(http(url=f"{server}/big")["body"]) == 200_000  # the default cap is far above


@pytest.mark.parametrize("code", [307, 308])
def test_307_308_repeat_the_method_and_body(server: str, code: int) -> None:
    result = http(url=f"{server}/redirect/{code}/target", method="POST", json={"a": 1})
    assert result["json"] == {"method": "POST", "path": "/target", "body": '{"a": 1}'}


@pytest.mark.parametrize("code", [301, 302, 303])
def test_301_302_303_turn_a_post_into_a_get(server: str, code: int) -> None:
    result = http(url=f"{server}/redirect/{code}/target", method="POST", body="x")
    assert result["json"] == {"method": "GET", "path": "/target", "body": ""}


def test_credentials_are_not_sent_to_another_host(server: str) -> None:
    other = server.replace("127.0.0.1", "localhost")
    http(url=f"{server}/redirect/302/{other}/landing", headers={"Authorization": "Bearer s3cret"})
    first, landing = _KeepAlive.seen[0], _KeepAlive.seen[-1]
    assert first["auth"] == "Bearer s3cret"
    assert landing["path"] == "/landing" and landing["auth"] is None


def test_a_redirect_loop_is_a_clear_error(server: str) -> None:
    from flowctx.errors import ActionError

    with pytest.raises(ActionError, match="redirected more than 10 times"):
        http(url=f"{server}/redirect/302/redirect/302/redirect/302/redirect/302/redirect/302/redirect/302/"
                 "redirect/302/redirect/302/redirect/302/redirect/302/redirect/302/redirect/302/end")


def test_a_server_that_closed_an_idle_connection_is_retried_once(server: str) -> None:
    assert http(url=f"{server}/a")["status_code"] == 200
    for conns in POOL._idle.values():  # the server side "times out" the idle connection
        for c in conns:
            c.sock.close()
            c.sock = None
            c._HTTPConnection__state = "Idle"  # noqa: SLF001 - what a dropped keep-alive looks like
    assert http(url=f"{server}/b")["status_code"] == 200
