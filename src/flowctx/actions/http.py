"""``core.http``: one HTTP(S) request with the standard library's client (``urllib``)."""
from __future__ import annotations

import json as _json
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from flowctx.actions.base import FAILED, TIMEOUT, ActionContext, ActionResult, in_engine_process, to_plain
from flowctx.actions.core import _seconds
from flowctx.actions.registry import action
from flowctx.errors import ActionError

DEFAULT_TIMEOUT = 60.0
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


def _ssl_context(verify_ssl: Any) -> ssl.SSLContext:
    if verify_ssl in (False, "false", "False", "no", 0):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context()


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


class _NoProxyForLoopback(urllib.request.ProxyHandler):
    """The environment's proxies, except for loopback addresses."""

    def proxy_open(self, req: urllib.request.Request, proxy: str, type: str) -> Any:  # noqa: A002
        host = (req.host or "").rsplit(":", 1)[0].strip("[]")
        if host in ("127.0.0.1", "localhost", "::1"):
            return None
        return super().proxy_open(req, proxy, type)


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
    action_context: ActionContext | None = None,
) -> Any:
    """Send an HTTP request; result {status_code, headers, body, json}.

    ``body`` is sent as is (a mapping is form-encoded), ``json`` is encoded as JSON with
    ``Content-Type: application/json``.  A status of 400 or more fails the task (the result still
    carries the response); ``json`` in the result is the parsed body of a JSON response.
    ``timeout`` (seconds, default 60) applies to connecting and to each read; running out of it
    makes the task time out.  ``verify_ssl: false`` accepts any TLS certificate.
    """
    if not isinstance(url, str) or not url.strip():
        raise ActionError(f"core.http: 'url' must be a non-empty string, got {url!r}")
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise ActionError(f"core.http: 'url' must start with http:// or https://, got {url!r}")
    if not isinstance(method, str) or method.strip().upper() not in METHODS:
        raise ActionError(f"core.http: 'method' must be one of {', '.join(sorted(METHODS))}, got {method!r}")
    verb = method.strip().upper()
    limit = _seconds(timeout, "core.http: 'timeout'") if timeout is not None else None
    request_headers = _headers(headers)
    data = _payload(body, json, request_headers)
    request = urllib.request.Request(url, data=data, headers=request_headers, method=verb)
    opener = urllib.request.build_opener(
        _NoProxyForLoopback(), urllib.request.HTTPSHandler(context=_ssl_context(verify_ssl))
    )
    what = f"{verb} {url}"
    after = f" after {limit:g}s" if limit is not None else ""
    try:
        with opener.open(request, timeout=limit) as response:
            raw = response.read()
            result = _result(response.status, response.headers, raw, response.headers.get_content_charset())
    except urllib.error.HTTPError as exc:
        try:
            raw = exc.read() or b""
        except Exception:
            raw = b""
        charset = exc.headers.get_content_charset() if exc.headers is not None else None
        result = _result(exc.code, exc.headers, raw, charset)
    except (socket.timeout, TimeoutError):
        return ActionResult(TIMEOUT, None, f"core.http: {what} timed out{after}")
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return ActionResult(TIMEOUT, None, f"core.http: {what} timed out{after}")
        if isinstance(reason, ssl.SSLError):
            raise ActionError(f"core.http: {what} failed: TLS error: {reason} (verify_ssl: false skips certificate checks)") from None
        raise ActionError(f"core.http: {what} failed: {reason}") from None
    except (OSError, ValueError) as exc:  # connection reset, malformed URL, ...
        raise ActionError(f"core.http: {what} failed: {exc}") from None
    if result["status_code"] >= 400:
        return ActionResult(FAILED, result, f"core.http: {what} returned HTTP {result['status_code']}")
    return result
