"""``python -m lclib <command> ...``: the collection's command lines (lclib/cli/)."""

import sys

from .cli import main

if __name__ == "__main__":  # importing this module (pkgutil.walk_packages does) runs nothing
    sys.exit(main())
