"""Packaging facts a release depends on: one version, the license shipped, the metadata complete."""
from __future__ import annotations

import importlib.metadata as metadata
import re
from pathlib import Path

import flowctx

ROOT = Path(__file__).resolve().parent.parent


def test_one_version() -> None:
    """The installed distribution's version is the package's ``__version__`` (pyproject reads it)."""
    assert metadata.version("flowctx") == flowctx.__version__
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert not re.search(r'^version\s*=\s*"', pyproject, re.M), "a second version string in pyproject.toml"


def test_license_is_shipped() -> None:
    md = metadata.metadata("flowctx")
    assert md["License-Expression"] == "Apache-2.0"
    assert "LICENSE" in (md.get_all("License-File") or [])
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    assert re.search(r"^include .*\bLICENSE\b", (ROOT / "MANIFEST.in").read_text(), re.M)


def test_metadata() -> None:
    md = metadata.metadata("flowctx")
    classifiers = set(md.get_all("Classifier") or [])
    for version in ("3.10", "3.11", "3.12", "3.13", "3.14"):
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert "Typing :: Typed" in classifiers
    assert "Programming Language :: Python :: Implementation :: CPython" in classifiers
    assert md["Requires-Python"] == ">=3.10"
    assert "all" in (md.get_all("Provides-Extra") or [])
    assert md.get_all("Project-URL")


def test_jinja_floor_is_safe() -> None:
    """Jinja2 3.1.0-3.1.5 allow sandbox escapes: the floor must exclude them."""
    requires = metadata.requires("flowctx") or []
    jinja = [r for r in requires if r.lower().startswith("jinja2")]
    assert jinja and ">=3.1.6" in jinja[0], jinja


def test_github_workflow_is_valid() -> None:
    """The release workflow cannot run here; it is checked against GitHub's workflow schema."""
    import shutil
    import subprocess

    import sys

    beside = Path(sys.executable).with_name("check-jsonschema")  # the venv's, activated or not
    exe = str(beside) if beside.exists() else shutil.which("check-jsonschema")
    assert exe, "check-jsonschema is in the test extra"
    workflows = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    assert workflows
    run = subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", *workflows], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_cibuildwheel_config_is_valid() -> None:
    """[tool.cibuildwheel] validates against cibuildwheel's own schema and selects what we support."""
    import json
    import sys

    import jsonschema
    import pytest

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - 3.10
        tomllib = pytest.importorskip("tomli")
    cibw = pytest.importorskip("cibuildwheel")
    schema = json.loads((Path(cibw.__file__).parent / "resources" / "cibuildwheel.schema.json").read_text())
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    tool = config["tool"]["cibuildwheel"]
    jsonschema.validate(tool, schema)
    assert tool["build"].split() == [f"cp3{v}-*" for v in range(10, 15)]
    assert "*-win*" in tool["skip"]
    assert tool["test-environment"] == {"FLOWCTX_REQUIRE_COMPILED": "1"}
    assert set(tool["linux"]["archs"]) == {"x86_64", "aarch64"}
    assert set(tool["macos"]["archs"]) == {"x86_64", "arm64"}
