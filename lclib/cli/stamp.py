"""``python -m lclib stamp PATH...``: store the missing SHA-256 of checkpoints you trust (lclib.checkpoint.stamp)."""

from __future__ import annotations

import argparse

from . import add_debug


def register(commands: argparse._SubParsersAction) -> None:
    """Add the stamp command to the subparsers of ``python -m lclib``."""
    parser = commands.add_parser("stamp", help="store the missing SHA-256 of a trusted checkpoint",
                                 description="Store the SHA-256 of model.safetensors in config.json where it is "
                                 "missing, for checkpoints you trust (lclib.checkpoint.load refuses those without one).")
    parser.add_argument("paths", nargs="+", help="checkpoint folders")
    add_debug(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Stamp each folder in turn, printing its digest; the first failure stops with one error line."""
    from ..checkpoint import stamp

    for path in args.paths:
        print(f"{path}: weights_sha256 {stamp(path)}")
    return 0
