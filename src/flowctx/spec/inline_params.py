"""Inline parameters: ``core.echo message="hi" n=3`` / ``publish: a=<% x %> b=...``.

Both syntaxes accept them (after an action name, and as a ``publish`` string).
"""
from __future__ import annotations

import json
import re
from typing import Any

from flowctx._patterns import lazy_compile

__all__ = ["InlineParamsError", "parse_inline_params"]


_KEY_RE = lazy_compile(r"([A-Za-z_][\w.-]*)=")
_CLOSERS = {"<%": "%>", "{{": "}}", "{%": "%}"}


class InlineParamsError(ValueError):
    pass


def _scan_template(s: str, i: int) -> int:
    """Index just past the template that starts at ``s[i]`` (``<% %>``, ``{{ }}``, ``{% %}``)."""
    closer = _CLOSERS[s[i:i + 2]]
    j = s.find(closer, i + 2)
    if j < 0:
        raise InlineParamsError(f"unterminated {s[i:i + 2]!r}")
    return j + 2


def _convert_bare(raw: str) -> Any:
    if raw in ("true", "false", "null") or re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", raw):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def parse_inline_params(text: str) -> list[tuple[str, Any]]:
    """Parse ``key=value key2="quoted value" key3=<% expr with spaces %>`` into ordered pairs.

    Values: ``"..."`` (JSON string escapes) and ``'...'`` are unquoted; ``[...]`` / ``{...}``
    are JSON when they parse as JSON; ``true`` / ``false`` / ``null`` / numbers are converted;
    anything else (including embedded ``<% %>`` / ``{{ }}``) is kept as a string.
    Raises :class:`InlineParamsError` on text that is not ``key=value`` pairs.
    """
    pairs: list[tuple[str, Any]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return pairs
        m = _KEY_RE.match(text, i)
        if not m:
            raise InlineParamsError(f"expected key=value at {text[i:i + 30]!r}")
        key = m.group(1)
        i = m.end()
        if i >= n or text[i].isspace():
            pairs.append((key, ""))
            continue
        ch = text[i]
        if ch in "\"'":
            j = i + 1
            while j < n and text[j] != ch:
                j += 2 if (text[j] == "\\" and ch == '"') else 1
            if j >= n:
                raise InlineParamsError(f"unterminated quote in value of {key!r}")
            raw = text[i:j + 1]
            i = j + 1
            if ch == '"':
                try:
                    value: Any = json.loads(raw)
                except ValueError:
                    value = raw[1:-1]
            else:
                value = raw[1:-1]
            pairs.append((key, value))
            continue
        if ch in "[{" and text[i:i + 2] not in _CLOSERS:
            depth, j, quote = 0, i, None
            while j < n:
                c = text[j]
                if quote:
                    if c == "\\":
                        j += 1
                    elif c == quote:
                        quote = None
                elif c in "\"'":
                    quote = c
                elif c in "[{":
                    depth += 1
                elif c in "]}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            raw = text[i:j + 1]
            i = j + 1
            try:
                value = json.loads(raw)
            except ValueError:
                value = raw
            pairs.append((key, value))
            continue
        j = i
        while j < n and not text[j].isspace():
            if text[j:j + 2] in _CLOSERS:
                j = _scan_template(text, j)
            else:
                j += 1
        pairs.append((key, _convert_bare(text[i:j])))
        i = j

