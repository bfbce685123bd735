"""``flowctx._patterns.lazy_compile``: a pattern compiled at its first use, then as fast as one."""
from __future__ import annotations

import re
import threading

import pytest

from flowctx._patterns import lazy_compile


def test_a_lazy_pattern_compiles_at_first_use_and_matches_as_re_does() -> None:
    lazy = lazy_compile(r"(?P<word>\w+)-(\d+)", re.I)
    assert "compiled" not in vars(lazy)  # nothing compiled at definition
    real = re.compile(r"(?P<word>\w+)-(\d+)", re.I)
    text = "Ab-1 cd-22 x"
    assert lazy.match(text).groups() == real.match(text).groups()  # type: ignore[union-attr]
    assert vars(lazy)["compiled"] is not None and vars(lazy)["match"].__self__ is vars(lazy)["compiled"]
    assert lazy.findall(text) == real.findall(text)
    assert [m.span() for m in lazy.finditer(text)] == [m.span() for m in real.finditer(text)]
    assert lazy.sub("_", text) == real.sub("_", text) and lazy.split(text) == real.split(text)
    assert lazy.fullmatch("q-9") and lazy.search("  q-9") and lazy.subn("", text) == real.subn("", text)
    assert (lazy.pattern, lazy.flags, lazy.groups, dict(lazy.groupindex)) == (
        real.pattern, real.flags, real.groups, dict(real.groupindex))


def test_a_bad_pattern_fails_at_first_use_and_dunders_are_not_forwarded() -> None:
    bad = lazy_compile(r"(unclosed")
    with pytest.raises(re.error):
        bad.match("x")
    with pytest.raises(AttributeError):
        bad.__wrapped__  # noqa: B018 - copy / pickle / inspect probe dunders: not a compile
    assert "lazy_compile('(unclosed', 0)" == repr(bad)


def test_first_use_from_many_threads_gives_the_same_answers() -> None:
    lazy = lazy_compile(r"\d+")
    out: list[list[str]] = []
    threads = [threading.Thread(target=lambda: out.append(lazy.findall("a1b22c333"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [["1", "22", "333"]] * 8
