"""Checks that follow the flow of the task graph (used by :mod:`flowctx.spec.validate`).

* :func:`context_problems` — Orquesta's rolling context: a variable read with ``ctx().x`` /
  ``ctx(x)`` / ``ctx('x')`` before anything on the way to that field assigned it (an input, a
  var, or a ``publish`` on a transition that leads there) is an error, and so is reading a
  private (``__``-prefixed) variable.  The walk is breadth-first from the start tasks (sorted by
  name), each task once, a ``join`` task seeing the union of the branches that reached it so far;
  the workflow output sees everything any walked task or transition target saw.  This is the
  rule Orquesta 1.6.0's inspection applies (recorded in tests/conformance/orquesta-suite/inspection).
* :func:`unreachable_joins` — a ``join`` task behind nested forks of multi-referenced tasks: the
  engine cannot tell at which level the join happens.
* :func:`endless_cycles` — a cycle none of whose transitions depends on data (only on task
  status): it can only end by a failure.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

from flowctx._graphs import strongly_connected
from flowctx._patterns import lazy_compile
from flowctx.spec.model import ENGINE_COMMANDS, Loc, TaskSpec, Transition, WorkflowSpec
from flowctx.spec.shapes import did_you_mean

__all__ = ["context_problems", "ctx_references", "endless_cycles", "reachable", "unreachable_joins"]

# Expressions whose ``ctx`` references are tracked (one line each, as written in a field).
_BLOCKS = lazy_compile(r"\{\{.*?\}\}|<%.*?%>")
_CTX_REFS = (
    lazy_compile(r"\bctx\(\)\.([A-Za-z0-9_-]+)\b(?!\s*\()"),
    lazy_compile(r"\bctx\((['\"]?)([A-Za-z0-9_-]+)\1\)"),
)
#: Conditions that hold whatever the data, as long as no task fails: they do not end a loop.
_STATUS_ONLY = lazy_compile(r"^\s*(\{\{|<%)\s*(succeeded|completed)\(\s*\)\s*(\}\}|%>)\s*$")


def ctx_references(value: Any) -> list[str]:
    """Names read through ``ctx()`` in every expression inside ``value`` (keys included)."""
    found: list[str] = []
    todo = [value]
    while todo:
        v = todo.pop()
        if isinstance(v, str):
            for block in _BLOCKS.findall(v):
                for m in _CTX_REFS[0].finditer(block):
                    found.append(m.group(1))
                for m in _CTX_REFS[1].finditer(block):
                    found.append(m.group(2))
        elif isinstance(v, Mapping):
            todo.extend(v.keys())
            todo.extend(v.values())
        elif isinstance(v, (list, tuple)):
            todo.extend(v)
    return sorted(set(found))


# One problem: (location, message, task name or None).
Found = tuple[Loc | None, str, str | None]


def _check(value: Any, known: set[str], loc: Loc | None, field: str, task: str | None,
           out: list[Found]) -> None:
    for name in ctx_references(value):
        if name.startswith("__"):
            out.append((loc, f"variable '{name}' in '{field}' is private (names starting with '__' "
                             "cannot be referenced)", task))
        if name not in known:
            out.append((loc, f"variable '{name}' in '{field}' is referenced before assignment "
                             "(no input, var or publish on the way to it defines it)"
                             f"{did_you_mean(name, sorted(known))}", task))


def _nearest(locs: Mapping[str, Loc], path: str, fallback: Loc | None) -> Loc | None:
    while path:
        if path in locs:
            return locs[path]
        if "." not in path:
            break
        path = path.rsplit(".", 1)[0]
    return fallback


def _targets(task: TaskSpec) -> Iterator[tuple[str, Transition]]:
    for tr in task.transitions:
        for target in tr.targets:
            yield target, tr


def context_problems(spec: WorkflowSpec, extra: set[str] | frozenset[str] = frozenset()) -> list[Found]:
    """Variables referenced before assignment (see the module doc); ``extra``: names the caller
    provides at run time (Orquesta's application context)."""
    out: list[Found] = []
    rolling: set[str] = set(extra)
    for p in spec.parameters:
        if p.has_default:
            _check(p.default, rolling, spec.locs.get(f"parameters.{p.name}", p.loc), f"input.{p.name}", None, out)
        rolling.add(p.name)
    for name, value in spec.vars:
        _check(value, rolling, _nearest(spec.locs, f"vars.{name}", spec.loc), f"vars.{name}", None, out)
        rolling.add(name)

    tasks = spec.tasks
    inbound: dict[str, int] = {n: 0 for n in tasks}
    for t in tasks.values():
        for target, _ in _targets(t):
            if target in inbound:
                inbound[target] += 1
    queue: deque[tuple[str, set[str] | None]] = deque(
        (n, set(rolling)) for n in sorted(tasks) if not inbound[n])
    joined: dict[str, set[str]] = {}
    walked: set[str] = set()
    # Orquesta's walk queues a task once per transition reaching it before it is walked, so
    # tasks reached by two transitions (a fork whose branches merge again without a join)
    # double the walk at every level: a ladder of 16 such steps, 49 tasks, took 1.7 s, 20 steps
    # ~30 s.  Two rules keep it finite:
    # * a task reached again with a context it was already checked with is skipped: it would
    #   find the same problems and queue the same branches (problems are reported once anyway);
    # * when the branches publish different names the contexts differ on every path (2^levels of
    #   them): after ``budget`` checks a task is checked again only with what every path seen so
    #   far had in common, and only when that shrinks (each task at most once per name more).
    #   Past the budget a name missing on any path it saw is reported, which on such a graph can
    #   be one that Orquesta's walk (which stops at walked tasks) never looked at.
    visited: set[tuple[str, frozenset[str]]] = set()
    common: dict[str, set[str]] = {}
    budget = 10_000 + 2 * len(tasks)
    while queue:
        name, ctx = queue.popleft()
        walked.add(name)
        if not ctx:
            ctx = set(joined.get(name, set()))
        rolling |= ctx
        checked = (name, frozenset(ctx))
        if checked in visited:
            continue
        if len(visited) >= budget:
            had = common.get(name)
            if had is not None:
                if had <= ctx:
                    continue
                ctx = had & ctx
                checked = (name, frozenset(ctx))
            common[name] = set(ctx)
        else:
            common[name] = common[name] & ctx if name in common else set(ctx)
        visited.add(checked)
        task = tasks.get(name)
        if task is None:  # an engine command (continue, noop, fail, retry) reached by a transition
            continue
        locs = task.locs
        if task.delay is not None:
            _check(task.delay, ctx, locs.get("delay", task.loc), "delay", name, out)
        if task.with_items is not None:
            w = task.with_items
            _check(w.items, ctx, locs.get("with.items", w.loc), "with.items", name, out)
            _check(w.concurrency, ctx, locs.get("with.concurrency", w.loc), "with.concurrency", name, out)
        _check(task.action, ctx, locs.get("action", task.loc), "action", name, out)
        if isinstance(task.input, str):  # one expression giving the whole input mapping
            _check(task.input, ctx, locs.get("input", task.loc), "input", name, out)
        else:
            for key, value in task.input.items():
                _check(value, ctx, _nearest(locs, f"input.{key}", task.loc), f"input.{key}", name, out)
        for tr in task.transitions:
            branch = set(ctx)
            _check(tr.when, branch, tr.locs.get("when", tr.loc), "when", name, out)
            for pname, value in tr.publish:
                _check(value, branch, _nearest(tr.locs, f"publish.{pname}", tr.loc), f"publish.{pname}", name,
                       out)
                branch.add(pname)
            for target in tr.targets:
                if target in walked or (target not in tasks and target not in ENGINE_COMMANDS):
                    continue
                target_spec = tasks.get(target)
                if target_spec is None or target_spec.join is None:
                    queue.append((target, branch))
                else:
                    joined[target] = joined.get(target, set()) | branch
                    queue.append((target, None))
    for name, value in spec.output:
        _check(value, rolling, _nearest(spec.locs, f"output.{name}", spec.loc), f"output.{name}", None, out)
        rolling.add(name)
    return out


def _next_names(task: TaskSpec) -> list[str]:
    return sorted(target for target, _ in _targets(task))


def _cyclic(tasks: Mapping[str, TaskSpec]) -> set[str]:
    """The tasks on a cycle: those of a strongly connected component of more than one task, or
    with a transition to themselves (a search from every task took O(tasks²): ~4 s to load a
    chain of 2,000 tasks)."""
    out: set[str] = set()
    for comp in _sccs(tasks):
        if len(comp) > 1 or comp[0] in _next_names(tasks[comp[0]]):
            out.update(comp)
    return out


def unreachable_joins(tasks: Mapping[str, TaskSpec]) -> list[str]:
    """Join tasks behind nested forks: the set of (non-cyclic) multi-referenced tasks on the way
    to the join differs from the set on the way to one of the tasks leading into it."""
    prev_count: dict[str, int] = {n: 0 for n in tasks}
    for t in tasks.values():
        for target in _next_names(t):
            if target in prev_count:
                prev_count[target] += 1
    cyclic = _cyclic(tasks)
    splitting = {n for n in tasks if tasks[n].join is None and prev_count[n] > 1 and n not in cyclic}
    splits_of: dict[str, set[str]] = {}
    prevs: dict[str, set[str]] = {}
    edge_splits: dict[tuple[str, str], set[str]] = {}
    queue: deque[tuple[str | None, str, list[str]]] = deque(
        (None, n, []) for n in sorted(tasks) if not prev_count[n])
    while queue:
        prev, name, splits = queue.popleft()
        if name not in tasks:
            continue
        if name in splitting:
            splits = splits + [name]
        splits_of[name] = splits_of.get(name, set()) | set(splits)
        prevs.setdefault(name, set())
        if prev is not None:
            prevs[name].add(prev)
        for nxt in _next_names(tasks[name]):
            if nxt in splits_of and nxt in cyclic:
                continue
            key = (name, nxt)
            known = edge_splits.get(key)
            if known is not None:  # walked before: again only with new splits (``if known:``
                # took an edge walked with no splits as new every time: exponential in merges)
                if not set(splits) <= known:
                    known |= set(splits)
                    queue.append((name, nxt, list(splits)))
            else:
                edge_splits[key] = set(splits)
                queue.append((name, nxt, list(splits)))
    bad = []
    for name, split_set in splits_of.items():
        if tasks[name].join is None:
            continue
        if any(split_set != splits_of.get(p, set()) for p in prevs[name]):
            bad.append(name)
    return bad


def _sccs(tasks: Mapping[str, TaskSpec]) -> list[list[str]]:
    """Strongly connected components of the task graph."""
    return strongly_connected({n: [t for t in _next_names(tasks[n]) if t in tasks] for n in tasks})


def reachable(tasks: Mapping[str, TaskSpec]) -> set[str]:
    """Tasks a run can reach from the start tasks (those no transition leads to)."""
    inbound = {t for task in tasks.values() for t, _ in _targets(task)}
    todo = [n for n in tasks if n not in inbound]
    seen: set[str] = set()
    while todo:
        n = todo.pop()
        if n in seen or n not in tasks:
            continue
        seen.add(n)
        todo.extend(_next_names(tasks[n]))
    return seen


def endless_cycles(tasks: Mapping[str, TaskSpec], reached: set[str] | None = None) -> list[list[str]]:
    """Cycles (task names in declaration order, only among ``reached`` tasks when given) whose
    every transition inside the cycle fires whatever the data: no ``when``, or ``succeeded()`` /
    ``completed()``.  Such a loop only ends when a task fails.  (A loop back on ``failed()`` is a
    retry loop: success leaves it.)"""
    order = {n: i for i, n in enumerate(tasks)}
    found = []
    for comp in _sccs(tasks):
        members = set(comp)
        if len(comp) == 1 and comp[0] not in _next_names(tasks[comp[0]]):
            continue
        if reached is not None and not members & reached:
            continue
        conditional = False
        for n in comp:
            task = tasks[n]
            if task.with_items is not None:
                conditional = True  # the items may be empty
            for tr in task.transitions:
                if not members.intersection(tr.targets):
                    continue
                if tr.when is None or (isinstance(tr.when, str) and _STATUS_ONLY.match(tr.when)):
                    continue
                conditional = True
        if not conditional:
            found.append(sorted(comp, key=order.__getitem__))
    return found
