"""StackStorm st2's Orquesta workflows through ``flowctx validate``.

Set ``FLOWCTX_ST2_DIR`` to a checkout of st2 (the test reads ``contrib/examples`` and
``st2tests/st2tests/fixtures``; skipped when unset).  Every file with ``version: 1.0`` and a
``tasks:`` key is validated the way st2 runs it: with st2's application context (``ctx().st2``,
``ctx().parent``) and st2's expression functions (``st2kv()``, ``version_compare()``, ... — st2
adds them to its renderer; flowctx does not provide them, so without them those files are
refused for calling unknown functions).  The action set is unknown (st2 packs), so only names in
flowctx's ``core.`` namespace are checked.

Every workflow validates except the ones written to fail, which must be refused for the reason
they were written for.  The test prints what it found.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from flowctx.errors import WorkflowError
from flowctx.spec import load_workflow, validate

ST2_DIR = os.environ.get("FLOWCTX_ST2_DIR")
ROOTS = ("contrib/examples", "st2tests/st2tests/fixtures")

#: st2's application context (what st2 passes to Orquesta's inspection as app_ctx).
ST2_CONTEXT = ("st2", "parent")
#: Functions st2 adds to Jinja and YAQL (names only; flowctx does not implement them).
ST2_FUNCTIONS = (
    "st2kv", "decrypt_kv", "json_dump", "json_parse", "json_escape", "jsonpath_query", "yaml_dump",
    "yaml_parse", "to_complex", "to_human_time_from_seconds", "use_none", "basename", "dirname",
    "regex_match", "regex_replace", "regex_search", "regex_substring", "version_compare",
    "version_more_than", "version_less_than", "version_equal", "version_match", "version_bump_major",
    "version_bump_minor", "version_bump_patch", "version_strip_patch", "to_json_string",
    "to_yaml_string", "from_json_string", "from_yaml_string",
)

#: Files written to fail -> a fragment every one of their errors' messages together must show.
EXPECTED_REFUSED = {
    # st2's own inspection-failure fixtures
    "contrib/examples/actions/workflows/tests/orquesta-fail-inspection.yaml":
        ("referenced before assignment", "'input' must be a mapping, got a list", "YAQL syntax error"),
    "contrib/examples/actions/workflows/tests/orquesta-fail-inspection-task-contents.yaml":
        ("invalid action name 'echo'", "unknown action 'core.echoz'", "unexpected input 'messages'"),
    "st2tests/st2tests/fixtures/packs/orquesta_tests/actions/workflows/fail-inspection.yaml":
        ("referenced before assignment", "'input' must be a mapping, got a list", "YAQL syntax error"),
    "st2tests/st2tests/fixtures/packs/orquesta_tests/actions/workflows/fail-inspection-action-ref.yaml":
        ("invalid action name 'echo'",),
    "st2tests/st2tests/fixtures/packs/orquesta_tests/actions/workflows/fail-inspection-action-db.yaml":
        ("unknown action 'core.echoz'",),
    "st2tests/st2tests/fixtures/packs/orquesta_tests/actions/workflows/fail-inspection-missing-required-action-param.yaml":
        ("missing required input 'message' of action 'core.echo'",),
    "st2tests/st2tests/fixtures/packs/orquesta_tests/actions/workflows/fail-inspection-unexpected-action-param.yaml":
        ("unexpected input 'messages' for action 'core.echo'",),
    # written to fail at run time in st2 (publish calls foobar()): flowctx refuses it before the run
    "st2tests/st2tests/fixtures/packs/orquesta_tests/actions/workflows/fail-task-publish.yaml":
        ("unknown function 'foobar()'",),
}

_VERSION = re.compile(r"^version:\s*['\"]?1\.0['\"]?\s*$", re.M)
_TASKS = re.compile(r"^tasks:", re.M)


def orquesta_files(root: Path) -> list[Path]:
    out = []
    for sub in ROOTS:
        for path in sorted((root / sub).rglob("*")):
            if path.suffix not in (".yaml", ".yml") or not path.is_file():
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            if _VERSION.search(text) and _TASKS.search(text):
                out.append(path)
    return out


def errors_of(path: Path) -> list[str]:
    try:
        spec = load_workflow(path, validate=False)
    except WorkflowError as exc:
        return [str(p) for p in (exc.problems or [])] or [str(exc)]
    return [str(p) for p in validate(spec, extra_names=ST2_CONTEXT, extra_functions=ST2_FUNCTIONS) if p.is_error]


@pytest.mark.skipif(not ST2_DIR, reason="set FLOWCTX_ST2_DIR to an st2 checkout")
def test_st2_orquesta_workflows(capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(ST2_DIR or ".")
    files = orquesta_files(root)
    assert files, f"no Orquesta workflow under {root}/{{{','.join(ROOTS)}}}"
    refused: dict[str, list[str]] = {}
    for path in files:
        errors = errors_of(path)
        if errors:
            refused[str(path.relative_to(root))] = errors
    with capsys.disabled():
        print(f"\nst2: {len(files)} Orquesta workflows, {len(files) - len(refused)} valid, {len(refused)} refused")
        for name, errors in sorted(refused.items()):
            print(f"  refused {name}:")
            for e in errors:
                print(f"    {e.replace(str(root) + os.sep, '')}")
    unexpected = {n: e for n, e in refused.items() if n not in EXPECTED_REFUSED}
    assert unexpected == {}
    present = {n for n in EXPECTED_REFUSED if (root / n).is_file()}
    assert present - set(refused) == set(), "written to fail, but flowctx accepts them"
    for name in present:
        text = "\n".join(refused[name])
        for fragment in EXPECTED_REFUSED[name]:
            assert fragment in text, (name, fragment, text)


def test_st2_file_selection(tmp_path: Path) -> None:
    # the selection itself, on a tiny tree (runs without an st2 checkout)
    wf = tmp_path / "contrib/examples/actions/workflows/a.yaml"
    wf.parent.mkdir(parents=True)
    wf.write_text("version: 1.0\ntasks:\n  t:\n    action: core.noop\n")
    meta = tmp_path / "contrib/examples/actions/a.yaml"
    meta.write_text("name: a\nrunner_type: orquesta\nentry_point: workflows/a.yaml\n")
    chain = tmp_path / "st2tests/st2tests/fixtures/chain.yaml"
    chain.parent.mkdir(parents=True)
    chain.write_text("version: 2.0\ntasks:\n  - name: x\n")
    assert orquesta_files(tmp_path) == [wf]
    assert errors_of(wf) == []
