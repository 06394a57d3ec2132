"""``python -m lclib env``: is this machine ready for the notebooks? One line per requirement (lclib.env).

Runs where torch is missing (it says so on the torch line): nothing here imports torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import add_debug


def register(commands: argparse._SubParsersAction) -> None:
    """Add the env command to the subparsers of ``python -m lclib``."""
    from .. import env

    parser = commands.add_parser("env", help="is this machine ready for the notebooks?",
                                 description=env.__doc__.splitlines()[0])
    here = Path(env.__file__).resolve().parents[1]  # the repository, for an editable install; else the current folder
    parser.add_argument("--root", type=_folder, default=here if (here / "weights").is_dir() else Path.cwd(),
                        help="the repository root (default: the one lclib is installed from, else this folder)")
    add_debug(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print every check's line; exit status 1 when any fails."""
    from ..env import run_checks

    checks = run_checks(args.root)
    for check in checks:
        print(check.line())
    return 0 if all(c.ok for c in checks) else 1


def _folder(text: str) -> Path:
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"expected the repository's folder, got {text!r}")
    return Path(text)
