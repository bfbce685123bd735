"""The ``flowctx`` command.

Each subcommand lives in its own module of this package and exposes
``register(subparsers) -> None``, which adds its parser and sets ``func`` (taking the parsed
namespace, returning the exit code).  User errors (every :class:`flowctx.FlowctxError`) are
printed as one line ``flowctx: error: ...`` with exit code 2; ``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

import flowctx
from flowctx.errors import FlowctxError

# Subcommand modules, in the order `flowctx --help` lists them.
COMMANDS = ["run", "state", "kv", "bench", "rehearse", "validate", "graph", "actions"]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or of ``only`` (what ``main`` builds when the command
    line names one: `flowctx run` does not import the other subcommands' modules)."""
    parser = argparse.ArgumentParser(
        prog="flowctx",
        description=(
            "Run, validate and inspect YAML workflows (Orquesta native v1 or the list form). "
            "The workflow context lives in a compiled store with O(1), isolated clones."
        ),
        epilog="Run `flowctx COMMAND --help` for the options of one command.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"flowctx {flowctx.__version__} (context store backend: {flowctx.BACKEND})",
    )
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS if only is None else [only]:
        importlib.import_module(f"flowctx.cli.{name}").register(sub)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names (its first word after the top-level flags), if it is one."""
    for arg in argv:
        if arg in ("--debug",):
            continue
        return arg if arg in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(_command(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    for stream in (sys.stdout, sys.stderr):  # a lone surrogate in a result is shown escaped, not a traceback
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # pragma: no cover - a stream that cannot change
                pass
    try:
        return int(args.func(args) or 0)
    except FlowctxError as exc:
        if args.debug:
            raise
        print(f"flowctx: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("flowctx: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
