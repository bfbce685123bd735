"""Broken workflows, one per validation rule: the exact ``file:line:col: severity: message [task]``
of every problem (all problems of a file are reported in one pass)."""
from __future__ import annotations

import pytest
import yaml

from flowctx.errors import WorkflowError
from flowctx.spec import Problem, load_workflow, validate
from flowctx.spec.yaml_source import MAX_ALIAS_BYTES, MAX_ALIAS_NODES


def problems_of(text: str | bytes) -> list[str]:
    try:
        spec = load_workflow(text, file="broken.yaml", validate=False)
    except WorkflowError as exc:
        assert exc.problems, exc
        return [str(p) for p in exc.problems]
    return [str(p) for p in validate(spec)]


# (id, workflow text, every problem expected, in order)
CASES = [
    (
        'yaml_syntax',
        """\
version: 1.0
tasks:
  task1:
    action: [core.noop
""",
        [
            "broken.yaml:5:1: error: invalid YAML: while parsing a flow sequence did not find expected ',' or ']'",
        ],
    ),
    (
        'yaml_bad_indent',
        """\
version: 1.0
tasks:
  task1:
    action: core.noop
   next: []
""",
        [
            'broken.yaml:5:4: error: invalid YAML: while parsing a block mapping did not find expected key',
        ],
    ),
    (
        'top_level_list',
        """\
- task1
- task2
""",
        [
            'broken.yaml:1:1: error: a workflow must be a mapping, got a list',
        ],
    ),
    (
        'empty_file',
        """\
# nothing here
""",
        [
            'broken.yaml:1:1: error: the workflow file is empty',
        ],
    ),
    (
        'missing_tasks',
        """\
version: 1.0
description: no tasks
""",
        [
            "broken.yaml:1:1: error: missing required key 'tasks'",
        ],
    ),
    (
        'tasks_wrong_type',
        """\
version: 1.0
tasks: task1
""",
        [
            "broken.yaml:2:8: error: 'tasks' must be a mapping of task name to task (Orquesta) or a list of tasks (list form), got a string",
        ],
    ),
    (
        'unknown_workflow_key',
        """\
version: 1.0
descripton: typo
tasks:
  task1:
    action: core.noop
""",
        [
            "broken.yaml:2:1: error: unknown key 'descripton' in workflow (did you mean 'description'?)",
        ],
    ),
    (
        'unknown_task_key',
        """\
version: 1.0
tasks:
  task1:
    actoin: core.noop
""",
        [
            "broken.yaml:4:5: error: unknown key 'actoin' in task (did you mean 'action'?) [task1]",
        ],
    ),
    (
        'unknown_next_key',
        """\
version: 1.0
tasks:
  task1:
    action: core.noop
    next:
      - when: <% succeeded() %>
        doo: task2
  task2:
    action: core.noop
""",
        [
            "broken.yaml:7:9: error: unknown key 'doo' in 'next' entry (did you mean 'do'?) [task1]",
        ],
    ),
    (
        'duplicate_task_orquesta',
        """\
version: 1.0
tasks:
  task1:
    action: core.noop
  task1:
    action: core.echo message=hi
""",
        [
            "broken.yaml:5:3: error: duplicate task name 'task1' (first defined at line 3) [task1]",
        ],
    ),
    (
        'duplicate_task_list',
        """\
ref: demo.dup
tasks:
  - name: a
    action: core.noop
  - name: a
    action: core.noop
""",
        [
            "broken.yaml:5:11: error: duplicate task name 'a' (first defined at line 3) [a]",
        ],
    ),
    (
        'duplicate_key_in_task',
        """\
version: 1.0
tasks:
  task1:
    action: core.noop
    action: core.echo
""",
        [
            "broken.yaml:5:5: error: duplicate key 'action' in task [task1]",
        ],
    ),
    (
        'unknown_target_orquesta',
        """\
version: 1.0
tasks:
  task1:
    action: core.noop
    next:
      - when: <% succeeded() %>
        do: tsk2
  task2:
    action: core.noop
""",
        [
            "broken.yaml:7:13: error: transition to unknown task 'tsk2' (did you mean 'task2'?) [task1]",
        ],
    ),
    (
        'unknown_target_list',
        """\
ref: demo.target
tasks:
  - name: first
    action: core.noop
    on_failure: handler
  - name: handle
    action: core.noop
""",
        [
            "broken.yaml:5:17: error: transition to unknown task 'handler' (did you mean 'handle'?) [first]",
        ],
    ),
    (
        'reserved_name',
        """\
version: 1.0
tasks:
  task1:
    action: core.noop
    next:
      - do: noop
  noop:
    action: core.noop
""",
        [
            "broken.yaml:7:3: error: task name 'noop' is reserved (it is an engine command: continue, fail, noop, retry) [noop]",
        ],
    ),
    (
        'task_name_with_space',
        """\
version: 1.0
tasks:
  my task:
    action: core.noop
""",
        [
            "broken.yaml:3:3: error: invalid task name 'my task': task names cannot contain spaces or commas [my task]",
        ],
    ),
    (
        'no_start_task',
        """\
version: 1.0
tasks:
  a:
    action: core.noop
    next:
      - do: b
  b:
    action: core.noop
    next:
      - do: a
""",
        [
            'broken.yaml:2:1: error: no start task: every task is the target of a transition, so nothing can run first',
        ],
    ),
    (
        'unreachable_cycle',
        """\
version: 1.0
tasks:
  start:
    action: core.noop
  a:
    action: core.noop
    next:
      - do: b
  b:
    action: core.noop
    next:
      - do: a
""",
        [
            "broken.yaml:5:3: error: task 'a' is unreachable: it is only reached from tasks that are never started (start tasks: start) [a]",
            "broken.yaml:9:3: error: task 'b' is unreachable: it is only reached from tasks that are never started (start tasks: start) [b]",
        ],
    ),
    (
        'join_unsatisfiable',
        """\
version: 1.0
tasks:
  t1:
    action: core.noop
    next:
      - do: t2, t3
  t2:
    next:
      - do: t4
  t3:
    next:
      - do: t4
  t4:
    join: 3
    action: core.noop
""",
        [
            "broken.yaml:14:11: error: join: 3 can never be satisfied: only 2 tasks lead to 't4' (t2, t3) [t4]",
        ],
    ),
    (
        'join_zero',
        """\
version: 1.0
tasks:
  t1:
    next:
      - do: t2
  t2:
    join: 0
""",
        [
            "broken.yaml:7:11: error: 'join' must be 'all' or a count of at least 1, got 0 [t2]",
        ],
    ),
    (
        'join_word',
        """\
version: 1.0
tasks:
  t1:
    next:
      - do: t2
  t2:
    join: al
""",
        [
            "broken.yaml:7:11: error: 'join' must be 'all' or a count, got 'al' (did you mean 'all'?) [t2]",
        ],
    ),
    (
        'join_no_inbound',
        """\
version: 1.0
tasks:
  t1:
    join: all
    action: core.noop
""",
        [
            "broken.yaml:4:11: warning: 'join' has no effect: no transition leads to 't1' [t1]",
        ],
    ),
    (
        'retry_count_negative',
        """\
version: 1.0
tasks:
  t1:
    action: core.noop
    retry:
      count: -1
""",
        [
            "broken.yaml:6:14: error: 'retry.count' must be at least 1, got -1 [t1]",
        ],
    ),
    (
        'retry_count_zero',
        """\
ref: demo.retry
tasks:
  - name: t1
    action: core.noop
    retry:
      count: 0
      delay: 1
""",
        [
            "broken.yaml:6:14: error: 'retry.count' must be at least 1, got 0 [t1]",
        ],
    ),
    (
        'retry_count_word',
        """\
version: 1.0
tasks:
  t1:
    action: core.noop
    retry:
      count: three
""",
        [
            "broken.yaml:6:14: error: 'retry.count' must be an integer or a template, got 'three' [t1]",
        ],
    ),
    (
        'retry_delay_negative',
        """\
version: 1.0
tasks:
  t1:
    action: core.noop
    retry:
      count: 2
      delay: -5
""",
        [
            "broken.yaml:7:14: error: 'retry.delay' must be zero or more, got -5 [t1]",
        ],
    ),
    (
        'retry_backoff_typo',
        """\
ref: demo.retry
tasks:
  - name: t1
    action: core.noop
    retry:
      count: 2
      backoff: exponentail
""",
        [
            "broken.yaml:7:16: error: 'backoff' must be one of constant, linear, exponential, got 'exponentail' (did you mean 'exponential'?) [t1]",
        ],
    ),
    (
        'retry_missing_count',
        """\
version: 1.0
tasks:
  t1:
    action: core.noop
    retry:
      delay: 3
""",
        [
            "broken.yaml:6:7: error: 'retry' needs 'count' [t1]",
        ],
    ),
    (
        'retry_not_mapping',
        """\
version: 1.0
tasks:
  t1:
    action: core.noop
    retry: 3
""",
        [
            "broken.yaml:5:12: error: 'retry' must be a mapping (count, delay, ...), got an integer [t1]",
        ],
    ),
    (
        'retry_count_bool',
        """\
version: 1.0
tasks:
  t1:
    action: core.noop
    retry:
      count: true
""",
        [
            "broken.yaml:6:14: error: 'retry.count' must be an integer or a template, got the boolean true [t1]",
        ],
    ),
    (
        'retry_delay_infinite',
        """\
version: 1.0
tasks:
  t1:
    action: core.noop
    retry:
      count: 1
      delay: .inf
""",
        [
            "broken.yaml:7:14: error: 'retry.delay' must be a finite number, got inf [t1]",
        ],
    ),
    (
        'with_concurrency_zero',
        """\
version: 1.0
input:
  - xs
tasks:
  t1:
    with:
      items: <% ctx(xs) %>
      concurrency: 0
    action: core.echo message=<% item() %>
""",
        [
            "broken.yaml:8:20: error: 'concurrency' must be at least 1, got 0 [t1]",
        ],
    ),
    (
        'batch_size_negative',
        """\
ref: demo.batch
parameters:
  xs:
    type: array
tasks:
  - name: t1
    action: core.echo
    input: {message: "{{ item }}"}
    with_items: "{{ parameters.xs }}"
    batch_size: -2
""",
        [
            "broken.yaml:10:17: error: 'batch_size' must be at least 1, got -2 [t1]",
        ],
    ),
    (
        'concurrency_without_items',
        """\
ref: demo.conc
tasks:
  - name: t1
    action: core.noop
    concurrency: 4
""",
        [
            "broken.yaml:5:5: error: 'concurrency' only applies to a task with 'with_items' [t1]",
        ],
    ),
    (
        'with_missing_items',
        """\
version: 1.0
tasks:
  t1:
    with:
      concurrency: 2
    action: core.noop
""",
        [
            "broken.yaml:5:7: error: 'with' needs 'items' [t1]",
        ],
    ),
    (
        'with_items_number',
        """\
version: 1.0
tasks:
  t1:
    with: 42
    action: core.noop
""",
        [
            "broken.yaml:4:11: error: 'with' items must be a template or a list, got an integer [t1]",
        ],
    ),
    (
        'with_items_plain_string',
        """\
ref: demo.items
tasks:
  - name: t1
    action: core.noop
    with_items: regions
""",
        [
            "broken.yaml:5:17: error: with-items must be a template or a list, got the plain string 'regions' [t1]",
        ],
    ),
    (
        'timeout_zero',
        """\
ref: demo.timeout
tasks:
  - name: t1
    action: core.noop
    timeout: 0
""",
        [
            "broken.yaml:5:14: error: 'timeout' must be greater than 0, got 0 [t1]",
        ],
    ),
    (
        'delay_negative',
        """\
version: 1.0
tasks:
  t1:
    action: core.noop
    delay: -1
""",
        [
            "broken.yaml:5:12: error: 'delay' must be zero or more, got -1 [t1]",
        ],
    ),
    (
        'input_wrong_type',
        """\
version: 1.0
tasks:
  t1:
    action: core.echo
    input:
      - message
""",
        [
            "broken.yaml:6:7: error: 'input' must be a mapping, got a list (or one expression giving a mapping: input: <% ctx().args %>) [t1]",
        ],
    ),
    (
        'next_not_list',
        """\
version: 1.0
tasks:
  t1:
    action: core.noop
    next: t2
  t2:
    action: core.noop
""",
        [
            "broken.yaml:5:11: error: 'next' must be a list of {when, publish, do} entries, got a string [t1]",
        ],
    ),
    (
        'next_entry_not_mapping',
        """\
version: 1.0
tasks:
  t1:
    action: core.noop
    next:
      - t2
  t2:
    action: core.noop
""",
        [
            "broken.yaml:6:9: error: entries of 'next' must be mappings with when/publish/do, got a string [t1]",
        ],
    ),
    (
        'publish_wrong_type',
        """\
version: 1.0
tasks:
  t1:
    action: core.noop
    next:
      - publish: 42
""",
        [
            "broken.yaml:6:18: error: 'publish' must be a list of one-key mappings or a mapping or a 'name=value ...' string, got an integer [t1]",
        ],
    ),
    (
        'vars_wrong_type',
        """\
version: 1.0
vars: hello
tasks:
  t1:
    action: core.noop
""",
        [
            "broken.yaml:2:7: error: 'vars' must be a list of one-key mappings or a mapping, got a string",
        ],
    ),
    (
        'inline_params_unparseable',
        """\
version: 1.0
tasks:
  t1:
    action: core.echo message
""",
        [
            "broken.yaml:4:13: error: cannot parse the inline parameters of 'action': expected key=value at 'message' [t1]",
        ],
    ),
    (
        'inline_params_unterminated_quote',
        """\
version: 1.0
tasks:
  t1:
    action: core.echo message="hello
""",
        [
            "broken.yaml:4:13: error: cannot parse the inline parameters of 'action': unterminated quote in value of 'message' [t1]",
        ],
    ),
    (
        'undefined_variable_ctx',
        """\
version: 1.0
vars:
  - greeting: hi
tasks:
  t1:
    action: core.echo message=<% ctx().greting %>
""",
        [
            "broken.yaml:6:13: error: variable 'greting' in 'input.message' is referenced before assignment (no input, var or publish on the way to it defines it) (did you mean 'greeting'?) [t1]",
        ],
    ),
    (
        'undefined_variable_workflow',
        """\
ref: demo.vars
vars:
  count: 0
tasks:
  - name: t1
    action: core.echo
    input:
      message: "{{ workflow.cuont }}"
""",
        [
            "broken.yaml:8:16: warning: variable 'cuont' in 'input.message' is never defined (not an input, a var, or published by any task) (did you mean 'count'?) [t1]",
        ],
    ),
    (
        'lone_expression_openers',
        """\
version: 1.0
input:
  - a
tasks:
  t1:
    action: core.noop
    input:
      message: "hello {{ ctx().who"
      other: "<% ctx().a %> is 100 <%"
""",
        [
            "broken.yaml:8:16: warning: '{{' in 'input.message' has no closing '}}' after it: that part is plain text, not an expression (close it with '}}' to render it) [t1]",
            "broken.yaml:9:14: warning: '<%' in 'input.other' has no closing '%>' after it: that part is plain text, not an expression (close it with '%>' to render it) [t1]",
        ],
    ),
    (
        'condition_not_template',
        """\
ref: demo.when
tasks:
  - name: t1
    action: core.noop
    when: parameters.go
""",
        [
            "broken.yaml:5:11: warning: condition 'parameters.go' in 'when' is not a template ({{ ... }} or <% ... %>): a non-empty string is always true [t1]",
        ],
    ),
    (
        'list_task_missing_name',
        """\
ref: demo.noname
tasks:
  - action: core.noop
""",
        [
            "broken.yaml:3:5: error: task is missing 'name'",
        ],
    ),
    (
        'list_task_not_mapping',
        """\
ref: demo.notmap
tasks:
  - core.noop
""",
        [
            "broken.yaml:3:5: error: a task must be a mapping with 'name', 'action', ..., got a string",
        ],
    ),
    (
        'list_unknown_type',
        """\
ref: demo.type
tasks:
  - name: t1
    type: paralel
""",
        [
            "broken.yaml:4:11: error: unknown task type 'paralel': expected one of action, parallel, workflow (did you mean 'parallel'?) [t1]",
        ],
    ),
    (
        'parallel_without_tasks',
        """\
ref: demo.par
tasks:
  - name: t1
    type: parallel
""",
        [
            "broken.yaml:4:11: error: a task of type 'parallel' needs 'tasks' (the sub-tasks to run) [t1]",
        ],
    ),
    (
        'tasks_on_action_task',
        """\
ref: demo.par
tasks:
  - name: t1
    action: core.noop
    tasks:
      - name: t2
        action: core.noop
""",
        [
            "broken.yaml:5:5: error: 'tasks' is only allowed in a task of type 'parallel' [t1]",
        ],
    ),
    (
        'workflow_task_without_file',
        """\
ref: demo.sub
tasks:
  - name: t1
    type: workflow
""",
        [
            "broken.yaml:4:11: error: a task of type 'workflow' needs 'workflow' (the sub-workflow file) [t1]",
        ],
    ),
    (
        'decision_two_defaults',
        """\
ref: demo.decision
tasks:
  - name: t1
    action: core.noop
    decision:
      - default: t2
      - default: t3
  - name: t2
    action: core.noop
  - name: t3
    action: core.noop
""",
        [
            "broken.yaml:7:9: error: more than one 'default' branch in 'decision' (first at line 6) [t1]",
        ],
    ),
    (
        'decision_branch_without_next',
        """\
ref: demo.decision
tasks:
  - name: t1
    action: core.noop
    decision:
      - when: "{{ true }}"
  - name: t2
    action: core.noop
""",
        [
            "broken.yaml:6:9: error: a decision branch needs 'next' (the task to run) [t1]",
        ],
    ),
    (
        'parameter_default_mismatch',
        """\
ref: demo.params
parameters:
  env:
    type: string
    enum: [dev, prod]
    default: staging
tasks:
  - name: t1
    action: core.noop
""",
        [
            "broken.yaml:6:14: error: default of parameter 'env' does not match its schema: 'staging' is not one of ['dev', 'prod']",
        ],
    ),
    (
        'parameter_invalid_schema',
        """\
ref: demo.params
parameters:
  n:
    type: integr
tasks:
  - name: t1
    action: core.noop
""",
        [
            "broken.yaml:3:3: error: invalid schema for parameter 'n': unknown type 'integr' (did you mean 'integer'?)",
        ],
    ),
    (
        'parameter_required_not_bool',
        """\
ref: demo.params
parameters:
  n:
    type: integer
    required: "yes"
tasks:
  - name: t1
    action: core.noop
""",
        [
            "broken.yaml:5:15: error: 'required' must be true or false, got a string",
        ],
    ),
    (
        'parameter_unknown_key',
        """\
ref: demo.params
parameters:
  n:
    type: integer
    defualt: 3
tasks:
  - name: t1
    action: core.noop
""",
        [
            "broken.yaml:5:5: error: unknown key 'defualt' in parameter 'n' (did you mean 'default'?)",
        ],
    ),
    (
        'python_tag',
        """\
version: 1.0
tasks:
  t1:
    action: !!python/object/apply:os.system ["echo pwned"]
""",
        [
            "broken.yaml:4:13: error: YAML tag '!!python/object/apply:os.system' is not allowed (workflow files hold plain data)",
        ],
    ),
    (
        'custom_tag',
        """\
version: 1.0
tasks: !include other.yaml
""",
        [
            "broken.yaml:2:8: error: YAML tag '!include' is not allowed (workflow files hold plain data)",
        ],
    ),
    (
        'unknown_alias',
        """\
version: 1.0
tasks:
  t1: *base
""",
        [
            "broken.yaml:3:7: error: unknown YAML alias '*base'",
        ],
    ),
    (
        'two_documents',
        """\
version: 1.0
tasks: {t1: {action: core.noop}}
---
version: 1.0
""",
        [
            'broken.yaml:3:1: error: a workflow file holds one YAML document, found a second one',
        ],
    ),
    (
        'invalid_action_name',
        """\
version: 1.0
tasks:
  t1:
    action: core/echo
""",
        [
            "broken.yaml:4:13: error: invalid action name 'core/echo': expected 'pack.action', 'module:function' or a workflow file (.yaml) [t1]",
        ],
    ),
    (
        'output_wrong_type',
        """\
version: 1.0
tasks:
  t1:
    action: core.noop
output: 5
""",
        [
            "broken.yaml:5:9: error: 'output' must be a list of one-key mappings or a mapping, got an integer",
        ],
    ),
    (
        'task_not_mapping',
        """\
version: 1.0
tasks:
  t1: core.noop
""",
        [
            "broken.yaml:3:7: error: task 't1' must be a mapping, got a string [t1]",
        ],
    ),
    (
        'input_item_two_keys',
        """\
version: 1.0
input:
  - a: 1
    b: 2
tasks:
  t1:
    action: core.noop
""",
        [
            "broken.yaml:3:5: error: items of 'input' must be names or one-key mappings, got a mapping with several keys",
        ],
    ),
    (
        'publish_name_twice',
        """\
version: 1.0
tasks:
  t1:
    action: core.noop
    next:
      - publish: a=1 a=2
""",
        [
            "broken.yaml:6:18: error: 'a' is defined twice in 'publish' [t1]",
        ],
    ),
    (
        'no_tasks',
        """\
version: 1.0
tasks: {}
""",
        [
            'broken.yaml:2:1: error: the workflow has no tasks',
        ],
    ),
    ("huge_int", "version: 1.0\ntasks:\n  t1:\n    delay: " + "9" * 5000 + "\n", [
            "broken.yaml:4:12: error: invalid int value '9999999999999999999999999999999999999...': more than 4300 digits (Python's limit for reading an integer from text)",
    ]),
]

