"""Static analysis of a workflow's task graph, used by the conductor.

Nodes are the tasks plus one node per engine command (``continue``, ``noop``, ``fail``,
``retry``) that some transition names.  Every (transition entry, target) pair is one edge; edges
from the same source to the same target are numbered ``k = 0, 1, ...`` in declaration order and
named ``<source>__t<k>`` (that name is what a route records).

* A node is **in a cycle** when it lies on a directed cycle.
* A node is a **split** point when it is not a join task, has more than one inbound edge and is
  not in a cycle: every arrival then runs it on a route of its own.
* A transition to the ``retry`` command is no edge: it sets the task's retry policy
  (:meth:`flowctx.engine.conductor.Conductor.retry_spec`).
* A join's **requirement** is the number of distinct inbound source tasks (``join: all``) or the
  given count.
"""
from __future__ import annotations

from flowctx._graphs import strongly_connected
from flowctx._record import record
from flowctx.spec.model import ENGINE_COMMANDS, TaskSpec, Transition, WorkflowSpec


@record(frozen=True, slots=True)
class Edge:
    """One (transition entry, target) pair: ``source`` reaches ``target`` as its ``k``-th edge."""

    source: str
    target: str
    k: int
    transition: Transition
    entry: int  # index of the transition entry within the source task

    @property
    def route_id(self) -> str:
        """The name a route records for this edge: ``<source>__t<k>``."""
        return f"{self.source}__t{self.k}"


class WorkflowGraph:
    """Edges, cycles, split points and join requirements of one :class:`WorkflowSpec`."""

    def __init__(self, spec: WorkflowSpec) -> None:
        self.spec = spec
        self.out_edges: dict[str, list[Edge]] = {}
        self.in_edges: dict[str, list[Edge]] = {}
        for name in spec.tasks:
            self.in_edges.setdefault(name, [])
        for task in spec.tasks.values():
            edges: list[Edge] = []
            counts: dict[str, int] = {}
            for entry, tr in enumerate(task.transitions):
                for target in tr.targets:
                    if target == "retry" and "retry" not in spec.tasks:
                        continue  # Orquesta: ``do: retry`` is the task's retry policy, not an edge
                    k = counts.get(target, 0)
                    counts[target] = k + 1
                    edge = Edge(task.name, target, k, tr, entry)
                    edges.append(edge)
                    self.in_edges.setdefault(target, []).append(edge)
            self.out_edges[task.name] = edges
        self._in_cycle = self._find_cycle_nodes()

    # ------------------------------------------------------------------ queries
    def task(self, name: str) -> TaskSpec:
        return self.spec.tasks[name]

    def is_command(self, name: str) -> bool:
        return name in ENGINE_COMMANDS and name not in self.spec.tasks

    def in_cycle(self, name: str) -> bool:
        return name in self._in_cycle

    def is_join(self, name: str) -> bool:
        task = self.spec.tasks.get(name)
        return task is not None and task.join is not None

    def is_split(self, name: str) -> bool:
        return (
            not self.is_join(name)
            and len(self.in_edges.get(name, ())) > 1
            and not self.in_cycle(name)
        )

    def join_sources(self, name: str) -> list[str]:
        """Distinct inbound source tasks of a task, in declaration order."""
        seen: dict[str, None] = {}
        for edge in self.in_edges.get(name, ()):
            seen.setdefault(edge.source, None)
        return list(seen)

    def join_required(self, name: str) -> int:
        task = self.spec.tasks[name]
        if task.join == "all" or task.join is None:
            return len(self.join_sources(name))
        return int(task.join)

    def ordered_out_edges(self, name: str) -> list[Edge]:
        """Outbound edges in evaluation order: by target name (string order), then ``k``."""
        return sorted(self.out_edges.get(name, ()), key=lambda e: (e.target, e.k))

    # ------------------------------------------------------------------ internals
    def _find_cycle_nodes(self) -> set[str]:
        """Nodes on a directed cycle (Tarjan's strongly connected components, iterative)."""
        succ: dict[str, list[str]] = {n: [] for n in self.in_edges}
        for src, edges in self.out_edges.items():
            succ.setdefault(src, [])
            for e in edges:
                succ[src].append(e.target)
                succ.setdefault(e.target, [])
        result: set[str] = set()
        for comp in strongly_connected(succ):
            if len(comp) > 1 or comp[0] in succ[comp[0]]:
                result.update(comp)
        return result
