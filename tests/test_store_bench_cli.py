"""``flowctx bench`` (the CLI front of the store benchmarks): output shape, not timings."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowctx.cli import main
from flowctx.cli.bench import CLONE_SIZES, ITEM_COUNTS

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.compiled
def test_bench_quick_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--quick", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["compiled_available"] is True and report["backend"] in ("cython", "python")
    assert [row["results"] for row in report["clone"]] == list(CLONE_SIZES)
    assert [row["items"] for row in report["with_items"]] == list(ITEM_COUNTS)
    for row in report["clone"]:
        assert row["cython"] > 0 and row["python"] > 0
    assert report["clone"][-1]["bytes"] > 5_000_000
    assert report["clone"][0]["deepcopy"] > 0 and report["clone"][-1]["deepcopy"] is None  # --quick
    assert report["empty_method_ns"] > 0
    assert report["ratios"]["cython clone / empty method call"] > 0


@pytest.mark.compiled
def test_bench_quick_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "active backend: " in out
    assert "Clone time by context size" in out and "with-items over a ~1 MB context" in out
    assert "python/cython" in out and "deepcopy/cython" in out and "Empty Python method call" in out


def test_bench_without_the_compiled_store_says_so() -> None:
    code = textwrap.dedent(
        """
        import sys
        class Hide:
            def find_spec(self, name, path=None, target=None):
                if name == "flowctx._store":
                    raise ImportError("simulated: no compiled build")
        sys.meta_path.insert(0, Hide())
        from flowctx.cli import main
        sys.exit(main(["bench", "--quick"]))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("FLOWCTX_REQUIRE_COMPILED", "FLOWCTX_PURE_PYTHON")}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    assert "active backend: python" in run.stdout
    assert "compiled store NOT importable (simulated: no compiled build)" in run.stdout
    assert "python" in run.stdout and "cython" not in run.stdout.split("Clone time")[1].split("\n")[1]