YAML_PARSER_MESSAGES = {"yaml_syntax", "yaml_bad_indent"}  # libyaml's wording


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("name,text,expected", CASES, ids=[c[0] for c in CASES])
def test_broken_workflow(name: str, text: str, expected: list[str]) -> None:
    got = problems_of(text)
    if name in YAML_PARSER_MESSAGES and not yaml.__with_libyaml__:
        # the pure-Python parser words YAML errors differently: check the position only
        assert [g.split(" error: ")[0] for g in got] == [e.split(" error: ")[0] for e in expected]
        return
    assert got == expected


@pytest.mark.parametrize("name,text,expected", CASES, ids=[c[0] for c in CASES])
def test_load_raises_exactly_the_errors(name: str, text: str, expected: list[str]) -> None:
    errors = [e for e in expected if ": error: " in e]
    if not errors:
        spec = load_workflow(text, file="broken.yaml")  # warnings never raise
        assert spec.tasks
        return
    with pytest.raises(WorkflowError) as info:
        load_workflow(text, file="broken.yaml")
    exc = info.value
    if name in YAML_PARSER_MESSAGES and not yaml.__with_libyaml__:
        return
    assert [str(p) for p in exc.problems if p.severity == "error"] == errors
    assert exc.file == "broken.yaml"
    first = exc.problems[0] if len(errors) == 1 else next(p for p in exc.problems if p.severity == "error")
    assert (exc.line, exc.column) == (first.loc.line, first.loc.column)
    for line in errors:
        assert line in str(exc)


