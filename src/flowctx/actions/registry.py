"""Action registry: names (``pack.name``) -> Python callables.

Sources, in lookup order: actions registered on the registry (``@flowctx.action("pack.name")``
registers on the default registry), installed packages' ``flowctx.actions`` entry points, and
``module:function`` references written directly in a workflow.
"""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from flowctx.errors import ActionError


@dataclass(frozen=True)
class ActionSpec:
    """A registered action: its name, the callable and its signature."""

    name: str
    func: Callable[..., Any]
    description: str = ""

    @property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.func)

    def wants_context(self) -> bool:
        return "action_context" in self.signature.parameters

    def check_inputs(self, inputs: Mapping[str, Any]) -> list[str]:
        """Problems with calling the action with these input names (missing / unexpected)."""
        problems: list[str] = []
        params = self.signature.parameters
        var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
        for name, p in params.items():
            if name == "action_context" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            if p.default is p.empty and name not in inputs:
                problems.append(f"missing required input {name!r} of action {self.name!r}")
        if not var_kw:
            for name in inputs:
                if name not in params or name == "action_context":
                    problems.append(f"unexpected input {name!r} for action {self.name!r}")
        return problems


class ActionRegistry:
    """Maps action names to :class:`ActionSpec`; ``resolve`` raises :class:`ActionError`."""

    def __init__(self, parent: ActionRegistry | None = None) -> None:
        self._actions: dict[str, ActionSpec] = {}
        self._parent = parent

    def register(self, name: str, func: Callable[..., Any], description: str | None = None) -> ActionSpec:
        spec = ActionSpec(name, func, description if description is not None else (inspect.getdoc(func) or ""))
        self._actions[name] = spec
        return spec

    def action(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: ``@registry.action("pack.name")``."""

        def deco(func: Callable[..., Any]) -> Callable[..., Any]:
            self.register(name, func)
            return func

        return deco

    def child(self, extra: Mapping[str, Callable[..., Any]] | None = None) -> ActionRegistry:
        """A registry that adds ``extra`` on top of this one (used for ``run(actions=...)``)."""
        reg = ActionRegistry(parent=self)
        for name, func in (extra or {}).items():
            reg.register(name, func)
        return reg

    def get(self, name: str) -> ActionSpec | None:
        spec = self._actions.get(name)
        if spec is None and self._parent is not None:
            spec = self._parent.get(name)
        return spec

    def resolve(self, name: str) -> ActionSpec:
        """The action called ``name``; ``module:function`` references are imported on demand."""
        spec = self.get(name)
        if spec is not None:
            return spec
        if ":" in name:
            module, _, attr = name.partition(":")
            try:
                func = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise ActionError(f"cannot import action {name!r}: {exc}") from None
            if not callable(func):
                raise ActionError(f"action {name!r} is not callable")
            return self.register(name, func)
        _load_entry_points(self)
        spec = self.get(name)
        if spec is None:
            raise ActionError(f"unknown action {name!r} (see `flowctx actions` for what is available)")
        return spec

    def __iter__(self) -> Iterator[ActionSpec]:
        seen: dict[str, ActionSpec] = {}
        if self._parent is not None:
            for spec in self._parent:
                seen[spec.name] = spec
        seen.update(self._actions)
        return iter(sorted(seen.values(), key=lambda s: s.name))


_entry_points_loaded = False


def _load_entry_points(registry: ActionRegistry) -> None:
    """Register the callables of installed packages' ``flowctx.actions`` entry points (once)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    target = registry
    while target._parent is not None:
        target = target._parent
    for ep in entry_points(group="flowctx.actions"):
        try:
            target.register(ep.name, ep.load())
        except Exception as exc:  # a broken plug-in must not break the others
            import warnings

            warnings.warn(f"flowctx: cannot load action entry point {ep.name!r}: {exc}", stacklevel=2)


DEFAULT_REGISTRY = ActionRegistry()


def action(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a function as action ``name`` on the default registry."""
    return DEFAULT_REGISTRY.action(name)
