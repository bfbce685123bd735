"""The validator's graph questions on large and random task graphs."""
from __future__ import annotations

import random

from flowctx.spec import TaskSpec, Transition
from flowctx.spec.flow import _cyclic, unreachable_joins


def _on_a_cycle(succ: dict[str, list[str]], name: str) -> bool:
    """The definition: a walk from ``name``'s targets comes back to it."""
    seen: set[str] = set()
    todo = list(succ[name])
    while todo:
        n = todo.pop()
        if n == name:
            return True
        if n in seen or n not in succ:
            continue
        seen.add(n)
        todo.extend(succ[n])
    return False


def _tasks(succ: dict[str, list[str]]) -> dict[str, TaskSpec]:
    return {n: TaskSpec(n, "core.noop", transitions=(Transition(None, tuple(t)),) if t else ()) for n, t in succ.items()}


def test_the_tasks_on_a_cycle_are_what_a_walk_from_each_finds() -> None:
    rng = random.Random(15)
    for _ in range(300):
        names = [f"t{i}" for i in range(rng.randint(1, 12))]
        succ = {n: rng.sample(names + ["noop", "fail"], rng.randint(0, 3)) for n in names}
        want = {n for n in names if _on_a_cycle(succ, n)}
        assert _cyclic(_tasks(succ)) == want, succ


def test_a_long_chain_and_a_long_ring() -> None:
    n = 3000  # the per-task search this replaced took O(n^2) here (~4 s for a 2,000-task chain)
    chain = {f"t{i}": [f"t{i + 1}"] if i + 1 < n else [] for i in range(n)}
    assert _cyclic(_tasks(chain)) == set()
    assert unreachable_joins(_tasks(chain)) == []
    ring = {f"t{i}": [f"t{(i + 1) % n}"] for i in range(n)}
    assert _cyclic(_tasks(ring)) == set(ring)
    assert _cyclic(_tasks({"a": ["a"], "b": ["a"]})) == {"a"}  # a task that goes to itself
