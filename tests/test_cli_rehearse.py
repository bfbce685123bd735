"""`flowctx rehearse`: one line per spec, a summary line, exit status."""
from __future__ import annotations

import os

import pytest

from flowctx.cli import main

HERE = os.path.dirname(os.path.abspath(__file__))
SPECS = os.path.join(HERE, "conformance", "orquesta", "specs")


def test_rehearse_passing_spec(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["rehearse", os.path.join(SPECS, "test_workflow_basic__test_sequential.yaml")])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines() == ["PASS test_workflow_basic__test_sequential.yaml", "1 passed, 0 failed"]


def test_rehearse_reports_first_mismatch_and_fails(tmp_path: os.PathLike[str], capsys: pytest.CaptureFixture[str]) -> None:
    wf = os.path.join(HERE, "conformance", "orquesta", "workflows", "sequential.yaml")
    spec = tmp_path / "wrong.yaml"  # type: ignore[operator]
    spec.write_text(
        f"workflow: {wf}\n"
        "inputs: {name: Ada}\n"
        "expected_task_sequence: [task1, task3, task2, continue]\n"
        "expected_workflow_status: succeeded\n"
    )
    code = main(["rehearse", str(spec)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert lines[0].startswith("FAIL wrong.yaml: expected_task_sequence: expected ['task1', 'task3', 'task2', 'continue']")
    assert lines[-1] == "0 passed, 1 failed"


def test_rehearse_whole_suite_directory(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["rehearse", SPECS])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[-1] == "88 passed, 0 failed"
    assert "PASS rehearsals__sequential_failure.yaml (mismatch expected and found)" in out


def test_rehearse_bad_spec_file_is_a_clear_error(tmp_path: os.PathLike[str], capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"  # type: ignore[operator]
    bad.write_text("workflow: x.yaml\nsurprise: 1\n")
    code = main(["rehearse", str(bad)])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown key(s) in rehearsal spec: surprise" in err
