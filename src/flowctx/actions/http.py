"""``core.http``: one HTTP(S) request, on connections kept open and reused per host.

Built on the standard library's ``http.client``: a with-items task of 10,000 calls to one host
opens a handful of connections (one per concurrent call) instead of 10,000, and pays one TLS
handshake per connection, not per call.  ``timeout`` bounds the whole request (connect, send,
every read, redirects), ``max_bytes`` the response body; redirects are followed (301/302/303 turn
a POST into a GET as browsers do, 307/308 repeat the method and body; credentials are not sent to
another host).  Proxies come from the environment (``http_proxy``, ``https_proxy``,
``no_proxy``), never for loopback addresses.
"""
from __future__ import annotations

import json as _json
import socket
import threading
import time
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import http.client as httplib
    import ssl
    import urllib.request


def _net() -> None:
    """Import http.client / ssl / urllib.request on the first request (not when the built-in
    actions are registered: a run without ``core.http`` does not load them)."""
    global httplib, ssl
    if "httplib" not in globals():
        import http.client as httplib
        import ssl
        import urllib.request  # noqa: F401  (urllib.request.getproxies, in _proxy_for)

from flowctx.actions.base import FAILED, TIMEOUT, ActionContext, ActionResult, in_engine_process, to_plain
from flowctx.actions.core import _seconds
from flowctx.actions.registry import action
from flowctx.errors import ActionError

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # a response body larger than this fails the call
MAX_REDIRECTS = 10
_IDLE_PER_HOST = 16  # idle connections kept per (scheme, host, port, TLS verification, proxy)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _headers(headers: Any) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise ActionError(f"core.http: 'headers' must be a mapping of header names to values, got {type(headers).__name__}")
    out: dict[str, str] = {}
    for key, value in headers.items():
        if not isinstance(key, str) or not key.strip() or any(c in key for c in "\r\n:"):
            raise ActionError(f"core.http: invalid header name {key!r}")
        text = str(value)
        if "\r" in text or "\n" in text:
            raise ActionError(f"core.http: header {key!r} contains a line break")
        out[key] = text
    return out


def _has(headers: Mapping[str, str], name: str) -> bool:
    return any(k.lower() == name.lower() for k in headers)


def _payload(body: Any, json_value: Any, headers: dict[str, str]) -> bytes | None:
    if body is not None and json_value is not None:
        raise ActionError("core.http: give either 'body' or 'json', not both")
    if json_value is not None:
        if not _has(headers, "Content-Type"):
            headers["Content-Type"] = "application/json"
        try:
            return _json.dumps(to_plain(json_value)).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise ActionError(f"core.http: 'json' cannot be encoded as JSON: {exc}") from None
    if body is None:
        return None
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, Mapping):
        if not _has(headers, "Content-Type"):
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        return urllib.parse.urlencode(to_plain(body), doseq=True).encode("utf-8")
    raise ActionError(f"core.http: 'body' must be a string, bytes or a mapping (form fields), got {type(body).__name__}")


_SSL_CONTEXTS: dict[bool, ssl.SSLContext] = {}


def _ssl_context(verify_ssl: Any) -> ssl.SSLContext:
    """One TLS context per verification setting, shared by every call (and its session cache)."""
    _net()
    verify = verify_ssl not in (False, "false", "False", "no", 0)
    ctx = _SSL_CONTEXTS.get(verify)
    if ctx is None:
        ctx = ssl.create_default_context()
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        ctx = _SSL_CONTEXTS.setdefault(verify, ctx)
    return ctx


