"""``flowctx kv get | set | list | delete``: the key-value store workflows read with
``st2kv('system.name')`` / ``kv('name')``."""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from flowctx.errors import FlowctxError
from flowctx.kv import KVStore, default_kv_path, open_kv

EXAMPLES = """\
examples:
  flowctx kv set region eu-west-1
  flowctx kv set hosts '[web1, web2]'               # VALUE is read as YAML: a list
  flowctx kv set api_token s3cr3t --secret          # masked wherever flowctx displays it
  flowctx kv list
  flowctx kv get hosts --json
  flowctx kv delete region
  flowctx kv set region eu-west-1 --kv runs.db      # keep the keys in a state database

A workflow reads them with {{ st2kv('system.region') }} (StackStorm's spelling; the `system.`
scope is the only one) or {{ kv('region') }}; an unknown key fails the task, naming the key.
The store is a JSON file ($FLOWCTX_KV, else ~/.flowctx/kv.json) or, with --kv FILE naming a
flowctx state database (or a new FILE ending in .db / .sqlite), its table flowctx_kv.
Values are stored unencrypted (the JSON file is written with mode 0600): `--secret` masks a
value on display, it does not encrypt it.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = sub.add_parser(
        "kv",
        help="get, set, list and delete the keys workflows read with st2kv() / kv()",
        description="Manage the key-value store workflows read with st2kv('system.name') or kv('name').",
        epilog=EXAMPLES,
        formatter_class=fmt,
    )
    ops = parser.add_subparsers(dest="kv_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: _usage(parser))

    def location(p: argparse.ArgumentParser) -> None:
        p.add_argument("--kv", metavar="FILE",
                       help=f"the store: a JSON file or a flowctx state database (default: {_default_text()})")

    p = ops.add_parser("get", help="print one key's value", epilog=EXAMPLES, formatter_class=fmt)
    p.add_argument("key", metavar="KEY")
    p.add_argument("--json", action="store_true", help="print {key, value, secret, updated} as JSON")
    p.add_argument("--reveal", action="store_true", help="print a secret value instead of masking it")
    location(p)
    p.set_defaults(func=cmd_get)

    p = ops.add_parser("set", help="set a key (VALUE read as YAML)", epilog=EXAMPLES, formatter_class=fmt)
    p.add_argument("key", metavar="KEY")
    p.add_argument("value", metavar="VALUE", help="read as YAML (42, true, [a, b], {k: v}); else a string")
    p.add_argument("--string", action="store_true", help="store VALUE as a string, exactly as given")
    p.add_argument("--secret", action="store_true", help="mask the value wherever flowctx displays it")
    location(p)
    p.set_defaults(func=cmd_set)

    p = ops.add_parser("list", help="list the keys (secret values masked)", epilog=EXAMPLES, formatter_class=fmt)
    p.add_argument("prefix", nargs="?", default="", metavar="PREFIX", help="only keys starting with PREFIX")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    location(p)
    p.set_defaults(func=cmd_list)

    p = ops.add_parser("delete", help="delete a key", epilog=EXAMPLES, formatter_class=fmt)
    p.add_argument("key", metavar="KEY")
    location(p)
    p.set_defaults(func=cmd_delete)


def _default_text() -> str:
    return "$FLOWCTX_KV, else ~/.flowctx/kv.json"


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _store(args: argparse.Namespace) -> KVStore:
    return open_kv(args.kv)


def _where(store: KVStore) -> str:
    return store.path if store.path != default_kv_path() else f"{store.path} (the default store)"


def _missing(store: KVStore, key: str) -> FlowctxError:
    from flowctx.actions.registry import _did_you_mean

    hint = _did_you_mean(key, [e.key for e in store.entries()])
    return FlowctxError(f"no key {key!r} in {_where(store)}{hint}")


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def cmd_get(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        entry = store.get(args.key)
    except KeyError:
        raise _missing(store, args.key) from None
    value = entry.value if args.reveal else entry.shown()
    if args.json:
        print(json.dumps({"key": entry.key, "value": value, "secret": entry.secret, "updated": entry.updated},
                         indent=2, ensure_ascii=False))
    else:
        print(_show(value))
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    from flowctx.cli.run import parse_yaml_value

    value = args.value if args.string else parse_yaml_value(args.value, f"value of {args.key!r}")
    store = _store(args)
    entry = store.set(args.key, value, secret=args.secret)
    kind = "secret " if entry.secret else ""
    print(f"set {kind}key {entry.key!r} in {store.path}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store = _store(args)
    entries = store.entries(args.prefix)
    if args.json:
        print(json.dumps([{"key": e.key, "value": e.shown(), "secret": e.secret, "updated": e.updated}
                          for e in entries], indent=2, ensure_ascii=False))
        return 0
    if not entries:
        print(f"no keys in {store.path}" + (f" starting with {args.prefix!r}" if args.prefix else ""))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for col in ("KEY", "VALUE", "SECRET", "UPDATED"):
        table.add_column(col, overflow="fold")
    for e in entries:
        shown = _show(e.shown())
        if len(shown) > 80:
            shown = shown[:77] + "..."
        updated = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.updated)) if e.updated else "-"
        table.add_row(e.key, shown, "yes" if e.secret else "", updated)
    width = None if sys.stdout.isatty() else 120
    Console(file=sys.stdout, highlight=False, markup=False, width=width).print(table)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    store = _store(args)
    if not store.delete(args.key):
        raise _missing(store, args.key)
    print(f"deleted key {args.key!r} from {store.path}")
    return 0

