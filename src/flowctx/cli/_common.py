"""Helpers several subcommands share: importing ``--actions`` modules (warning when one replaces
a built-in), masking secrets in everything the CLI displays, ``--config`` / ``--kv`` files."""
from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from flowctx.errors import FlowctxError
from flowctx.kv import MASK

__all__ = ["import_actions", "Masker", "secret_parameters", "load_config", "MASK"]


# ---------------------------------------------------------------------- --actions
def import_actions(modules: Iterable[str], *, stderr: Any = None) -> list[str]:
    """Import the ``--actions`` modules; a module that replaces a built-in ``core.*`` action (or
    one an earlier module registered) gets one warning line on stderr per action.  Returns the
    names replaced.

    Replacing is allowed on purpose (mocking ``core.local`` / ``core.http`` in a test run is
    common); it is never silent."""
    from flowctx.actions import DEFAULT_REGISTRY, import_action_module

    stderr = stderr or sys.stderr
    replaced: list[str] = []
    for module in modules:
        before = {spec.name: spec.func for spec in DEFAULT_REGISTRY}
        import_action_module(module)
        for spec in DEFAULT_REGISTRY:
            old = before.get(spec.name)
            if old is not None and old is not spec.func:
                what = "the built-in action" if getattr(old, "__module__", "").startswith("flowctx.") else "action"
                print(f"flowctx: warning: --actions {module}: replaces {what} {spec.name!r}", file=stderr)
                replaced.append(spec.name)
    return replaced


# ---------------------------------------------------------------------- secrets
def secret_parameters(spec: Any) -> set[str]:
    """Names of the parameters whose schema says ``secret: true``."""
    return {p.name for p in getattr(spec, "parameters", ()) if (p.schema or {}).get("secret") is True}


class Masker:
    """Masks secret values in what the CLI displays.

    A secret parameter is replaced by ``********`` where parameters are shown; anywhere else
    (output, errors, task results, messages) a secret value is replaced wherever it appears: a
    string of 4 characters or more also inside longer strings, a shorter one or a number only
    when it is the whole value (masking every ``a`` would make output unreadable)."""

    MIN_SUBSTRING = 4

    def __init__(self, values: Iterable[Any] = (), names: Iterable[str] = ()) -> None:
        self.names = set(names)
        self._whole: list[Any] = []
        self._texts: list[str] = []
        for v in values:
            self.add(v)

    @classmethod
    def for_run(cls, spec: Any, params: Mapping[str, Any], extra: Iterable[Any] = ()) -> Masker:
        names = secret_parameters(spec)
        return cls([params[n] for n in names if n in params] + list(extra), names)

    def add(self, value: Any) -> None:
        if value is None or isinstance(value, bool):
            return
        if isinstance(value, str):
            if not value:
                return
            if len(value) >= self.MIN_SUBSTRING:
                if value not in self._texts:
                    self._texts.append(value)
                    self._texts.sort(key=len, reverse=True)  # longest first: no partial leftovers
            elif value not in self._whole:
                self._whole.append(value)
        elif isinstance(value, (int, float)):
            self._whole.append(value)
            if len(str(value)) >= self.MIN_SUBSTRING:
                self.add(str(value))
        elif isinstance(value, Mapping):
            for v in value.values():
                self.add(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                self.add(v)

    def __bool__(self) -> bool:
        return bool(self._whole or self._texts or self.names)

    def text(self, s: str) -> str:
        for secret in self._texts:
            if secret in s:
                s = s.replace(secret, MASK)
        return s

    def value(self, v: Any) -> Any:
        """A masked plain copy of ``v`` (frozen containers come back as dicts / lists)."""
        if not self:
            return v
        if isinstance(v, str):
            return MASK if v in self._whole else self.text(v)
        if isinstance(v, bool) or v is None:
            return v
        if isinstance(v, (int, float)):
            return MASK if v in self._whole else v
        if isinstance(v, Mapping):
            return {(self.text(k) if isinstance(k, str) else k): self.value(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [self.value(x) for x in v]
        return v

    def parameters(self, params: Mapping[str, Any] | None) -> Any:
        """Parameters with the secret ones shown as ``********`` (others masked by value)."""
        if not params:
            return params
        return {k: (MASK if k in self.names else self.value(v)) for k, v in params.items()}

    def result(self, result: Any) -> Any:
        """An :class:`~flowctx.engine.runner.ExecutionResult` whose displayed fields are masked."""
        if not self:
            return result
        tasks = [
            dataclasses.replace(t, result=self.value(t.result), error=self.value(t.error)) for t in result.tasks
        ]
        return dataclasses.replace(
            result, output=self.value(result.output), errors=self.value(result.errors), tasks=tasks
        )


def masker_for_stored(row: Mapping[str, Any], extra: Iterable[Any] = ()) -> Masker:
    """The masker of a stored execution: its workflow source says which parameters are secret;
    ``extra``: more secret values (the key-value store's)."""
    from flowctx.spec import load_workflow

    params = row.get("parameters") or {}
    try:
        spec = load_workflow(row.get("source") or "", validate=False)
    except Exception:  # noqa: BLE001 - an unreadable source: mask the values we were given
        return Masker(extra)
    return Masker.for_run(spec, params, extra)


def open_kv_option(path: str | None) -> Any:
    """The :class:`~flowctx.kv.KVStore` of a ``--kv`` option (the default store when None); a
    ``--kv`` file that does not exist is an error (a typo would otherwise read as "no keys")."""
    from flowctx.kv import open_kv

    if path is not None and not os.path.exists(path):
        raise FlowctxError(f"--kv {path}: no such file (create it with `flowctx kv set KEY VALUE --kv {path}`)")
    return open_kv(path)


def kv_secrets(path: str | None) -> list[Any]:
    """The secret values of a ``--kv`` store, for displays that only mask with them (an
    unreadable *default* store masks nothing rather than failing ``show``)."""
    from flowctx.kv import KVError

    try:
        return open_kv_option(path).secret_values()
    except KVError:
        if path is None:
            return []
        raise


def make_renderer(config: Mapping[str, Any] | None, keystore: Mapping[str, Any] | None) -> Any:
    """A renderer with ``config`` / key-value values, or None (the shared default) without either."""
    if config is None and keystore is None:
        return None
    from flowctx.render import Renderer

    return Renderer(config=config, keystore=keystore)


# ---------------------------------------------------------------------- --config
def load_config(path: str) -> dict[str, Any]:
    """``flowctx run --config FILE``: a YAML or JSON mapping, the workflow's ``config`` /
    ``pack.config``."""
    from flowctx.cli.run import read_mapping_file

    if not os.path.isfile(path):
        raise FlowctxError(f"--config {path!r}: no such file")
    return read_mapping_file(path, "--config")
