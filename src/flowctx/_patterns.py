"""Module-level regular expressions compiled when first used, not at import.

``re.compile`` runs the pure-Python ``sre`` parser and compiler: ~0.1-0.6 ms a pattern on this
project's machines, ~5 ms for the ~30 that flowctx's modules define -- most of which a run never
uses (a workflow without expressions needs none of the reference scanners).  A
:func:`lazy_compile` pattern compiles on its first attribute access and then keeps the compiled
pattern's methods in its own ``__dict__``, so a call after the first costs what a call on the
compiled pattern costs.  Two threads that use it first at the same time each compile it (the same
value; the later write wins).  It is not a ``re.Pattern``: pass ``.compiled`` where one is needed.
"""
from __future__ import annotations

import re
from typing import Any, cast

__all__ = ["lazy_compile"]

_FORWARDED = ("match", "fullmatch", "search", "finditer", "findall", "sub", "subn", "split",
              "pattern", "flags", "groups", "groupindex")


class _LazyPattern:
    def __init__(self, pattern: str, flags: int) -> None:
        self._source = (pattern, flags)

    def __getattr__(self, name: str) -> Any:  # only reached before the first compile
        if name.startswith("__"):
            raise AttributeError(name)
        compiled = re.compile(*self._source)
        for attr in _FORWARDED:
            self.__dict__[attr] = getattr(compiled, attr)
        self.__dict__["compiled"] = compiled
        return getattr(compiled, name)

    def __repr__(self) -> str:
        return f"lazy_compile({self._source[0]!r}, {self._source[1]!r})"


def lazy_compile(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """``re.compile(pattern, flags)``, done at the first use of the result."""
    return cast("re.Pattern[str]", _LazyPattern(pattern, flags))
