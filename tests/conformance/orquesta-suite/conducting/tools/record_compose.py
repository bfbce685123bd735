"""pytest plugin: record the execution graph Orquesta composes in each composition test
(fixture name -> nodes / adjacency), for flowctx's graph-shape cases."""
import json, os
import pytest
from orquesta.tests.unit import base

WORK = os.environ.get("CONDUCTING_WORK", "/tmp/conducting-traces")  # traces and coverage (not kept in the repository)

REC = []
CUR = {"test": None}
_orig = base.WorkflowComposerTest.compose_wf_ex_graph


def compose_wf_ex_graph(self, wf_name):
    g = _orig(self, wf_name)
    REC.append({"test": CUR["test"], "wf_name": wf_name, "graph": json.loads(json.dumps(g.serialize()))})
    return g


base.WorkflowComposerTest.compose_wf_ex_graph = compose_wf_ex_graph


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    CUR["test"] = item.nodeid
    yield
    CUR["test"] = None


def pytest_sessionfinish(session):
    json.dump(REC, open(os.environ.get("RECORD_OUT", os.path.join(WORK, "compose.json")), "w"), indent=1)
