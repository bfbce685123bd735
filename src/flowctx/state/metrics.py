"""Per-execution metrics: clones, items, context size growth, render / action / queue time,
state flushes — on ``ExecutionResult.metrics``, in ``flowctx show`` and, when
``prometheus_client`` is installed (``pip install flowctx[metrics]``), as Prometheus metrics:
counters that finished executions add to (:func:`export_prometheus`; the registry is the
process-global one unless :func:`use_registry` or ``registry=`` says otherwise) and a live
:class:`ExecutionCollector` read at scrape time (``flowctx run --metrics-port``)."""
from __future__ import annotations

import sys
import threading
import time
from collections.abc import Mapping
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
    task (with-items tasks are skipped: sizing is O(bytes), item contexts are O(1) views).

    The numbers are the store's own ``Context.size()``, computed once per distinct frozen value:
    successive contexts share their unchanged namespaces, and a published ``{{ result() }}`` is
    the very object held under ``task_results`` (sizing each context on its own counted a 1 MB
    result three times: ~6 ms compiled, ~100 ms with the pure-Python twin)."""
    contexts: list[tuple[dict[str, Any], Any]] = []
    if conductor.initial_ctx is not None:
        contexts.append(({"after": None}, conductor.initial_ctx))
    for inst in conductor.sequence:
        if inst.is_command or inst.items is not None or not inst.done:
            continue
        ctx = inst.out_ctxs[0][0] if inst.out_ctxs else inst.ctx
        contexts.append(({"after": inst.name, "seq": inst.seq}, ctx))
    sizer = _Sizer(conductor.store)
    return [{**head, **sizer.context(ctx)} for head, ctx in contexts]


def _size(ctx: Any) -> dict[str, Any]:
    try:
        size = ctx.size()
    except Exception:  # noqa: BLE001
        return {}
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in size.items()}


_NAMESPACES = ("parameters", "variables", "task_results", "system")


class _Sizer:
    """``Context.size()`` of several contexts with one memo of the frozen values they share.

    A frozen container is immutable, so its size is computed once (the memo holds the object, so
    its id stays its own).  The compiled store sizes in C: the top two levels (a namespace, its
    values and their members: where contexts share values) are walked here, deeper containers
    are sized by the store itself; the pure-Python twin's sizer is no faster than this walk, so
    it is walked here to the leaves and every shared subtree is sized once."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.memo: dict[int, tuple[Any, int]] = {}
        self.frozen = (store.FrozenDict, store.FrozenList)
        self.deep = 1 << 30 if getattr(store, "__name__", "") == "flowctx._store_py" else 2

    def context(self, ctx: Any) -> dict[str, Any]:
        try:
            namespaces = [getattr(ctx, ns) for ns in _NAMESPACES]
            out: dict[str, Any] = {}
            total = 0
            for ns, d in zip(_NAMESPACES, namespaces):
                b = self.bytes(d, 0)
                out[ns] = {"keys": len(d), "bytes": b}
                total += b
            out["total_bytes"] = total
            return out
        except Exception:  # noqa: BLE001 - a context this sizer does not know: the store's own
            return _size(ctx)

    def bytes(self, value: Any, depth: int) -> int:
        # the store's formula (_approx_bytes in ext/_store.pyx and _store_py.py): None and bools
        # 1, a str its length + 2, a number 8, a mapping 2 + (key + 3 + value) per item, a list
        # 2 + (1 + item) per item; exact types first (frozen values hold only those: ~2x faster
        # than isinstance checks on the pure-Python twin)
        cls = type(value)
        if cls is str:
            return len(value) + 2
        if value is None or cls is bool:
            return 1
        if cls is int or cls is float:
            return 8
        fd, fl = self.frozen
        if cls is fd or cls is fl:
            hit = self.memo.get(id(value))
            if hit is not None:
                return hit[1]
            if depth >= self.deep:
                n = self._store_bytes(value)
            elif cls is fd:
                n = self._items(value.copy().items(), depth)  # copy(): one C-level shallow copy
            else:
                n = self._seq(value, depth)
            self.memo[id(value)] = (value, n)
            return n
        if value is True or value is False:
            return 1
        if isinstance(value, str):
            return len(value) + 2
        if isinstance(value, (int, float)):
            return 8
        if isinstance(value, Mapping):
            return self._items(value.items(), depth)
        if isinstance(value, (list, tuple)):
            return self._seq(value, depth)
        return 8

    def _items(self, items: Any, depth: int) -> int:
        n = 2
        for k, v in items:
            cls = type(v)
            if cls is str:
                n += len(k) + 5 + len(v)
            elif v is None or cls is bool:
                n += len(k) + 4
            elif cls is int or cls is float:
                n += len(k) + 11
            else:
                n += len(k) + 3 + self.bytes(v, depth + 1)
        return n

    def _seq(self, items: Any, depth: int) -> int:
        n = 2
        for v in items:
            cls = type(v)
            if cls is str:
                n += len(v) + 3
            elif v is None or cls is bool:
                n += 2
            elif cls is int or cls is float:
                n += 9
            else:
                n += 1 + self.bytes(v, depth + 1)
        return n

    def _store_bytes(self, value: Any) -> int:
        # a context holding only this value: its variables are {"v": value}, sized
        # 2 + len("v") + 3 + size(value) by the store (the value is already frozen: not copied)
        return int(self.store.Context(variables={"v": value}).size()["variables"]["bytes"]) - 6


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

    @property
    def untimed(self) -> Any:
        """The wrapped renderer, for a caller that times a batch of renders itself (:meth:`timed`)."""
        return self._renderer

    def timed(self, seconds: float, renders: int) -> None:
        """Add ``renders`` renders that took ``seconds`` in all (the with-items loop, timed once)."""
        m = self._metrics
        m.render_time += seconds
        m.renders += renders

    def __getattr__(self, name: str) -> Any:
        return getattr(self._renderer, name)


