"""Turn the recorded Orquesta 1.6.0 expression-test calls into flowctx conformance cases.

Run with Orquesta 1.6.0 importable, after record_plugin.py has written the records:
    python build_cases.py /tmp/records.json <output dir>  Every expected
value comes from Orquesta: the recorded outcome of the upstream call, and where the upstream call
is a Python function (expressions/functions/*), the same call written as a Jinja and a YAQL
expression is evaluated by Orquesta's evaluators as a cross-check (`orquesta_expression`).
"""
import copy
import json
import os
import sys

import yaml
from orquesta.expressions import base as expr_base

HERE = os.path.dirname(os.path.abspath(__file__))
RECORDS_PATH = sys.argv[1] if len(sys.argv) > 1 else "records.json"
OUT = sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(HERE)
RECORDS = json.load(open(RECORDS_PATH))
PREFIX = "orquesta/tests/unit/"

EVAL_FNS = {"facade.evaluate", "jinja.evaluate", "yaql.evaluate"}
VALIDATE_FNS = {"facade.validate", "jinja.validate", "yaql.validate"}
EXTRACT_FNS = {"facade.extract_vars", "jinja.extract_vars", "yaql.extract_vars"}
# upstream functions whose tests check Orquesta's internal Python API only
INTERNAL = {"workflow._get_current_task"}