def test_all_problems_in_one_pass() -> None:
    text = """\
version: 1.0
descripton: typo
tasks:
  task1:
    actoin: core.noop
    next:
      - when: <% succeeded() %>
        do: tsk2, fail
  task2:
    join: 2
    retry:
      count: 0
  noop:
    action: core.noop
"""
    assert problems_of(text) == [
        "broken.yaml:2:1: error: unknown key 'descripton' in workflow (did you mean 'description'?)",
        "broken.yaml:5:5: error: unknown key 'actoin' in task (did you mean 'action'?) [task1]",
        "broken.yaml:8:13: error: transition to unknown task 'tsk2' (did you mean 'task2'?) [task1]",
        "broken.yaml:10:11: error: join: 2 can never be satisfied: only 0 tasks lead to 'task2' [task2]",
        "broken.yaml:12:14: error: 'retry.count' must be at least 1, got 0 [task2]",
        "broken.yaml:13:3: error: task name 'noop' is reserved (it is an engine command: continue, fail, "
        "noop, retry) [noop]",
    ]
    with pytest.raises(WorkflowError) as info:
        load_workflow(text, file="broken.yaml")
    assert str(info.value).startswith("6 errors in workflow:\nbroken.yaml:2:1: error: unknown key")
    assert len(info.value.problems) == 6


