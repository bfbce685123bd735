"""Name resolution for one evaluation: a lightweight, lazy view over a context handle.

Nothing here copies or flattens the context: every name is looked up in the frozen namespaces of
the handle when (and only when) a template reads it.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from jinja2.utils import missing as _jinja_missing

from flowctx._record import record
from flowctx.render._functions import LimitError

if TYPE_CHECKING:  # pragma: no cover
    from flowctx.render import Renderer

__all__ = ["TaskScope", "Scope", "RouteStatuses", "MISSING", "FINISHED_STATUSES", "TIMEOUT_STATUSES", "UNSET_STATUS"]


@record(frozen=True, slots=True)
class TaskScope:
    """What a transition / publish expression knows about the task being evaluated.

    ``status`` is that task's status, ``result`` what ``result()`` returns, ``statuses`` maps task
    names to their status (for ``task_status(name)``): the latest per name, or a
    :class:`RouteStatuses` view for a task on a route of a split workflow.
    """

    status: str | None = None
    result: Any = None
    statuses: Mapping[str, str] | None = None
    _flowctx_set: ClassVar[tuple[Callable[[Any, Any], None], ...]]  # set by record

    def __init__(  # written out (not record's shared one): made for retry tests of every failed call
        self, status: str | None = None, result: Any = None, statuses: Mapping[str, str] | None = None
    ) -> None:
        put_status, put_result, put_statuses = self._flowctx_set  # the slots' setters (record)
        put_status(self, status)
        put_result(self, result)
        put_statuses(self, statuses)


# Jinja's own "missing" sentinel, so a lookup result can be handed to Jinja unchanged.
MISSING: Any = _jinja_missing

FINISHED_STATUSES = frozenset(
    {
        "succeeded",
        "success",
        "failed",
        "failure",
        "error",
        "timeout",
        "timed_out",
        "timedout",
        "canceled",
        "cancelled",
        "expired",
        "abandoned",
    }
)
TIMEOUT_STATUSES = frozenset({"timeout", "timed_out", "timedout"})
UNSET_STATUS = "null"
_SUCCEEDED = frozenset({"succeeded", "success"})
_FAILED = frozenset({"failed", "failure", "error"})


class ExpressionError(Exception):
    """A workflow function was used wrongly (turned into a TemplateError by the renderer)."""


def _private(key: object) -> bool:
    """Orquesta's private variables: names starting with ``__`` are not visible through ``ctx()``."""
    return type(key) is str and key.startswith("__")


class CtxView(Mapping[str, Any]):
    """Read-only view of variables over parameters (what ``ctx()`` returns); nothing is copied.

    Private names (``__x``) are hidden, as in Orquesta's ``ctx()``.
    """

    __slots__ = ("_vars", "_params")

    def __init__(self, variables: Mapping[str, Any], parameters: Mapping[str, Any]) -> None:
        self._vars = variables
        self._params = parameters

    def __getitem__(self, key: str) -> Any:
        if _private(key):
            raise KeyError(key)
        try:
            return self._vars[key]
        except KeyError:
            return self._params[key]

    def __contains__(self, key: object) -> bool:
        return not _private(key) and (key in self._vars or key in self._params)

    def __iter__(self) -> Iterator[str]:
        for k in self._vars:
            if not _private(k):
                yield k
        for k in self._params:
            if k not in self._vars and not _private(k):
                yield k

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def get(self, key: str, default: Any = None) -> Any:
        if _private(key):
            return default
        v = self._vars.get(key, MISSING)
        if v is MISSING:
            return self._params.get(key, default)
        return v

    def __repr__(self) -> str:
        return repr(dict(self))