def lists(v):
    if isinstance(v, dict):
        return {k: lists(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [lists(x) for x in v]
    return v


def outcome_of(call):
    """(ok, value-or-exception-name) of a call made now, in Orquesta."""
    try:
        return True, lists(call())
    except Exception as exc:  # noqa: BLE001
        return False, type(exc).__name__


def has_expr(v):
    if isinstance(v, str):
        return bool(expr_base.has_expressions(v))
    if isinstance(v, dict):
        return any(has_expr(k) or has_expr(x) for k, x in v.items())
    if isinstance(v, list):
        return any(has_expr(x) for x in v)
    return False


def inert_expectation(statement, data):
    """What an evaluation gives when the expression strings inside `data` are inert values:
    Orquesta evaluates the statement with each such string replaced by a unique placeholder, then
    the placeholders in the result are put back."""
    table = {}

    def sub(v):
        if isinstance(v, str) and expr_base.has_expressions(v):
            key = "PLACEHOLDER%dX" % len(table)
            table[key] = v
            return key
        if isinstance(v, dict):
            return {k: sub(x) for k, x in v.items()}
        if isinstance(v, list):
            return [sub(x) for x in v]
        return v

    ok, val = outcome_of(lambda: expr_base.evaluate(statement, sub(copy.deepcopy(data))))

    def back(v):
        if isinstance(v, str):
            for k, s in table.items():
                v = v.replace(k, s)
            return v
        if isinstance(v, dict):
            return {back(k): back(x) for k, x in v.items()}
        if isinstance(v, list):
            return [back(x) for x in v]
        return v

    return ok, back(val) if ok else val


def expect_of(rec):
    if rec["ok"]:
        return {"value": lists(rec["value"])}
    return {"error": "evaluation", "orquesta_exception": rec["exc"]}


def leaves(statement, path=""):
    """(path, string) of every string in a statement, mapping keys included (as `path.<key>`)."""
    if isinstance(statement, str):
        yield path or "$", statement
    elif isinstance(statement, dict):
        for k, v in statement.items():
            sub = f"{path}.{k}" if path else str(k)
            if isinstance(k, str):
                yield sub + ".<key>", k
            yield from leaves(v, sub)
    elif isinstance(statement, list):
        for i, v in enumerate(statement):
            yield from leaves(v, f"{path}[{i}]")


def case_validate(rec):
    statement = rec["args"][0]
    value = rec["value"]
    errors = value.get("errors", []) if isinstance(value, dict) else value
    invalid = []
    for path, s in leaves(statement):
        res = expr_base.validate(s)
        if res.get("errors"):
            invalid.append(path)
    return {
        "kind": "validate",
        "statement": statement,
        "expect": {"invalid": invalid, "orquesta_error_count": len(errors)},
    }


def case_extract(rec):
    statement = rec["args"][0]
    names = sorted({v[2] for v in expr_base.extract_vars(statement)})
    if rec["fn"] == "facade.extract_vars":
        assert names == sorted({v[2] for v in rec["value"]}), rec
    return {"kind": "extract_vars", "statement": statement, "expect": {"variables": names}}


def case_evaluate(rec):
    args = rec["args"]
    statement = args[0]
    data = args[1] if len(args) > 1 else rec["kwargs"].get("data")
    out = {"kind": "evaluate", "statement": statement, "variables": data or {}, "expect": expect_of(rec)}
    out["valid"] = not expr_base.validate(statement).get("errors")
    if data and has_expr(data):
        ok, val = inert_expectation(statement, data)
        inert = {"value": val} if ok else {"error": "evaluation", "orquesta_exception": val}
        if inert == out["expect"] or ("error" in inert and "error" in out["expect"]):
            return out  # the strings in the data are not read: no difference
        out["deviation"] = (
            "Orquesta evaluates expression strings found in context values again (recursive "
            "evaluation); flowctx treats values as inert data and never renders them"
        )
        out["deviation_expect"] = {"value": val} if ok else {"error": "evaluation", "orquesta_exception": val}
    return out


def jinja_yaql(fn_j, fn_y):
    return [("jinja", fn_j), ("yaql", fn_y)]


def translate_function(rec):
    """An upstream Python function call as flowctx-visible inputs, one per language.

    Returns (forms, variables, item, task_scope) with forms = [(lang, expression)], or None when
    the call has no workflow-visible form."""
    fn = rec["fn"]
    a, kw = rec["args"], rec["kwargs"]
    if fn == "common.json_":
        if isinstance(a[0], dict) and "__unserializable__" in a[0]:
            return None  # a Python object(): no workflow value has that type
        return jinja_yaql("{{ json(ctx().v) }}", "<% json(ctx().v) %>"), {"v": a[0]}, None, None
    if fn == "common.zip_":
        variables = {f"l{i}": v for i, v in enumerate(a)}
        js = [f"ctx().l{i}" for i in range(len(a))]
        ys = list(js)
        if "pad" in kw:
            variables["pad"] = kw["pad"]
            js.append("pad=ctx().pad")
            ys.append("pad => ctx().pad")
        return (jinja_yaql("{{ zip(%s) }}" % ", ".join(js), "<% zip(" + ", ".join(ys) + ") %>"), variables, None, None)
    if fn == "common.ctx_":
        variables = a[0]["__vars"]
        if len(a) > 1:
            key = a[1]
            forms = jinja_yaql("{{ ctx('%s') }}" % key, "<% ctx(" + key + ") %>")
            if key.startswith("_"):  # a bare YAQL name cannot start with '_': also as a string
                forms.append(("yaql", "<% ctx('" + key + "') %>"))
            return forms, variables, None, None
        return jinja_yaql("{{ ctx() }}", "<% ctx() %>"), variables, None, None
    if fn == "workflow.item_":
        ctx = a[0]
        key = kw.get("key", a[1] if len(a) > 1 else None)
        item = {"value": ctx["__current_item"]} if "__current_item" in ctx else None
        if key:
            forms = jinja_yaql("{{ item('%s') }}" % key, "<% item(" + key + ") %>")
        else:
            forms = jinja_yaql("{{ item() }}", "<% item() %>")
        return forms, {}, item, None
    if fn in ("workflow.task_status_", "workflow.succeeded_", "workflow.failed_", "workflow.completed_",
              "workflow.result_"):
        ctx = a[0]
        scope = task_scope_of(ctx)
        name = fn.split(".")[1].rstrip("_")
        if name == "task_status":
            task = a[1]
            route = kw.get("route", a[2] if len(a) > 2 else None)
            if route is None:
                forms = jinja_yaql("{{ task_status('%s') }}" % task, "<% task_status(" + task + ") %>")
            else:  # the upstream call names the route: so does the expression
                forms = jinja_yaql("{{ task_status('%s', %d) }}" % (task, route),
                                   "<% task_status(" + task + ", " + str(route) + ") %>")
        else:
            forms = jinja_yaql("{{ %s() }}" % name, "<% " + name + "() %>")
        return forms, {}, None, scope
    return None


def task_scope_of(ctx):
    """What flowctx's conductor hands the renderer for an Orquesta context (see _task_scope)."""
    scope = _task_scope(ctx)
    if scope is None or not ctx:
        return scope
    state = ctx.get("__state") or {}
    current = ctx.get("__current_task") or {}
    if current.get("route"):
        # on a route > 0 the conductor passes the task runs (sequence) and the routes instead
        seq = state.get("sequence") or []
        runs = []
        for uid, idx in sorted((state.get("tasks") or {}).items(), key=lambda kv: kv[1]):
            task, route = uid.rsplit("__r", 1)
            if idx is not None and idx < len(seq) and seq[idx] is not None:
                runs.append({"task": task, "route": int(route), "status": seq[idx].get("status")})
        scope["route"] = current["route"]
        scope["runs"] = runs
        scope["routes"] = state.get("routes") or [[]]
    return scope


def _task_scope(ctx):
    """What flowctx's conductor hands the renderer for an Orquesta context: the current task's
    status and result, and the latest status of every task by name (flowctx keeps one status
    per task name, in the order tasks ran)."""
    if not ctx:
        return None
    state = ctx.get("__state") or {}
    pointers = state.get("tasks") or {}
    seq = state.get("sequence") or []
    statuses = {}
    for uid, idx in sorted(pointers.items(), key=lambda kv: (kv[1] is None, kv[1] or 0)):
        if idx is None or idx >= len(seq) or seq[idx] is None:
            continue
        entry = seq[idx]
        statuses[entry.get("id") or uid.rsplit("__r", 1)[0]] = entry.get("status")
    current = ctx.get("__current_task") or {}
    if not current and not statuses:
        return None
    scope = {"statuses": statuses}
    if current:
        scope["status"] = statuses.get(current.get("id"))
        scope["result"] = current.get("result")
        scope["current"] = current.get("id")
    return scope


def orquesta_expression(expr, rec):
    """Evaluate the translated expression with Orquesta's evaluator on the upstream context."""
    fn = rec["fn"]
    a = rec["args"]
    if fn.startswith("workflow."):
        data = copy.deepcopy(a[0]) if a[0] else {}
    elif fn == "common.ctx_":
        data = copy.deepcopy(a[0]["__vars"])
    elif fn == "common.json_":
        data = {"v": a[0]}
    else:
        data = {f"l{i}": v for i, v in enumerate(a)}
        if "pad" in rec["kwargs"]:
            data["pad"] = rec["kwargs"]["pad"]
    ok, val = outcome_of(lambda: expr_base.evaluate(expr, data))
    return {"value": val} if ok else {"error": "evaluation", "orquesta_exception": val}


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data):
        return True


NOTES = {
    "test_missing_current_item": "through Orquesta's evaluator an absent current item reads as null (its "
    "context helper fills __current_item with None); the upstream test asserts the function's error, "
    "which is what flowctx gives outside a with-items task",
    "test_convert_json_from_dict": "Orquesta's YAQL hands json() a YAQL frozen dict, which its json_() "
    "rejects; the upstream test asserts a mapping is returned as it is",
}


# Siblings: variations of an upstream test's expression (other value types, argument forms,
# whitespace), evaluated by Orquesta like the rest.  (test node, what varies, statement, variables, item)
_T = "expressions/"
SIBLINGS = [
    (_T + "test_yaql_eval_by_dot_notation.py::YAQLEvaluationTest::test_type_string_detection",
     "a boolean interpolated into text", "<% ctx().t %> x", {"t": True}, None),
    (_T + "test_yaql_eval_by_dot_notation.py::YAQLEvaluationTest::test_type_string_detection",
     "null interpolated into text", "<% ctx().n %> x", {"n": None}, None),
    (_T + "test_yaql_eval_by_dot_notation.py::YAQLEvaluationTest::test_type_string_detection",
     "a list and a mapping interpolated into text", "<% ctx().l %> <% ctx().d %>", {"l": [1, 2], "d": {"a": 1}}, None),
    (_T + "test_jinja_eval_by_dot_notation.py::JinjaEvaluationTest::test_type_string_detection",
     "a boolean and null interpolated into text", "{{ ctx().t }} {{ ctx().n }}", {"t": True, "n": None}, None),
    (_T + "test_jinja_eval_by_dot_notation.py::JinjaEvaluationTest::test_type_string_detection",
     "a list and a mapping interpolated into text", "{{ ctx().l }} {{ ctx().d }}", {"l": [1, 2], "d": {"a": 1}}, None),
    (_T + "test_yaql_eval_by_dot_notation.py::YAQLEvaluationTest::test_type_string_detection",
     "str() of a list and of a mapping", "<% str(ctx().l) %> <% str(ctx().d) %>", {"l": [1, 2], "d": {"a": [1]}}, None),
    (_T + "test_yaql_eval_by_dot_notation.py::YAQLEvaluationTest::test_type_string_detection",
     "str() of null and true", "<% str(ctx().n) %> <% str(ctx().t) %>", {"n": None, "t": True}, None),
    (_T + "test_yaql_eval_by_dot_notation.py::YAQLEvaluationTest::test_type_string_detection",
     "join() of a list of mappings", "<% ctx().l.join(', ') %>", {"l": [{"k": 1}, {"k": 2}]}, None),
    (_T + "test_jinja_eval_by_dot_notation.py::JinjaEvaluationTest::test_type_preservation",
     "a list from the context concatenated with a literal list", "{{ ctx().l + [3] }}", {"l": [1, 2]}, None),
    (_T + "test_jinja_eval_by_dot_notation.py::JinjaEvaluationTest::test_type_preservation",
     "a literal list concatenated with a list from the context", "{{ [0] + ctx().l }}", {"l": [1, 2]}, None),
    (_T + "test_jinja_eval_raw_blocks.py::JinjaEvaluationTest::test_block_eval",
     "block tags on lines of their own (Orquesta's trim_blocks)", "{% for i in ctx().x %}\n{{ i }}\n{% endfor %}",
     {"x": ["a", "b"]}, None),
    (_T + "test_jinja_eval_raw_blocks.py::JinjaEvaluationTest::test_block_eval",
     "indented block tags (Orquesta's lstrip_blocks)", "  {% if ctx().t %}\nyes\n  {% endif %}\n", {"t": True}, None),
    (_T + "functions/test_common.py::CommonFunctionTest::test_ctx_get_by_key",
     "the key as a keyword argument", "{{ ctx(key='a') }}", {"a": 1}, None),
    (_T + "functions/test_common.py::CommonFunctionTest::test_ctx_get_by_key",
     "the key as a keyword argument", "<% ctx(key => a) %>", {"a": 1}, None),
    (_T + "functions/test_common.py::CommonFunctionTest::test_ctx_get_all",
     "private names are not counted", "{{ ctx() | length }}", {"a": 1, "__b": 2}, None),
    (_T + "functions/test_common.py::CommonFunctionTest::test_ctx_get_all",
     "private names are not listed", "<% ctx().keys().orderBy($) %>", {"a": 1, "__b": 2}, None),
    (_T + "functions/test_common.py::CommonFunctionTest::test_ctx_get_private_var",
     "a private name by attribute", "{{ ctx().__b }}", {"a": 1, "__b": 2}, None),
    (_T + "functions/test_common.py::CommonFunctionTest::test_ctx_get_private_var",
     "a private name by subscript", "{{ ctx()['__b'] }}", {"a": 1, "__b": 2}, None),
    (_T + "functions/test_task_item.py::ItemFunctionTest::test_item_key",
     "the key as a keyword argument", "{{ item(key='foo') }}", {}, {"foo": 1}),
    (_T + "functions/test_task_item.py::ItemFunctionTest::test_item_key",
     "the key as a keyword argument", "<% item(key => foo) %>", {}, {"foo": 1}),
    (_T + "functions/test_common.py::CommonFunctionTest::test_zip_double",
     "strings are sequences too", "{{ zip('ab', 'cd') }}", {}, None),
    (_T + "functions/test_common.py::CommonFunctionTest::test_zip_longest_pad_value",
     "three lists, a padding number", "{{ zip([1], [2, 3], [], pad=9) }}", {}, None),
    (_T + "functions/test_common.py::CommonFunctionTest::test_convert_json",
     "the JSON literal null", "{{ json('null') }}", {}, None),
    (_T + "functions/test_common.py::CommonFunctionTest::test_convert_json_from_other_types",
     "null is not a JSON string", "<% json(null) %>", {}, None),
    (_T + "test_facade_yaql_evaluate.py::YAQLFacadeEvaluationTest::test_distinct_operator",
     "distinct lists", "<% ctx(val).distinct() %>", {"val": [[1], [1], [2]]}, None),
]


# (test node, what varies, statement): validated by Orquesta, one string each
SIBLING_VALIDATE = [
    (_T + "test_jinja_validate.py::JinjaValidationTest::test_parse_error",
     "a C-style ternary, which Jinja has not", "{{ ctx().foo ? 1 : 2 }}"),
    (_T + "test_jinja_validate.py::JinjaValidationTest::test_missing_braces_error",
     "an opening '{%' with no closing one is plain text", "100 {% done"),
    (_T + "test_yaql_validate.py::YAQLValidationTest::test_parse_error",
     "an opening '<%' with no closing one is plain text", "echo <% done"),
]


def sibling_cases():
    out = []
    for prov, what, statement in SIBLING_VALIDATE:
        invalid = ["$"] if expr_base.validate(statement).get("errors") else []
        out.append((prov, {"kind": "validate", "statement": statement, "origin": "sibling: " + what,
                           "expect": {"invalid": invalid, "orquesta_error_count": len(invalid)}}))
    for prov, what, statement, variables, item in SIBLINGS:
        data = dict(variables)
        if item is not None:
            data["__current_item"] = item
        ok, val = outcome_of(lambda statement=statement, data=data: expr_base.evaluate(statement, copy.deepcopy(data)))
        c = {"kind": "evaluate", "statement": statement, "variables": variables,
             "valid": not expr_base.validate(statement).get("errors"), "origin": "sibling: " + what,
             "expect": {"value": val} if ok else {"error": "evaluation", "orquesta_exception": val}}
        if item is not None:
            c["item"] = item
        out.append((prov, c))
    return out


def build():
    by_module = {}
    seen = set()
    skipped = []
    for rec in RECORDS:
        nodeid = rec["test"]
        path, cls, test = nodeid.split("::")
        module = path[len(PREFIX):]
        prov = f"{module}::{cls}::{test}"
        stem = module[len("expressions/"):-3].replace("/", "__")
        cases = by_module.setdefault(module, [])
        fn = rec["fn"]
        produced = []
        if fn in INTERNAL:
            skipped.append((prov, fn))
            continue
        if fn in EVAL_FNS:
            produced.append(case_evaluate(rec))
        elif fn in VALIDATE_FNS:
            produced.append(case_validate(rec))
        elif fn in EXTRACT_FNS:
            produced.append(case_extract(rec))
        elif fn == "facade.has_expressions":
            produced.append({"kind": "has_expressions", "statement": rec["args"][0],
                             "expect": {"value": bool(rec["value"])}})
        else:
            if fn == "workflow.task_status_" and not rec["ok"]:
                skipped.append((prov, fn))  # corrupt workflow state (dangling pointers): internal
                continue
            tr = translate_function(rec)
            if tr is None:
                skipped.append((prov, fn))
                continue
            forms, variables, item, scope = tr
            for lang, expr in forms:
                c = {"kind": "evaluate", "language": lang, "statement": expr, "variables": variables,
                     "valid": not expr_base.validate(expr).get("errors"),
                     "expect": expect_of(rec), "orquesta_expression": orquesta_expression(expr, rec)}
                oe = c["orquesta_expression"]
                if ("value" in oe) != ("value" in c["expect"]) or oe.get("value") != c["expect"].get("value"):
                    c["note"] = NOTES.get(test, "the upstream test calls the Python function; the same call "
                                          "as an Orquesta expression gives orquesta_expression")
                if item is not None:
                    c["item"] = item["value"]
                if scope is not None:
                    c["task_scope"] = scope
                produced.append(c)
        for c in produced:
            key = (prov, json.dumps(c, sort_keys=True))
            if key in seen:
                continue
            seen.add(key)
            c["provenance"] = prov
            c["upstream_call"] = fn
            base = f"{stem}--{test[5:] if test.startswith('test_') else test}"
            if c.get("language"):
                base += "--" + c["language"]
            n = sum(1 for x in cases if x["id"].rsplit("-", 1)[0] == base or x["id"] == base)
            c["id"] = f"{base}-{n + 1}"
            cases.append(c)
    for prov, c in sibling_cases():
        module, cls, test = prov.split("::")
        stem = module[len("expressions/"):-3].replace("/", "__")
        cases = by_module.setdefault(module, [])
        c["provenance"] = prov
        c["upstream_call"] = "sibling"
        base = f"{stem}--{test[5:]}--sibling"
        n = sum(1 for x in cases if x["id"].rsplit("-", 1)[0] == base)
        c["id"] = f"{base}-{n + 1}"
        cases.append(c)
    os.makedirs(OUT, exist_ok=True)
    total = 0
    for module, cases in sorted(by_module.items()):
        stem = module[len("expressions/"):-3].replace("/", "__")
        ordered = [{k: c[k] for k in ("id", "provenance", "upstream_call", "kind", "language", "statement",
                                        "variables", "item", "task_scope", "valid", "origin", "expect", "note", "orquesta_expression",
                                        "deviation", "deviation_expect") if k in c} for c in cases]
        with open(os.path.join(OUT, stem + ".yaml"), "w") as f:
            f.write(f"# Conformance cases from Orquesta 1.6.0 {PREFIX}{module}\n")
            f.write("# Generated by running Orquesta 1.6.0 (recorded calls; see PROVENANCE.md).\n")
            yaml.dump(ordered, f, Dumper=_NoAliases, sort_keys=False, allow_unicode=True, width=110)
        total += len(cases)
    print("cases", total, "upstream calls not turned into cases", len(skipped))
    for prov, fn in skipped:
        print("  not converted:", prov, fn)


if __name__ == "__main__":
    build()
