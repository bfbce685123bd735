"""The with-items fan-out workflow the engine and durable-state benchmarks both time.

A ``load`` task returns a blob (``bench.blob``) that its transition publishes as ``big``; ``fan``
runs ``bench.work`` over the items with one rendered input.
"""

FANOUT_WORKFLOW = """\
version: 1.0
description: with-items fan-out over a published blob (engine and durable-state benchmarks)
input:
  - items
tasks:
  load:
    action: bench.blob
    next:
      - when: "{{ succeeded() }}"
        publish:
          - big: "{{ result() }}"
        do: fan
  fan:
    with:
      items: "{{ ctx().items }}"
    action: bench.work
    input:
      value: "{{ item() }}"
output:
  - keys: "{{ ctx().big | length }}"
"""
