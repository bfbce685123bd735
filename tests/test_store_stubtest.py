"""``mypy.stubtest`` checks ``_store.pyi`` against both backends at run time.

The stub describes the compiled module; the twin must match the very same stub, so for the
``python`` case the stub is laid out as ``flowctx/_store_py.pyi`` in a temporary stub directory
(``MYPYPATH``) and stubtest compares it with the imported ``flowctx._store_py``.  Skipped only
when mypy is not installed (it is part of the ``test`` extra).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import flowctx

STUB = Path(flowctx.__file__).with_name("_store.pyi")


def test_stubtest_passes(backend: ModuleType, tmp_path: Path) -> None:
    pytest.importorskip("mypy.stubtest")
    env = dict(os.environ)
    if backend.__name__ == "flowctx._store_py":
        stubs = tmp_path / "stubs" / "flowctx"
        stubs.mkdir(parents=True)
        (stubs / "__init__.pyi").write_text("")
        shutil.copy(STUB, stubs / "_store_py.pyi")
        env["MYPYPATH"] = str(stubs.parent)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", backend.__name__],
        cwd=tmp_path,  # no project mypy config, nothing importable by accident
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success: no issues found in 1 module" in proc.stdout
