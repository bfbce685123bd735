"""Which strings are expressions: the one rule the renderer, the loader and the validator share.

As in Orquesta 1.6.0 (``orquesta.expressions.{jinja,yql}``): a string holds Jinja when it has a
complete ``{{ ... }}`` or ``{% ... %}`` and YAQL when it has a complete ``<% ... %>``.  An opener
without its closer (``100 {% done``, ``echo <% done``, ``{{ x``) is plain text, and text after the
last complete YAQL expression is text too.  One difference, deliberate: a delimiter pair may span
lines here (Orquesta's patterns stop at a newline, so a ``{{ ... }}`` written over two lines of a
``|`` block is plain text there); flowctx renders it.

Linear time: ``str.find`` instead of a non-greedy pattern, which rescans to the end of the string
from every lone opener (quadratic on ``"{{" * 100_000``).
"""
from __future__ import annotations

__all__ = ["YAQL_RE", "has_expressions", "languages", "lone_openers", "yaql_spans"]

import re

from flowctx._patterns import lazy_compile

#: ``<% expr %>`` (group 1: its code), for callers that want a pattern; :func:`yaql_spans` is
#: the linear-time equivalent
YAQL_RE = lazy_compile(r"<%(.*?)%>", re.S)


def _pair(text: str, opener: str, closer: str) -> bool:
    i = text.find(opener)
    return i >= 0 and text.find(closer, i + 2) >= 0


def languages(text: str) -> tuple[bool, bool]:
    """``(has Jinja, has YAQL)`` for ``text``."""
    jinja = _pair(text, "{{", "}}") or _pair(text, "{%", "%}")
    return jinja, _pair(text, "<%", "%>")


def lone_openers(text: str) -> list[str]:
    """The openers (``{{``, ``{%``, ``<%``) whose last occurrence in ``text`` has no closer after
    it: by the rule above that part is plain text, which is most often a typo (``{{ x``).  For
    the validator's warnings; rendering is not affected."""
    out: list[str] = []
    for opener, closer in (("{{", "}}"), ("{%", "%}"), ("<%", "%>")):
        i = text.rfind(opener)
        if i >= 0 and text.find(closer, i + 2) < 0:
            out.append(opener)
    return out


def has_expressions(text: object) -> bool:
    """True when ``text`` is a string holding at least one complete expression of either language."""
    if not isinstance(text, str):
        return False
    jinja, yaql = languages(text)
    return jinja or yaql


def yaql_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every complete ``<% ... %>`` in order (what ``YAQL_RE.finditer`` finds),
    in linear time."""
    out: list[tuple[int, int]] = []
    pos = 0
    while True:
        i = text.find("<%", pos)
        if i < 0:
            return out
        j = text.find("%>", i + 2)
        if j < 0:
            return out  # a lone opener: it and the rest are text
        out.append((i, j + 2))
        pos = j + 2