class RouteStatuses(Mapping[str, Any]):
    """Task statuses as seen from one route of a workflow that split (Orquesta's rule).

    ``entries`` are the task runs in the order they started, each with ``task``, ``route`` and
    ``status`` attributes (the conductor's sequence); ``routes[r]`` lists the split edges that make
    route ``r``.  A task's status is its latest run on ``route``; a task that did not run there is
    looked up on the nearest earlier route whose splits are all part of this one (the route it
    split from), and so on.  Nothing is copied: a lookup scans the sequence.
    """

    __slots__ = ("_entries", "_routes", "route")

    def __init__(self, entries: Any, routes: Any, route: int) -> None:
        self._entries = entries
        self._routes = routes
        self.route = route

    def on_route(self, route: int) -> RouteStatuses:
        return RouteStatuses(self._entries, self._routes, route)

    def _on(self, name: str, route: int) -> Any:
        for e in reversed(self._entries):
            if e.task == name and e.route == route and e.status is not None:
                return e.status
        return MISSING

    def __getitem__(self, name: str) -> str:
        route = self.route
        st = self._on(name, route)
        if st is MISSING and 0 < route < len(self._routes):
            here = set(self._routes[route])
            for prev in range(route - 1, -1, -1):
                if set(self._routes[prev]) <= here:
                    st = self._on(name, prev)
                    if st is not MISSING:
                        break
                    here = set(self._routes[prev])
        if st is MISSING:
            raise KeyError(name)
        status: str = st
        return status

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for e in self._entries:
            if e.task not in seen and e.task in self:
                seen.add(e.task)
                yield e.task

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"<statuses on route {self.route}: {dict(self)!r}>"


class Tasks(Mapping[str, Any]):
    """``task`` / ``tasks``: task records by name; callable (``task('t1')``) and attribute access."""

    __slots__ = ("_scope",)

    def __init__(self, scope: Scope) -> None:
        self._scope = scope

    def _results(self) -> Mapping[str, Any]:
        results: Mapping[str, Any] = self._scope.ctx.task_results
        return results

    def __getitem__(self, name: str) -> Any:
        return self._results()[name]

    def __contains__(self, name: object) -> bool:
        return name in self._results()

    def __iter__(self) -> Iterator[str]:
        return iter(self._results())

    def __len__(self) -> int:
        return len(self._results())

    def __call__(self, name: str | None = None) -> Any:
        if name is None:
            ts = self._scope.task_scope
            if ts is None:
                raise ExpressionError("task() without a name needs a task scope (transitions and publish only)")
            return {"status": ts.status, "result": ts.result}
        rec = self._results().get(name, MISSING)
        if rec is MISSING:
            raise ExpressionError(f"task({name!r}): no task named {name!r} has a result yet")
        return rec

    def __repr__(self) -> str:
        return f"<tasks {sorted(self._results())!r}>"


