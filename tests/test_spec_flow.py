"""The validator's graph questions on large and random task graphs."""
from __future__ import annotations

import random

from flowctx.spec import TaskSpec, Transition, WorkflowSpec
from flowctx.spec.flow import _cyclic, context_problems, unreachable_joins


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


def _ladder(levels: int, publish: bool, read: str) -> WorkflowSpec:
    """``levels`` forks whose two branches merge again without a join (2^levels paths); with
    ``publish`` the left branch of level i publishes ``x<i>``, the right one ``y<i>``, and both
    publish ``both``.  The last task reads ``read``."""
    tasks: dict[str, TaskSpec] = {}
    for i in range(levels):
        tasks[f"a{i}"] = TaskSpec(f"a{i}", "core.noop", transitions=(Transition(None, (f"l{i}", f"r{i}")),))
        for side, var in (("l", "x"), ("r", "y")):
            pub = ((f"{var}{i}", 1), ("both", 1)) if publish else ()
            tasks[f"{side}{i}"] = TaskSpec(f"{side}{i}", "core.noop", transitions=(Transition(None, (f"a{i + 1}",), pub),))
    tasks[f"a{levels}"] = TaskSpec(f"a{levels}", "core.noop", input={"v": "{{ ctx()." + read + " }}"})
    return WorkflowSpec(tasks=tasks)


def test_forks_that_merge_again_are_checked_without_walking_every_path() -> None:
    # 40 levels: 2^40 paths; the walk used to double at every level (16 levels took 1.7 s)
    for publish in (False, True):
        missing = {p[1].split("'")[1] for p in context_problems(_ladder(40, publish, "nowhere"))}
        assert missing == {"nowhere"}
    assert context_problems(_ladder(40, True, "both")) == []  # published on every path
    # published on one side of a fork only: missing on the paths through the other side
    problems = context_problems(_ladder(40, True, "x0"))
    assert problems and all("'x0'" in p[1] and "referenced before assignment" in p[1] for p in problems)
    small = context_problems(_ladder(6, True, "x0"))  # under the budget: Orquesta's own walk
    assert {p[1] for p in small} == {p[1] for p in problems}


def test_joins_after_joins_are_checked_in_linear_time() -> None:
    # every merge a join: unreachable_joins took an edge walked with no splits as new each time
    # (20 levels: 12 s); the verdicts stay Orquesta's (tests/test_conformance_inspection.py)
    tasks: dict[str, TaskSpec] = {}
    levels = 300
    for i in range(levels + 1):
        nxt = (Transition(None, (f"l{i}", f"r{i}")),) if i < levels else ()
        tasks[f"a{i}"] = TaskSpec(f"a{i}", "core.noop", join="all" if i else None, transitions=nxt)
        if i < levels:
            for side in ("l", "r"):
                tasks[f"{side}{i}"] = TaskSpec(f"{side}{i}", "core.noop", transitions=(Transition(None, (f"a{i + 1}",)),))
    assert unreachable_joins(tasks) == []
    assert context_problems(WorkflowSpec(tasks=tasks)) == []