class _Pool:
    """Idle keep-alive connections, by destination; a connection is used by one call at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[tuple[Any, ...], list[httplib.HTTPConnection]] = {}
        self.opened = 0  # connections made since the start (for tests and diagnostics)

    def get(self, key: tuple[Any, ...]) -> httplib.HTTPConnection | None:
        with self._lock:
            conns = self._idle.get(key)
            return conns.pop() if conns else None

    def put(self, key: tuple[Any, ...], conn: httplib.HTTPConnection) -> None:
        with self._lock:
            conns = self._idle.setdefault(key, [])
            if len(conns) < _IDLE_PER_HOST:
                conns.append(conn)
                return
        conn.close()

    def new(self, key: tuple[Any, ...], timeout: float | None) -> httplib.HTTPConnection:
        _net()
        scheme, host, port, verify, proxy = key
        with self._lock:
            self.opened += 1
        if proxy is not None:
            p = urllib.parse.urlsplit(proxy)
            phost, pport = p.hostname or "", p.port or (443 if p.scheme == "https" else 80)
            if scheme == "https":
                conn: httplib.HTTPConnection = httplib.HTTPSConnection(
                    phost, pport, timeout=timeout, context=_ssl_context(verify)
                )
                conn.set_tunnel(host, port)
                return conn
            return httplib.HTTPConnection(phost, pport, timeout=timeout)
        if scheme == "https":
            return httplib.HTTPSConnection(host, port, timeout=timeout, context=_ssl_context(verify))
        return httplib.HTTPConnection(host, port, timeout=timeout)

    def clear(self) -> None:
        with self._lock:
            conns = [c for cs in self._idle.values() for c in cs]
            self._idle.clear()
        for c in conns:
            c.close()


POOL = _Pool()


def _proxy_for(scheme: str, host: str) -> str | None:
    _net()
    if host in ("127.0.0.1", "localhost", "::1"):
        return None
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme)
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


class _Timeout(Exception):
    pass


class _TooLarge(Exception):
    pass


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise _Timeout()
    return left


def _read_body(resp: httplib.HTTPResponse, conn: httplib.HTTPConnection, deadline: float | None, cap: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        left = _remaining(deadline)
        if conn.sock is not None:
            conn.sock.settimeout(left)
        chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > cap:
            raise _TooLarge()
        chunks.append(chunk)


def _exchange(
    verb: str, url: str, headers: dict[str, str], data: bytes | None, verify: Any,
    deadline: float | None, cap: int,
) -> tuple[int, httplib.HTTPMessage, bytes]:
    """One request/response on a pooled connection; a reused connection that the server closed
    meanwhile is replaced once."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    port = parts.port or (443 if scheme == "https" else 80)
    proxy = _proxy_for(scheme, host)
    key = (scheme, host, port, verify not in (False, "false", "False", "no", 0), proxy)
    target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, "")) if not (proxy and scheme == "http") else url
    for attempt in (0, 1):
        conn = POOL.get(key) if attempt == 0 else None
        reused = conn is not None
        if conn is None:
            conn = POOL.new(key, _remaining(deadline))
        try:
            if conn.sock is None:
                conn.connect()
            conn.sock.settimeout(_remaining(deadline))
            conn.request(verb, target, body=data, headers=headers)
            resp = conn.getresponse()
            raw = b"" if verb == "HEAD" else _read_body(resp, conn, deadline, cap)
        except (httplib.RemoteDisconnected, ConnectionResetError, BrokenPipeError, httplib.BadStatusLine):
            conn.close()
            if reused:
                continue  # the server closed an idle connection: try once on a new one
            raise
        except BaseException:
            conn.close()
            raise
        resp.close()  # the body is read: the connection may send its next request
        if resp.will_close:
            conn.close()
        else:
            POOL.put(key, conn)
        return resp.status, resp.headers, raw
    raise ConnectionError("the server closed the connection")  # pragma: no cover


def _result(status: int, headers: Any, raw: bytes, charset: str | None) -> dict[str, Any]:
    text = raw.decode(charset or "utf-8", errors="replace")
    content_type = (headers.get("Content-Type") or "") if headers is not None else ""
    parsed: Any = None
    if "json" in content_type.lower() and text.strip():
        try:
            parsed = _json.loads(text)
        except ValueError:
            parsed = None
    header_map: dict[str, str] = {}
    if headers is not None:
        for key, value in headers.items():
            header_map[key] = f"{header_map[key]}, {value}" if key in header_map else value
    return {"status_code": status, "headers": header_map, "body": text, "json": parsed}


