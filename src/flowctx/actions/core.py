"""Built-in ``core.*`` actions."""
from __future__ import annotations

from typing import Any

from flowctx.actions.registry import action


@action("core.noop")
def noop(**kwargs: Any) -> None:
    """Do nothing and succeed (inputs are accepted and ignored)."""
    return None


@action("core.echo")
def echo(message: Any = "") -> dict[str, Any]:
    """Return the message: result ``{stdout: message}``."""
    return {"stdout": message}


@action("core.fail")
def fail(message: str = "core.fail was called", **kwargs: Any) -> None:
    """Fail on purpose with ``message``."""
    raise RuntimeError(message)
