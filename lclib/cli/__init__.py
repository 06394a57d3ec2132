"""The collection's command lines: ``python -m lclib <command> ...``, one file per command in this package.

Commands: ``train`` (lclib/cli/train.py), ``stamp`` (stamp.py), ``position-sweep`` (position_sweep.py),
``ruler`` (ruler.py) and ``env`` (env.py). Each file defines ``register(commands)``, which adds its
subparser and sets ``func=run``, and ``run(args) -> int``; :func:`main` dispatches to it. A command file
imports the library only inside ``run``, so that ``python -m lclib env`` works where torch does not.

What every command line of the collection does with bad input: one line, never a traceback.

A bad argument is argparse's own ``error: ...`` line and exit status 2 (the argument types below turn a
malformed number into such a line); a failure while running (a missing folder, a checkpoint of the
wrong kind, a value the library refuses) is one ``error: ...`` line and exit status 1. ``--debug``
shows the traceback instead, for whoever has to fix it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable


def _whole_number(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {low}, got {value}")
        return value

    return parse


positive_int = _whole_number(1)  # an argparse type: a whole number >= 1 (steps, samples, pairs)
non_negative_int = _whole_number(0)  # an argparse type: a whole number >= 0 (seeds, threads where 0 means "as is")


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0 (a learning rate, a scale)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def add_debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the traceback of a failure instead of one line")


def run(body: Callable[[], int], debug: bool) -> int:
    """body(), or one ``error: ...`` line on stderr and exit status 1 if it fails on bad input or files."""
    try:
        return body()
    except (OSError, ValueError, TypeError, KeyError) as e:
        if debug:
            raise
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {message}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    """``python -m lclib <command> [options]``: parse argv (default sys.argv[1:]) and run the command."""
    from . import env, position_sweep, ruler, stamp, train

    parser = argparse.ArgumentParser(prog="python -m lclib", description="The command lines of lclib.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    for command in (train, stamp, position_sweep, ruler, env):
        command.register(commands)
    args = parser.parse_args(argv)
    return run(lambda: args.func(args), args.debug)
