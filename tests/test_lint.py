"""``ruff check`` and ``mypy`` pass on the project (their configuration is in pyproject.toml).

Both run as subprocesses from the project root, so CI (which runs this suite) fails on a lint or
type error; their output is shown on failure.  Both are in the ``test`` extra.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_ruff_check_passes() -> None:
    proc = _run(["ruff", "check", "--no-cache", "--output-format", "concise", "."])
    assert proc.returncode == 0, f"ruff check failed:\n{proc.stdout}{proc.stderr}"
    assert "All checks passed" in proc.stdout


def test_mypy_passes(tmp_path: Path) -> None:
    # the file list and every setting come from [tool.mypy]; the cache stays out of the tree
    proc = _run(["mypy", "--cache-dir", str(tmp_path / "mypy_cache")])
    assert proc.returncode == 0, f"mypy failed:\n{proc.stdout}{proc.stderr}"
    assert "Success: no issues found" in proc.stdout
