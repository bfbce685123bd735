"""Action registry: names (``pack.name``) -> Python callables.

Sources, in lookup order:

1. actions registered on the registry (``@flowctx.action("pack.name")`` registers on the default
   registry; ``registry.child({...})`` layers extra actions on top of a parent);
2. ``module:function`` (or ``module:Class.method``) references written directly in a workflow,
   imported on demand (a name with a colon is always such a reference);
3. installed packages' ``flowctx.actions`` entry points (``name = "module:function"`` in the
   package metadata), loaded the first time a name is not found, never overriding an action
   registered in code.

:meth:`ActionRegistry.resolve` raises :class:`flowctx.ActionError` with one clear message for an
unknown or broken action; :meth:`ActionSpec.check_inputs` reports missing / unexpected inputs
against the callable's signature before anything runs.
"""
from __future__ import annotations

import importlib
import inspect
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from functools import cached_property
from typing import Any

from flowctx._record import record
from flowctx.actions.base import frozen_inputs as mark_frozen_inputs
from flowctx.errors import ActionError

ENTRY_POINT_GROUP = "flowctx.actions"
CONTEXT_PARAM = "action_context"


@record(frozen=True)
class ParamInfo:
    """One parameter of an action, as ``flowctx actions`` shows it."""

    name: str
    required: bool
    default: Any = None
    kind: str = "keyword"  # "keyword" | "var_keyword" | "positional_only" | "var_positional"

    def __str__(self) -> str:
        if self.kind == "var_keyword":
            return f"**{self.name}"
        if self.kind == "var_positional":
            return f"*{self.name}"
        if self.required:
            return self.name
        return f"{self.name}={self.default!r}"


@record(frozen=True)
class ActionSpec:
    """A registered action: its name, the callable and its signature."""

    name: str
    func: Callable[..., Any]
    description: str = ""
    source: str = "code"  # "code" | "entry point (<dist>)" | "reference"

    @cached_property
    def signature(self) -> inspect.Signature | None:
        """The callable's signature, or ``None`` when Python cannot tell (some builtins)."""
        try:
            return inspect.signature(self.func)
        except (TypeError, ValueError):
            return None

    @property
    def summary(self) -> str:
        """The first line of the docstring (or of ``description``)."""
        text = (self.description or "").strip()
        return text.splitlines()[0].strip() if text else ""

    def wants_context(self) -> bool:
        """Whether the callable declares a parameter named ``action_context``."""
        sig = self.signature
        return sig is not None and CONTEXT_PARAM in sig.parameters

    def parameters(self) -> list[ParamInfo]:
        """The inputs the action takes (``action_context`` is not an input)."""
        sig = self.signature
        if sig is None:
            return []
        out: list[ParamInfo] = []
        for name, p in sig.parameters.items():
            if name == CONTEXT_PARAM:
                continue
            kinds: dict[inspect._ParameterKind, str] = {
                p.VAR_KEYWORD: "var_keyword",
                p.VAR_POSITIONAL: "var_positional",
                p.POSITIONAL_ONLY: "positional_only",
            }
            kind = kinds.get(p.kind, "keyword")
            required = p.default is p.empty and kind in ("keyword", "positional_only")
            out.append(ParamInfo(name, required, None if p.default is p.empty else p.default, kind))
        return out

    def check_inputs(self, inputs: Mapping[str, Any], task: str | None = None) -> list[str]:
        """Problems with calling the action with these inputs: one message per missing required
        or unexpected input, naming the task (when given), the action and the parameter.

        An empty list means the call is well-formed.  Only the *names* are checked: values are
        the action's business.
        """
        sig = self.signature
        if sig is None:
            return []
        where = f"task {task!r}: " if task else ""
        if not isinstance(inputs, Mapping):
            return [f"{where}the input of action {self.name!r} must be a mapping of parameter names to values, got {type(inputs).__name__}"]
        problems: list[str] = []
        params = sig.parameters
        var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
        for name, p in params.items():
            if name == CONTEXT_PARAM or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            if p.kind is p.POSITIONAL_ONLY:
                if p.default is p.empty:
                    problems.append(
                        f"{where}action {self.name!r} has a positional-only parameter {name!r} that a "
                        "workflow cannot pass (inputs are passed by name)"
                    )
                continue
            if p.default is p.empty and name not in inputs:
                problems.append(f"{where}missing required input {name!r} of action {self.name!r}")
        allowed = [n for n, p in params.items() if n != CONTEXT_PARAM and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        for name in inputs:
            if not isinstance(name, str):
                problems.append(f"{where}input names of action {self.name!r} must be strings, got {name!r}")
            elif name == CONTEXT_PARAM:
                problems.append(f"{where}input {name!r} of action {self.name!r} is reserved for the engine")
            elif not var_kw and (name not in params or params[name].kind not in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)):
                known = ", ".join(allowed) if allowed else "none"
                problems.append(
                    f"{where}unexpected input {name!r} for action {self.name!r} (its parameters: {known})"
                )
        return problems