def test_problem_str_and_sorting() -> None:
    from flowctx.spec import Loc

    p = Problem("error", "bad thing", Loc("wf.yaml", 3, 7), "task1")
    assert str(p) == "wf.yaml:3:7: error: bad thing [task1]"
    assert str(Problem("warning", "hmm", Loc(None, 1, 1))) == "<string>:1:1: warning: hmm"


def test_non_utf8_bytes() -> None:
    got = problems_of(b"version: 1.0\ntasks:\n  t1:\n    action: core.echo message=\xff\xfe\n")
    assert got == ["broken.yaml:4:31: error: workflow file is not valid UTF-8 (byte 0xff)"]


def test_unreadable_path(tmp_path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(WorkflowError) as info:
        load_workflow(missing)
    assert str(info.value).startswith(f"{missing}:1:1: error: cannot read workflow file: ")


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 9)}]")
    text = "version: 1.0\nvars:\n" + "\n".join(
        f"  - x{i}: {line.split(': ', 1)[1]}" for i, line in enumerate(lines)) + "\ntasks:\n  t1: {}\n"
    got = problems_of(text)
    assert len(got) == 1 and "alias" in got[0]
    # refused at the alias that crosses the limit, before anything was expanded
    assert got[0].startswith("broken.yaml:7:") or got[0].startswith("broken.yaml:6:")