# ---------------------------------------------------------------------- Prometheus
# Finished executions add to counters in one registry: the process-global
# ``prometheus_client.REGISTRY`` unless an embedder routes them elsewhere with
# :func:`use_registry` (or passes ``registry=`` to :func:`export_prometheus`).  The metric objects
# are made once per registry (registering a name twice in one registry is an error).
_exporters: dict[int, tuple[Any, dict[str, Any]]] = {}  # id(registry) -> (registry, metrics)
_default_registry: Any = None
_prom_lock = threading.Lock()


def prometheus_available() -> bool:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


def use_registry(registry: Any = None) -> Any:
    """Send finished executions' counters to ``registry`` (a ``prometheus_client``
    ``CollectorRegistry``) instead of the process-global one; ``None`` goes back to the global
    registry.  Returns the registry used before."""
    global _default_registry
    with _prom_lock:
        previous, _default_registry = _default_registry, registry
    return previous


def _prom_metrics(registry: Any = None) -> dict[str, Any] | None:
    if registry is None and _default_registry is None and "prometheus_client" not in sys.modules:
        # nobody can read the process-global registry without importing prometheus_client: a
        # plain run (`flowctx run` without --metrics-port) does not pay ~0.1 s to import it
        return None
    try:
        from prometheus_client import REGISTRY, Counter, Histogram
    except ImportError:
        return None
    reg = registry if registry is not None else (_default_registry if _default_registry is not None else REGISTRY)
    with _prom_lock:
        known = _exporters.get(id(reg))
        if known is not None and known[0] is reg:
            return known[1]
        metrics = {
            "executions": Counter("flowctx_executions_total", "Workflow executions finished", ["status"], registry=reg),
            "items": Counter("flowctx_items_run_total", "with-items items run", registry=reg),
            "clones": Counter("flowctx_context_clones_total", "Context clones made", registry=reg),
            "render": Counter("flowctx_render_seconds_total", "Time spent rendering templates", registry=reg),
            "action": Counter("flowctx_action_seconds_total", "Time spent in actions", registry=reg),
            "queue": Counter("flowctx_queue_wait_seconds_total", "Time outcomes waited in the engine queue",
                             registry=reg),
            "flushes": Counter("flowctx_state_flushes_total", "State store write-behind flushes", registry=reg),
            "flush_latency": Histogram(
                "flowctx_state_flush_seconds", "State store flush latency (per execution, mean)",
                buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0), registry=reg,
            ),
        }
        _exporters[id(reg)] = (reg, metrics)
        return metrics


def export_prometheus(status: str, metrics: dict[str, Any], registry: Any = None) -> bool:
    """Add one finished execution's metrics to a Prometheus registry (``registry``, else the one
    :func:`use_registry` set, else the process-global one); a no-op without ``prometheus_client``.
    Returns whether they were exported."""
    prom = _prom_metrics(registry)
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


