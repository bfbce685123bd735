"""Subprocess side of ``tests/test_state_crash.py``: run or resume a durable with-items workflow.

``python _state_worker.py run DB SIDE N`` prints ``started EXECUTION_ID`` once the execution is
in the state file, then runs it; ``python _state_worker.py resume DB EXECUTION_ID`` prints
``resumed`` and continues it.  The action ``crashtest.work`` appends the item to the side
file *before* it returns, so the side file counts invocations.
"""
from __future__ import annotations

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKFLOW = os.path.join(HERE, "_state_crash.yaml")


def work(i: int, side: str, sleep: float = 0.0) -> dict[str, int]:
    fd = os.open(side, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{i}\n".encode())
    finally:
        os.close(fd)
    if sleep:
        time.sleep(sleep)
    return {"i": i, "sq": i * i}


def engine(db: str) -> object:
    from flowctx import Engine
    from flowctx.state import SQLiteState

    batch = int(os.environ.get("FLOWCTX_TEST_BATCH", "16"))
    return Engine(
        actions={"crashtest.work": work}, executor="thread", max_workers=4,
        state=SQLiteState(db, batch_size=batch, flush_interval=0.02),
    )


def main(argv: list[str]) -> int:
    mode, db = argv[0], argv[1]
    if mode == "run":
        side, n = argv[2], int(argv[3])
        ex = engine(db).start(WORKFLOW, {"n": n, "side": side, "sleep": float(os.environ.get("FLOWCTX_TEST_SLEEP", "0.002"))})
        print("started", ex.execution_id, flush=True)
        res = ex.wait()
    else:
        print("resumed", flush=True)
        res = engine(db).resume(argv[2])
    print("finished", res.status, flush=True)
    return 0 if res.succeeded else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