def test_aliases_of_a_big_string_are_refused_at_the_alias() -> None:
    # 200 aliases of one 1 MB string (a 1.1 MB file): the expanded text is counted, not the file
    big = "x" * (1024 * 1024)
    text = ("version: 1.0\nvars:\n  - big: &b \"" + big + "\"\ntasks:\n  t1:\n    action: core.noop\n"
            "    input:\n" + "".join(f"      k{i}: *b\n" for i in range(200)))
    got = problems_of(text)
    limit = MAX_ALIAS_BYTES // len(big) + 1  # the alias that crosses the limit
    assert got == [f"broken.yaml:{7 + limit}:11: error: YAML aliases expand too much: more than "
                   f"{MAX_ALIAS_NODES} nodes or {MAX_ALIAS_BYTES} characters added through aliases (this one, "
                   f"'*b', brings the total to {limit} nodes, {limit * len(big)} characters)"]


def test_many_aliases_of_a_small_node_are_refused_at_the_alias() -> None:
    # 150,000 aliases of a short template string (the 8.8 MB case): the count of expanded nodes
    text = ("version: 1.0\nvars:\n  - v: 1\n  - s: &s \"<% ctx().v %> and some words\"\ntasks:\n  t1:\n"
            "    action: core.echo\n    input:\n      message:\n" + "        - *s\n" * 150_000)
    got = problems_of(text)
    assert len(got) == 1
    line = 10 + MAX_ALIAS_NODES  # the first alias is on line 10
    assert got[0].startswith(f"broken.yaml:{line}:11: error: YAML aliases expand too much: more than "
                             f"{MAX_ALIAS_NODES} nodes")


