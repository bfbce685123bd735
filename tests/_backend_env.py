"""The environment of a subprocess that must use the same store backend as the test (the
``backend`` fixture): the pure twin or the compiled store, and this test run's flowctx."""
from __future__ import annotations

import os
from types import ModuleType

import flowctx

# the directory holding the flowctx package this run imported (src/ of a checkout, or
# site-packages of a non-editable install): a subprocess imports the same one
SRC = os.path.dirname(os.path.dirname(os.path.abspath(flowctx.__file__)))


def env_for(backend: ModuleType, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    if backend.__name__.endswith("_store_py"):
        env["FLOWCTX_PURE_PYTHON"] = "1"
        env.pop("FLOWCTX_REQUIRE_COMPILED", None)
    else:
        env.pop("FLOWCTX_PURE_PYTHON", None)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env