class ExecutionCollector:
    """A ``prometheus_client`` collector reporting running executions *live*, read at scrape time
    (nothing is counted on the engine's hot path): register it in a registry and
    :meth:`watch` each :class:`~flowctx.engine.runner.Execution`.

    Every sample has the labels ``workflow`` and ``execution_id``; see the README's metrics table.
    """

    def __init__(self) -> None:
        self._executions: list[Any] = []
        self._lock = threading.Lock()

    def watch(self, execution: Any) -> None:
        with self._lock:
            self._executions.append(execution)

    def describe(self) -> list[Any]:
        return []  # samples are made at scrape time; nothing to check at registration

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        labels = ["workflow", "execution_id"]
        fam: dict[str, GaugeMetricFamily | CounterMetricFamily] = {
            "info": GaugeMetricFamily("flowctx_execution_info", "1 per watched execution, with its current status",
                                      labels=[*labels, "status"]),
            "elapsed": GaugeMetricFamily("flowctx_execution_elapsed_seconds",
                                         "Seconds since the execution started (this process)", labels=labels),
            "tasks": GaugeMetricFamily("flowctx_execution_tasks", "Task instances by status",
                                       labels=[*labels, "status"]),
            "items": CounterMetricFamily("flowctx_execution_items_run", "with-items items started", labels=labels),
            "calls": CounterMetricFamily("flowctx_execution_action_calls", "Action calls finished", labels=labels),
            "action": CounterMetricFamily("flowctx_execution_action_seconds", "Time spent in actions",
                                          labels=labels),
            "render": CounterMetricFamily("flowctx_execution_render_seconds", "Time spent rendering templates",
                                          labels=labels),
            "renders": CounterMetricFamily("flowctx_execution_renders", "Templates and conditions rendered",
                                           labels=labels),
            "queue": CounterMetricFamily("flowctx_execution_queue_wait_seconds",
                                         "Time action outcomes waited in the engine queue", labels=labels),
            "clones": CounterMetricFamily("flowctx_execution_context_clones", "Context clones made", labels=labels),
            "item_ctx": CounterMetricFamily("flowctx_execution_item_contexts", "with-items item contexts made",
                                            labels=labels),
            "flushes": CounterMetricFamily("flowctx_execution_state_flushes", "State store flushes (durable runs)",
                                           labels=labels),
            "records": CounterMetricFamily("flowctx_execution_state_records",
                                           "Records written to the state store (durable runs)", labels=labels),
            "flush_time": CounterMetricFamily("flowctx_execution_state_flush_seconds",
                                              "Time spent writing to the state store (durable runs)", labels=labels),
        }
        with self._lock:
            executions = list(self._executions)
        now = time.time()
        for ex in executions:
            c = getattr(ex, "conductor", None)
            if c is None:
                continue
            lv = [str(c.spec.name), str(ex.execution_id)]
            fam["info"].add_metric([*lv, str(c.status)], 1)
            started = (getattr(c, "system", None) or {}).get("workflow_start")
            if started:
                fam["elapsed"].add_metric(lv, max(0.0, now - float(started)))
            by_status: dict[str, int] = {}
            for inst in list(c.sequence):
                if getattr(inst, "is_command", False):
                    continue
                by_status[inst.status] = by_status.get(inst.status, 0) + 1
            for status, n in sorted(by_status.items()):
                fam["tasks"].add_metric([*lv, str(status)], n)
            fam["items"].add_metric(lv, c.items_run)
            rec = getattr(c, "journal", None)
            m = getattr(rec, "metrics", None)
            if m is not None:
                fam["calls"].add_metric(lv, m.calls)
                fam["action"].add_metric(lv, m.action_time)
                fam["render"].add_metric(lv, m.render_time)
                fam["renders"].add_metric(lv, m.renders)
                fam["queue"].add_metric(lv, m.queue_wait)
                try:
                    stats = c.store.store_stats()
                except Exception:  # noqa: BLE001 - a store without counters
                    stats = {}
                if stats:
                    fam["clones"].add_metric(lv, max(0, stats.get("clones", 0) - m._stats0.get("clones", 0)))
                    fam["item_ctx"].add_metric(lv, max(0, stats.get("items", 0) - m._stats0.get("items", 0)))
                if getattr(rec, "durable", False):
                    fam["flushes"].add_metric(lv, m.flushes)
                    fam["records"].add_metric(lv, m.records)
                    fam["flush_time"].add_metric(lv, m.flush_time)
        for f in fam.values():
            if f.samples:
                yield f