def test_a_few_aliases_are_fine() -> None:
    text = ("version: 1.0\nvars:\n  - base: &base {retries: 2, region: eu}\ntasks:\n  t1:\n"
            "    action: core.noop\n    next:\n      - publish:\n          - a: *base\n          - b: *base\n")
    assert problems_of(text) == []


def test_deep_nesting_is_refused() -> None:
    got = problems_of("version: 1.0\ntasks:\n  t1:\n    input:\n      x: " + "[" * 100 + "]" * 100 + "\n")
    assert got == ["broken.yaml:5:70: error: document nested deeper than 64 levels"]
    got = problems_of("version: 1.0\ntasks:\n  t1:\n    input:\n      x: " + "[" * 50000 + "]" * 50000 + "\n")
    assert len(got) == 1 and got[0].startswith("broken.yaml:5:")


TEMPLATE_CASES = [
    ("""\
ref: demo.tpl
tasks:
  - name: t1
    action: demo.echo
    input:
      message: "{{ parameters.x + }}"
      nested:
        deep: ["ok", "{% if %}"]
    on_success: t2
  - name: t2
    action: core.noop
    when: "{{ a ==== b }}"
    publish:
      - y: "{{ 'unterminated }}"
""", [
        ("broken.yaml:6:16", "input.message", "t1"),
        ("broken.yaml:8:22", "input.nested.deep.1", "t1"),
        ("broken.yaml:12:11", "when", "t2"),
        ("broken.yaml:14:12", "publish.y", "t2"),
    ]),
    ("""\
version: 1.0
vars:
  - v: <% 1 + %>
tasks:
  t1:
    action: core.noop
    next:
      - when: <% succeeded( %>
        publish: x=<% 1 + %>
output:
  - o: "{{ 1 + }}"
""", [
        ("broken.yaml:3:8", "vars.v", None),
        ("broken.yaml:8:15", "when", "t1"),
        ("broken.yaml:9:18", "publish.x", "t1"),
        ("broken.yaml:11:8", "output.o", None),
    ]),
]


@pytest.mark.parametrize("text,expected", TEMPLATE_CASES)
def test_template_syntax_errors_name_their_field(text: str, expected: list) -> None:
    pytest.importorskip("flowctx.render")
    got = problems_of(text)
    assert len(got) == len(expected)
    for line, (where, field, task) in zip(got, expected):
        assert line.startswith(f"{where}: error: template syntax error in '{field}': "), line
        assert line.endswith(f" [{task}]") if task else not line.endswith("]"), line
