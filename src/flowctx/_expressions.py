"""Which strings are expressions: the one rule the renderer, the loader and the validator share.

As in Orquesta 1.6.0 (``orquesta.expressions.{jinja,yql}``): a string holds Jinja when it has a
complete ``{{ ... }}`` or ``{% ... %}`` and YAQL when it has a complete ``<% ... %>``.  An opener
without its closer (``100 {% done``, ``echo <% done``, ``{{ x``) is plain text, and text after the
last complete YAQL expression is text too.  One difference, deliberate: a delimiter pair may span
lines here (Orquesta's patterns stop at a newline, so a ``{{ ... }}`` written over two lines of a
``|`` block is plain text there); flowctx renders it.
"""
from __future__ import annotations

import re

__all__ = ["JINJA_RE", "YAQL_RE", "languages", "has_expressions"]

#: a complete Jinja expression or block tag (non-greedy, across lines)
JINJA_RE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
#: a complete YAQL expression (group 1: its code)
YAQL_RE = re.compile(r"<%(.*?)%>", re.S)


def languages(text: str) -> tuple[bool, bool]:
    """``(has Jinja, has YAQL)`` for ``text``."""
    jinja = ("{{" in text or "{%" in text) and JINJA_RE.search(text) is not None
    yaql = "<%" in text and YAQL_RE.search(text) is not None
    return jinja, yaql


def has_expressions(text: object) -> bool:
    """True when ``text`` is a string holding at least one complete expression of either language."""
    if not isinstance(text, str):
        return False
    if "{{" not in text and "{%" not in text and "<%" not in text:
        return False
    jinja, yaql = languages(text)
    return jinja or yaql
