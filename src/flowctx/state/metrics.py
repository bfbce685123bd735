"""Per-execution metrics: clones, items, context size growth, render / action / queue time,
state flushes — on ``ExecutionResult.metrics``, in ``flowctx show`` and, when
``prometheus_client`` is installed (``pip install flowctx[metrics]``), as Prometheus metrics."""
from __future__ import annotations

import threading
import time
from typing import Any


class Metrics:
    """Counters of one execution.  Engine-thread fields and flusher-thread fields are disjoint,
    so no lock is needed."""

    def __init__(self) -> None:
        self.render_time = 0.0
        self.renders = 0
        self.action_time = 0.0
        self.calls = 0
        self.queue_wait = 0.0
        self.queue_wait_max = 0.0
        self.flushes = 0
        self.flush_time = 0.0
        self.flush_max = 0.0
        self.records = 0
        self.replayed_events = 0
        self.replay_time = 0.0
        self.resumes = 0
        self._stats0: dict[str, int] = {}

    def baseline(self, store: Any) -> None:
        try:
            self._stats0 = dict(store.store_stats())
        except Exception:  # noqa: BLE001 - a store without counters
            self._stats0 = {}

    def outcome(self, started: float, finished: float) -> None:
        self.calls += 1
        if finished and started:
            self.action_time += max(0.0, finished - started)
        if finished:
            wait = time.time() - finished
            if wait > 0:
                self.queue_wait += wait
                if wait > self.queue_wait_max:
                    self.queue_wait_max = wait

    def flushed(self, records: int, seconds: float) -> None:
        self.flushes += 1
        self.records += records
        self.flush_time += seconds
        if seconds > self.flush_max:
            self.flush_max = seconds

    def as_dict(self, conductor: Any, store: Any, *, durable: bool, sizes: list[dict[str, Any]] | None = None
                ) -> dict[str, Any]:
        """The metrics of a finished (or stopped) execution as a JSON-able dict.

        ``context_size`` (O(bytes) per non-item task: ~3 ms per MB compiled, ~30 ms pure
        Python) is part of durable runs' metrics (stored for ``flowctx show``); an in-memory run
        leaves it out — call :func:`context_sizes` on ``result.conductor`` when wanted."""
        try:
            now = store.store_stats()
        except Exception:  # noqa: BLE001
            now = {}
        out: dict[str, Any] = {
            "clones": max(0, now.get("clones", 0) - self._stats0.get("clones", 0)),
            "item_contexts": max(0, now.get("items", 0) - self._stats0.get("items", 0)),
            "merges": max(0, now.get("merges", 0) - self._stats0.get("merges", 0)),
            "items_run": conductor.items_run,
            "render_time": round(self.render_time, 6),
            "renders": self.renders,
            "action_time": round(self.action_time, 6),
            "action_calls": self.calls,
            "queue_wait": round(self.queue_wait, 6),
            "queue_wait_max": round(self.queue_wait_max, 6),
        }
        if durable:
            out["context_size"] = sizes if sizes is not None else context_sizes(conductor)
            out.update(
                {
                    "flushes": self.flushes,
                    "flush_time": round(self.flush_time, 6),
                    "flush_latency_max": round(self.flush_max, 6),
                    "flush_latency_mean": round(self.flush_time / self.flushes, 6) if self.flushes else 0.0,
                    "records_written": self.records,
                    "resumes": self.resumes,
                    "replayed_events": self.replayed_events,
                    "replay_time": round(self.replay_time, 6),
                }
            )
        return out


def context_sizes(conductor: Any) -> list[dict[str, Any]]:
    """Keys and approximate bytes per namespace of the initial context and after each non-item
    task (with-items tasks are skipped: sizing is O(bytes), item contexts are O(1) views)."""
    out: list[dict[str, Any]] = []
    if conductor.initial_ctx is not None:
        out.append({"after": None, **_size(conductor.initial_ctx)})
    for inst in conductor.sequence:
        if inst.is_command or inst.items is not None or not inst.done:
            continue
        ctx = inst.out_ctxs[0][0] if inst.out_ctxs else inst.ctx
        out.append({"after": inst.name, "seq": inst.seq, **_size(ctx)})
    return out


def _size(ctx: Any) -> dict[str, Any]:
    try:
        size = ctx.size()
    except Exception:  # noqa: BLE001
        return {}
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in size.items()}


class TimedRenderer:
    """Wraps a renderer to add up render time (``render_json`` and ``evaluate_condition``)."""

    def __init__(self, renderer: Any, metrics: Metrics) -> None:
        self._renderer = renderer
        self._metrics = metrics

    def render_json(self, *args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return self._renderer.render_json(*args, **kwargs)
        finally:
            m = self._metrics
            m.render_time += time.perf_counter() - t
            m.renders += 1

    def evaluate_condition(self, *args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return self._renderer.evaluate_condition(*args, **kwargs)
        finally:
            m = self._metrics
            m.render_time += time.perf_counter() - t
            m.renders += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._renderer, name)


# ---------------------------------------------------------------------- Prometheus
_prom: dict[str, Any] | None = None
_prom_lock = threading.Lock()


def prometheus_available() -> bool:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


def _prom_metrics() -> dict[str, Any] | None:
    global _prom
    if _prom is not None:
        return _prom
    with _prom_lock:
        if _prom is not None:
            return _prom
        try:
            from prometheus_client import Counter, Histogram
        except ImportError:
            return None
        _prom = {
            "executions": Counter("flowctx_executions_total", "Workflow executions finished", ["status"]),
            "items": Counter("flowctx_items_run_total", "with-items items run"),
            "clones": Counter("flowctx_context_clones_total", "Context clones made"),
            "render": Counter("flowctx_render_seconds_total", "Time spent rendering templates"),
            "action": Counter("flowctx_action_seconds_total", "Time spent in actions"),
            "queue": Counter("flowctx_queue_wait_seconds_total", "Time outcomes waited in the engine queue"),
            "flushes": Counter("flowctx_state_flushes_total", "State store write-behind flushes"),
            "flush_latency": Histogram(
                "flowctx_state_flush_seconds", "State store flush latency (per execution, mean)",
                buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            ),
        }
        return _prom


def export_prometheus(status: str, metrics: dict[str, Any]) -> bool:
    """Add one finished execution's metrics to the process's Prometheus registry (no-op without
    ``prometheus_client``); returns whether they were exported."""
    prom = _prom_metrics()
    if prom is None:
        return False
    prom["executions"].labels(status=status).inc()
    prom["items"].inc(metrics.get("items_run", 0))
    prom["clones"].inc(metrics.get("clones", 0))
    prom["render"].inc(metrics.get("render_time", 0.0))
    prom["action"].inc(metrics.get("action_time", 0.0))
    prom["queue"].inc(metrics.get("queue_wait", 0.0))
    if metrics.get("flushes"):
        prom["flushes"].inc(metrics["flushes"])
        prom["flush_latency"].observe(metrics.get("flush_latency_mean", 0.0))
    return True