@action("core.http")
@in_engine_process
def http(
    url: str,
    method: str = "GET",
    headers: Mapping[str, Any] | None = None,
    body: Any = None,
    json: Any = None,
    timeout: Any = DEFAULT_TIMEOUT,
    verify_ssl: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
    action_context: ActionContext | None = None,
) -> Any:
    """Send an HTTP request; result {status_code, headers, body, json}.

    ``body`` is sent as is (a mapping is form-encoded), ``json`` is encoded as JSON with
    ``Content-Type: application/json``.  A status of 400 or more fails the task (the result still
    carries the response); ``json`` in the result is the parsed body of a JSON response.
    ``timeout`` (seconds, default 60) bounds the whole request, redirects included; running out
    of it makes the task time out.  A response body over ``max_bytes`` (default 64 MiB) fails
    the task.  ``verify_ssl: false`` accepts any TLS certificate.  Connections are kept open and
    reused for later calls to the same host.
    """
    _net()
    if not isinstance(url, str) or not url.strip():
        raise ActionError(f"core.http: 'url' must be a non-empty string, got {url!r}")
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise ActionError(f"core.http: 'url' must start with http:// or https://, got {url!r}")
    if not isinstance(method, str) or method.strip().upper() not in METHODS:
        raise ActionError(f"core.http: 'method' must be one of {', '.join(sorted(METHODS))}, got {method!r}")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
        raise ActionError(f"core.http: 'max_bytes' must be a whole number >= 0, got {max_bytes!r}")
    verb = method.strip().upper()
    limit = _seconds(timeout, "core.http: 'timeout'") if timeout is not None else None
    request_headers = _headers(headers)
    data = _payload(body, json, request_headers)
    what = f"{verb} {url}"
    after = f" after {limit:g}s" if limit is not None else ""
    deadline = time.monotonic() + limit if limit is not None else None
    current, host = url, urllib.parse.urlsplit(url).hostname
    try:
        for _ in range(MAX_REDIRECTS + 1):
            status, resp_headers, raw = _exchange(verb, current, request_headers, data, verify_ssl, deadline, max_bytes)
            location = resp_headers.get("Location")
            if status not in (301, 302, 303, 307, 308) or not location:
                break
            current = urllib.parse.urljoin(current, location)
            if urllib.parse.urlsplit(current).scheme.lower() not in ("http", "https"):
                raise ActionError(f"core.http: {what} redirected to {current!r}, which is not http(s)")
            if status in (301, 302, 303) and verb not in ("GET", "HEAD"):
                verb, data = "GET", None  # what browsers do (and RFC 9110 allows)
                request_headers = {k: v for k, v in request_headers.items() if k.lower() not in ("content-type", "content-length")}
            new_host = urllib.parse.urlsplit(current).hostname
            if new_host != host:  # never hand credentials to another host
                request_headers = {k: v for k, v in request_headers.items() if k.lower() not in ("authorization", "cookie")}
                host = new_host
        else:
            raise ActionError(f"core.http: {what} redirected more than {MAX_REDIRECTS} times")
    except (_Timeout, socket.timeout, TimeoutError):
        return ActionResult(TIMEOUT, None, f"core.http: {what} timed out{after}")
    except _TooLarge:
        return ActionResult(FAILED, None, f"core.http: {what}: the response is larger than max_bytes ({max_bytes} bytes)")
    except ssl.SSLError as exc:
        raise ActionError(f"core.http: {what} failed: TLS error: {exc} (verify_ssl: false skips certificate checks)") from None
    except (OSError, ValueError, httplib.HTTPException) as exc:  # refused, reset, malformed URL ...
        raise ActionError(f"core.http: {what} failed: {exc}") from None
    charset = resp_headers.get_content_charset() if hasattr(resp_headers, "get_content_charset") else None
    result = _result(status, resp_headers, raw, charset)
    if result["status_code"] >= 400:
        return ActionResult(FAILED, result, f"core.http: {what} returned HTTP {result['status_code']}")
    return result