def _docstring(func: Callable[..., Any]) -> str:
    return inspect.getdoc(func) or ""


class ActionRegistry:
    """Maps action names to :class:`ActionSpec`; ``resolve`` raises :class:`ActionError`."""

    def __init__(self, parent: ActionRegistry | None = None) -> None:
        self._actions: dict[str, ActionSpec] = {}
        self._parent = parent
        self._entry_points_loaded = False
        self._lock = threading.RLock()

    # -- registration -----------------------------------------------------------------------
    def register(
        self,
        name: str,
        func: Callable[..., Any],
        description: str | None = None,
        *,
        source: str = "code",
    ) -> ActionSpec:
        """Register ``func`` as action ``name`` (replacing an earlier one of the same name)."""
        if not isinstance(name, str) or not name.strip():
            raise ActionError(f"an action name must be a non-empty string, got {name!r}")
        if not callable(func):
            raise ActionError(f"action {name!r} must be callable, got {type(func).__name__}")
        spec = ActionSpec(name, func, description if description is not None else _docstring(func), source)
        with self._lock:
            self._actions[name] = spec
        return spec

    def action(self, name: str, *, frozen_inputs: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: ``@registry.action("pack.name")``; returns the function unchanged.

        ``frozen_inputs=True``: the action gets the context's frozen, read-only values without a
        copy (for large read-only inputs); by default it gets plain, mutable copies per call.
        """
        if callable(name):  # used bare as @registry.action: a mistake worth a clear message
            raise ActionError("use @action('pack.name') with the action's name, not bare @action")
        if not isinstance(frozen_inputs, bool):
            raise ActionError(f"frozen_inputs must be True or False, got {frozen_inputs!r}")

        def deco(func: Callable[..., Any]) -> Callable[..., Any]:
            if frozen_inputs:
                mark_frozen_inputs(func)
            self.register(name, func)
            return func

        return deco

    def child(self, extra: Mapping[str, Callable[..., Any]] | None = None) -> ActionRegistry:
        """A registry that adds ``extra`` on top of this one (used for ``run(actions=...)``)."""
        reg = ActionRegistry(parent=self)
        for name, func in (extra or {}).items():
            reg.register(name, func)
        return reg

    # -- lookup -----------------------------------------------------------------------------
    def get(self, name: str) -> ActionSpec | None:
        """The action registered as ``name`` here or in a parent (no imports, no entry points)."""
        spec = self._actions.get(name)
        if spec is None and self._parent is not None:
            spec = self._parent.get(name)
        return spec

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def resolve(self, name: str) -> ActionSpec:
        """The action called ``name``; raises :class:`ActionError` if there is none.

        Registered actions first, then ``module:function`` references (imported on demand and
        cached), then installed ``flowctx.actions`` entry points.
        """
        if not isinstance(name, str) or not name.strip():
            raise ActionError(f"an action name must be a non-empty string, got {name!r}")
        spec = self.get(name)
        if spec is not None:
            return spec
        if ":" in name:
            return self.register(name, import_reference(name), source="reference")
        self.load_entry_points()
        spec = self.get(name)
        if spec is None:
            hint = _did_you_mean(name, [s.name for s in self])
            raise ActionError(
                f"unknown action {name!r}{hint} (see `flowctx actions` for what is available; "
                "a Python function can be named as 'module:function')"
            )
        return spec

    def load_entry_points(self) -> list[str]:
        """Register the callables of installed packages' ``flowctx.actions`` entry points.

        Done once per registry tree (on its root); an entry point never replaces an action
        registered in code.  A plug-in that fails to load is reported as a warning, not an error,
        so one broken package cannot break the others.  Returns the names registered now.
        """
        root = self
        while root._parent is not None:
            root = root._parent
        with root._lock:
            if root._entry_points_loaded:
                return []
            root._entry_points_loaded = True
            from importlib.metadata import entry_points

            added: list[str] = []
            try:
                eps = list(entry_points(group=ENTRY_POINT_GROUP))
            except Exception as exc:  # broken metadata somewhere on sys.path
                warnings.warn(f"flowctx: cannot read {ENTRY_POINT_GROUP!r} entry points: {exc}", stacklevel=2)
                return added
            for ep in eps:
                if self.get(ep.name) is not None:
                    continue
                try:
                    func = ep.load()
                except Exception as exc:
                    warnings.warn(
                        f"flowctx: cannot load action {ep.name!r} from entry point {ep.value!r}: "
                        f"{type(exc).__name__}: {exc}",
                        stacklevel=2,
                    )
                    continue
                dist = getattr(getattr(ep, "dist", None), "name", None)
                try:
                    root.register(ep.name, func, source=f"entry point ({dist})" if dist else "entry point")
                except ActionError as exc:
                    warnings.warn(f"flowctx: entry point {ep.name!r}: {exc}", stacklevel=2)
                    continue
                added.append(ep.name)
            return added

    def reset_entry_points(self) -> None:
        """Forget that entry points were loaded (the next miss reads them again); for tests."""
        root = self
        while root._parent is not None:
            root = root._parent
        with root._lock:
            root._entry_points_loaded = False

    def __iter__(self) -> Iterator[ActionSpec]:
        """Every registered action (parents included), sorted by name."""
        seen: dict[str, ActionSpec] = {}
        if self._parent is not None:
            for spec in self._parent:
                seen[spec.name] = spec
        seen.update(self._actions)
        return iter(sorted(seen.values(), key=lambda s: s.name))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def import_reference(ref: str) -> Callable[..., Any]:
    """Import ``module:function`` (or ``module:Class.attr``); :class:`ActionError` if impossible."""
    module_name, _, attr = ref.partition(":")
    module_name, attr = module_name.strip(), attr.strip()
    if not module_name or not attr:
        raise ActionError(f"action reference {ref!r} must look like 'module:function'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ActionError(f"cannot import action {ref!r}: {exc}") from None
    except Exception as exc:  # the module itself is broken: say so, in one line
        raise ActionError(f"cannot import action {ref!r}: importing module {module_name!r} raised {type(exc).__name__}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ActionError(f"cannot import action {ref!r}: module {module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise ActionError(f"action {ref!r} is not callable (it is a {type(obj).__name__})")
    fn: Callable[..., Any] = obj
    return fn


def _did_you_mean(name: str, names: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


DEFAULT_REGISTRY = ActionRegistry()


def action(name: str, *, frozen_inputs: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a function as action ``name`` on the default registry::

        @flowctx.action("mypack.greet")
        def greet(name: str, greeting: str = "hello") -> str:
            '''Greet someone.'''
            return f"{greeting} {name}"

    The action receives plain, mutable copies of its inputs (per call); with
    ``frozen_inputs=True`` it receives the context's frozen values without a copy.
    """
    return DEFAULT_REGISTRY.action(name, frozen_inputs=frozen_inputs)


def import_action_module(name: str) -> Any:
    """Import a module that registers actions (``--actions`` on the command line).

    ``name`` is a dotted module name (``mypack.actions``) or the path of a ``.py`` file; a file's
    directory is put on ``sys.path`` first, so its functions stay importable by name (the process
    executor's workers need that).  Any failure is an :class:`ActionError` with one clear line.
    """
    import os
    import sys

    if not isinstance(name, str) or not name.strip():
        raise ActionError(f"--actions needs a module name or a .py file, got {name!r}")
    target = name.strip()
    if target.endswith(".py") or os.sep in target:
        path = os.path.abspath(target)
        if not os.path.isfile(path):
            raise ActionError(f"cannot load actions from {target!r}: no such file")
        directory, filename = os.path.split(path)
        module_name = filename[:-3] if filename.endswith(".py") else filename
        if not module_name.isidentifier():
            raise ActionError(f"cannot load actions from {target!r}: {module_name!r} is not a valid module name")
        if directory not in sys.path:
            sys.path.insert(0, directory)
        existing = sys.modules.get(module_name)
        if existing is not None and os.path.abspath(getattr(existing, "__file__", "") or "") != path:
            raise ActionError(
                f"cannot load actions from {target!r}: a different module named {module_name!r} is already imported"
            )
        target = module_name
    try:
        return importlib.import_module(target)
    except ImportError as exc:
        raise ActionError(f"cannot import action module {name!r}: {exc}") from None
    except Exception as exc:
        raise ActionError(f"cannot import action module {name!r}: it raised {type(exc).__name__}: {exc}") from None
