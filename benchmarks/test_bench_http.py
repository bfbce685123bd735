"""core.http per call against a keep-alive HTTP/1.1 server on 127.0.0.1, same run:
pooled connections (core.http) vs a new connection per call (urllib.request, what core.http did
before).  ``pytest benchmarks/test_bench_http.py --benchmark-group-by=group``."""
from __future__ import annotations

import json
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowctx.actions import DEFAULT_REGISTRY
from flowctx.actions.http import POOL

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from http.server import ThreadingHTTPServer  # noqa: E402

from test_http_pool import _KeepAlive  # noqa: E402

CALLS = 200


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAlive)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    POOL.clear()
    httpd.shutdown()
    httpd.server_close()


def _pooled(url: str) -> int:
    func = DEFAULT_REGISTRY.resolve("core.http").func
    for i in range(CALLS):
        assert func(url=f"{url}/p/{i}")["status_code"] == 200
    return CALLS


def _fresh(url: str) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for i in range(CALLS):
        with opener.open(f"{url}/p/{i}", timeout=10) as resp:
            assert json.loads(resp.read())["path"] == f"/p/{i}"
    return CALLS


@pytest.mark.parametrize("how", ["pooled", "urllib"])
def test_http_calls(benchmark: Any, server: str, how: str) -> None:
    benchmark.group = f"core.http: {CALLS} GETs to one host"
    fn = _pooled if how == "pooled" else _fresh
    assert benchmark(fn, server) == CALLS
