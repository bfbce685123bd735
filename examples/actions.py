"""Example actions, registered with ``@flowctx.action``.

Load them with ``--actions examples/actions.py`` (``flowctx run``, ``flowctx actions``) or
``import_action_module("examples/actions.py")`` from Python.
"""
from __future__ import annotations

import json
import threading
from typing import Any

import flowctx

REGIONS = ("eu-west", "eu-north", "us-east", "us-west", "ap-south")


@flowctx.action("examples.inventory")
def inventory(hosts: int = 1000, kb_per_host: float = 1.0) -> dict[str, Any]:
    """A fake host inventory: ``hosts`` records of about ``kb_per_host`` KB each (~1 MB by default)."""
    pad = max(0, int(kb_per_host * 1024) - 120)
    records = [
        {
            "name": f"host-{i:05d}",
            "region": REGIONS[i % len(REGIONS)],
            "ip": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
            "tags": ["web" if i % 3 else "db", f"rack-{i % 40}"],
            "notes": "n" * pad,
        }
        for i in range(int(hosts))
    ]
    size = len(json.dumps(records, separators=(",", ":")))
    return {"hosts": records, "count": len(records), "bytes": size}


_calls: dict[str, int] = {}
_calls_lock = threading.Lock()


@flowctx.action("examples.flaky")
def flaky(key: str, failures: int = 2) -> dict[str, Any]:
    """Fail the first ``failures`` calls made with the same ``key``, then succeed.

    The count lives in this process (use the thread or inline executor); pass a key that is
    unique per run, e.g. ``{{ system.execution_id }}``.
    """
    with _calls_lock:
        n = _calls[key] = _calls.get(key, 0) + 1
    if n <= int(failures):
        raise flowctx.ActionError(f"flaky: attempt {n} failed on purpose ({failures} failure(s) planned)")
    return {"attempt": n}
