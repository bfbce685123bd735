"""Bad input through the public surfaces: one clear message, a consistent result, no traceback.

Each test is a regression test for a robustness bug found by feeding adversarial workflows,
actions and files to ``flowctx.Engine`` and the ``flowctx`` command.
"""
from __future__ import annotations

import time
from types import ModuleType
from typing import Any

from flowctx import Engine

# A legal loop with no exit: `a` runs core.noop (an inline action) forever.
LOOP = """
version: 1.0
vars:
  - i: 0
tasks:
  init:
    action: core.noop
    next:
      - do: a
  a:
    action: core.noop
    next:
      - publish:
          - i: "{{ ctx().i + 1 }}"
        do: a
"""


def engine(backend: ModuleType, actions: dict[str, Any] | None = None, **kw: Any) -> Engine:
    kw.setdefault("executor", "thread")
    return Engine(actions=actions, store=backend, **kw)


# ---------------------------------------------------------------- control of endless loops
def test_cancel_stops_a_loop_of_inline_actions(backend: ModuleType) -> None:
    # inline actions' outcomes never went through the event queue, so a cancel (Ctrl-C in
    # `flowctx run`) queued behind them was never read and the loop ran until memory ran out
    for executor in ("thread", "inline"):
        ex = engine(backend, executor=executor).start(LOOP)
        time.sleep(0.2)
        ex.cancel()
        res = ex.wait(timeout=10)
        assert res.status == "canceled"
        assert res.tasks[-1].status == "canceled"


def test_pause_and_resume_a_loop_of_inline_actions(backend: ModuleType) -> None:
    ex = engine(backend).start(LOOP)
    time.sleep(0.1)
    ex.pause()
    deadline = time.monotonic() + 10
    while ex.status != "paused" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ex.status == "paused"
    n = len(ex.conductor.sequence)
    time.sleep(0.1)
    assert len(ex.conductor.sequence) == n  # nothing new starts while paused
    ex.resume()
    time.sleep(0.1)
    ex.cancel()
    assert ex.wait(timeout=10).status == "canceled"
    assert len(ex.conductor.sequence) > n
