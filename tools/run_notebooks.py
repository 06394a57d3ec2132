"""Execute notebooks headless, in place, and print one summary line per notebook.

Used by `make run` (full profile: outputs and figures/ regenerated) and handy for one notebook:
    python tools/run_notebooks.py notebooks/01_rope_from_scratch.ipynb
Pass --fast to run the reduced profile without writing anything back.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOISY_NOTEBOOK_KEYS = ("widgets",)  # widget state differs every run and bloats the file


def find_notebooks(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(q for q in p.glob("*.ipynb"))
            found += sorted(q for q in p.glob("solutions/*.ipynb"))
        elif p.suffix == ".ipynb":
            found.append(p)
        else:
            raise SystemExit(f"not a notebook or folder: {p}")
    return found


def run_one(path: Path, fast: bool, timeout: int) -> tuple[str, float]:
    nb = nbformat.read(path, as_version=4)
    os.environ["LCLIB_FAST"] = "1" if fast else "0"
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    status = "ok"
    try:
        client.execute()
    except CellExecutionError as err:
        status = "FAILED: " + str(err).strip().splitlines()[-1][:200]
        print(f"--- {path}: the failing cell and its traceback (end) ---", file=sys.stderr)
        print("\n".join(str(err).strip().splitlines()[-25:]), file=sys.stderr)
    elapsed = time.perf_counter() - start
    if not fast and status == "ok":
        for key in NOISY_NOTEBOOK_KEYS:
            nb.metadata.pop(key, None)
        nbformat.write(nb, path)
    return status, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="notebooks or folders (folders include solutions/)")
    parser.add_argument("--fast", action="store_true", help="reduced profile; write nothing back")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args()
    failures = 0
    total = time.perf_counter()
    for path in find_notebooks(args.paths):
        status, elapsed = run_one(path, args.fast, args.timeout)
        failures += status != "ok"
        print(f"{status:<8} {elapsed:7.1f} s  {path}", flush=True)
    print(f"{'all ok' if not failures else f'{failures} failed'} in {time.perf_counter() - total:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