class Scope:
    """The name table of one evaluation (the mapping a Jinja template renders against)."""

    __slots__ = ("renderer", "ctx", "task_scope", "steps", "deadline", "__weakref__")

    def __init__(self, renderer: Renderer, ctx: Any, task_scope: TaskScope | None) -> None:
        self.renderer = renderer
        self.ctx = ctx
        self.task_scope = task_scope
        self.steps = 0
        self.deadline = 0.0

    # ------------------------------------------------------------------ limits
    def tick(self) -> None:
        # (YAQL's compiled call sites count the same way in their own frame: _yaql._Site.run)
        self.steps = s = self.steps + 1
        if s & 1023 == 0:
            self.check_limits()

    def check_limits(self) -> None:
        """The step and time limits, checked every 1024 steps."""
        r = self.renderer
        if self.steps > r.max_steps:
            raise LimitError(f"template exceeded the step limit ({r.max_steps} calls and loop iterations)")
        now = time.monotonic()
        if self.deadline == 0.0:
            self.deadline = now + r.timeout
        elif now > self.deadline:
            raise LimitError(f"template exceeded the time limit ({r.timeout} s)")

    def loop(self, iterable: Any) -> Iterator[Any]:
        tick = self.tick
        for x in iterable:
            tick()
            yield x

    # ------------------------------------------------------------------ lookup
    def lookup(self, key: str) -> Any:
        """The value of name ``key`` or MISSING: reserved names, then variables, then parameters."""
        f = self.renderer._resolvers.get(key)
        if f is not None:
            v = f(self)
            if v is not MISSING:
                return v
        ctx = self.ctx
        v = ctx.get_var(key, MISSING)
        if v is not MISSING:
            return v
        return ctx.parameters.get(key, MISSING)

    def __getitem__(self, key: str) -> Any:
        v = self.lookup(key)
        if v is MISSING:
            raise KeyError(key)
        return v

    def __contains__(self, key: object) -> bool:
        return self.lookup(key) is not MISSING  # type: ignore[arg-type]

    def get(self, key: str, default: Any = None) -> Any:
        v = self.lookup(key)
        return default if v is MISSING else v

    # ------------------------------------------------------------------ functions
    def fn_ctx(self, key: str | None = None) -> Any:
        ctx = self.ctx
        name = key
        if not name:  # Orquesta: ctx(), ctx(None) and ctx('') are the whole (public) context
            return CtxView(ctx.variables, ctx.parameters)
        if not isinstance(name, str):
            raise ExpressionError(f"ctx() needs a variable name, not {type(name).__name__!r}")
        if _private(name):
            raise ExpressionError(f"ctx({name!r}): variables whose names start with '__' are private")
        v = ctx.get_var(name, MISSING)
        if v is MISSING:
            v = ctx.parameters.get(name, MISSING)
            if v is MISSING:
                raise ExpressionError(f"ctx({name!r}): no variable or parameter named {name!r}")
        return v

    def fn_item(self, key: Any = MISSING) -> Any:
        ctx = self.ctx
        if ctx.index is None:
            raise ExpressionError("item() is only available inside a with-items task")
        it = ctx.item
        if key is MISSING:
            return it
        if isinstance(it, Mapping):
            if key in it:
                return it[key]
            raise ExpressionError(f"item({key!r}): the current item has no key {key!r}")
        raise ExpressionError(f"item({key!r}): the current item is not a mapping")

    def _need_scope(self, fn: str) -> TaskScope:
        ts = self.task_scope
        if ts is None:
            raise ExpressionError(f"{fn}() is only available where a task has run (transitions, publish)")
        return ts

    def fn_result(self) -> Any:
        return self._need_scope("result").result

    def fn_succeeded(self) -> bool:
        return self._need_scope("succeeded").status in _SUCCEEDED

    def fn_failed(self) -> bool:
        return self._need_scope("failed").status in _FAILED

    def fn_completed(self) -> bool:
        return self._need_scope("completed").status in FINISHED_STATUSES

    def fn_timed_out(self) -> bool:
        return self._need_scope("timed_out").status in TIMEOUT_STATUSES

    def fn_task_status(self, name: str | None = None, route: int | None = None) -> Any:
        ts = self.task_scope
        if name is None:
            return self._need_scope("task_status").status
        if ts is not None and ts.statuses is not None:
            statuses = ts.statuses
            if route is not None and isinstance(statuses, RouteStatuses):
                statuses = statuses.on_route(route)
            st = statuses.get(name, MISSING)
            if st is not MISSING:
                return st
            if isinstance(statuses, RouteStatuses):
                return UNSET_STATUS  # not on this route (nor the routes it split from)
        rec = self.ctx.get_task_result(name, None)
        if isinstance(rec, Mapping):
            st = rec.get("status")
            if st is not None:
                return st
        # Orquesta's status of a task that has not run (statuses.UNSET) is the string "null".
        return UNSET_STATUS


def _item_value(s: Scope) -> Any:
    ctx = s.ctx
    return MISSING if ctx.index is None else ctx.item


def _index_value(s: Scope) -> Any:
    i = s.ctx.index
    return MISSING if i is None else i


def base_resolvers() -> dict[str, Any]:
    """Reserved names -> function(scope) giving the value (MISSING to fall through)."""
    return {
        "parameters": lambda s: s.ctx.parameters,
        "vars": lambda s: s.ctx.variables,
        "variables": lambda s: s.ctx.variables,
        "workflow": lambda s: s.ctx.variables,
        "task": Tasks,
        "tasks": Tasks,
        "system": lambda s: s.ctx.system,
        "item": _item_value,
        "index": _index_value,
        "ctx": lambda s: s.fn_ctx,
        "result": lambda s: s.fn_result,
        "succeeded": lambda s: s.fn_succeeded,
        "failed": lambda s: s.fn_failed,
        "completed": lambda s: s.fn_completed,
        "timed_out": lambda s: s.fn_timed_out,
        "task_status": lambda s: s.fn_task_status,
        "_flowctx_item_fn": lambda s: s.fn_item,
        "_flowctx_loop": lambda s: s.loop,
    }
