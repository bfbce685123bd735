"""``flowctx run --metrics-port N``: a Prometheus endpoint that lives as long as the run.

The endpoint serves its own registry (not the process-global one): the live
:class:`~flowctx.state.metrics.ExecutionCollector` of the run (read at scrape time) and the
``flowctx_*_total`` counters finished executions add (:func:`flowctx.state.metrics.use_registry`
routes them there for the run).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from flowctx.errors import FlowctxError


class MetricsServer:
    """An HTTP server on ``host:port`` serving ``/metrics`` from a registry of its own."""

    def __init__(self, host: str, port: int, *, stderr: Any = None) -> None:
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError:
            raise FlowctxError(
                "--metrics-port needs prometheus_client: pip install 'flowctx[metrics]'"
            ) from None
        from flowctx.state.metrics import ExecutionCollector, use_registry

        self.registry = CollectorRegistry(auto_describe=True)
        self.collector = ExecutionCollector()
        self.registry.register(self.collector)
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise FlowctxError(f"--metrics-port {port}: cannot listen on {host}:{port} ({exc.strerror or exc})") from None
        self.host = host
        self.port = int(self._server.server_port)
        self._previous = use_registry(self.registry)
        print(f"flowctx: metrics on http://{_url_host(host)}:{self.port}/metrics", file=stderr or sys.stderr)

    def watch(self, execution: Any) -> None:
        """Report ``execution`` (an :class:`~flowctx.engine.runner.Execution`) live."""
        self.collector.watch(execution)

    def stop(self) -> None:
        from flowctx.state.metrics import use_registry

        use_registry(self._previous)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def start_metrics_server(args: argparse.Namespace) -> MetricsServer:
    return MetricsServer(args.metrics_host, args.metrics_port)
