"""Execute notebooks headless, in place, and print one summary line per notebook.

Used by `make run` (full profile: outputs and figures/ regenerated) and handy for one notebook:
    python tools/run_notebooks.py notebooks/01_rope_from_scratch.ipynb
Pass --fast to run the reduced profile without writing the notebook back.
Each notebook that runs cleanly has its wall time, and the cells that took over a minute, recorded
in notebooks/run_times.json under its profile ("full" or "reduced"): the notebooks' "Time needed"
sections and the README's teacher table state these times (tools/notebook_times.py writes them).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOISY_NOTEBOOK_KEYS = ("widgets",)  # widget state differs every run and bloats the file
TIMES = Path(__file__).resolve().parents[1] / "notebooks" / "run_times.json"
LONG_CELL_S = 60.0  # cells slower than this are recorded by index, so the notebook can say so beside them


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


def _cell_seconds(cell) -> float:
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not start or not end:
        return 0.0
    parse = lambda t: datetime.datetime.fromisoformat(t.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def run_one(path: Path, fast: bool, timeout: int) -> tuple[str, float, dict[int, float]]:
    """Execute one notebook; returns its status, wall time and the cells over LONG_CELL_S (index: seconds)."""
    nb = nbformat.read(path, as_version=4)
    os.environ["LCLIB_FAST"] = "1" if fast else "0"
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=True,
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
    long_cells = {i: round(_cell_seconds(c), 1) for i, c in enumerate(nb.cells) if _cell_seconds(c) > LONG_CELL_S}
    for cell in nb.cells:  # timestamps differ every run: measured here, never written into the notebook
        cell.get("metadata", {}).pop("execution", None)
    if not fast and status == "ok":
        for key in NOISY_NOTEBOOK_KEYS:
            nb.metadata.pop(key, None)
        nbformat.write(nb, path)
    return status, elapsed, long_cells


def record_time(path: Path, fast: bool, elapsed: float, long_cells: dict[int, float]) -> None:
    """Keep this run's wall time in notebooks/run_times.json, under the notebook and its profile."""
    times = json.loads(TIMES.read_text()) if TIMES.exists() else {}
    try:
        key = path.resolve().relative_to(TIMES.parent).as_posix()
    except ValueError:  # a notebook outside notebooks/ (a copy): nothing to record
        return
    times.setdefault(key, {})["reduced" if fast else "full"] = {
        "seconds": round(elapsed, 1), "cpu_cores": os.cpu_count(),
        "long_cells": {str(i): s for i, s in sorted(long_cells.items())}}
    TIMES.write_text(json.dumps(dict(sorted(times.items())), indent=1) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="notebooks or folders (folders include solutions/)")
    parser.add_argument("--fast", action="store_true", help="reduced profile; write nothing back")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args()
    failures = 0
    total = time.perf_counter()
    for path in find_notebooks(args.paths):
        status, elapsed, long_cells = run_one(path, args.fast, args.timeout)
        failures += status != "ok"
        if status == "ok":
            record_time(path, args.fast, elapsed, long_cells)
        print(f"{status:<8} {elapsed:7.1f} s  {path}", flush=True)
    print(f"{'all ok' if not failures else f'{failures} failed'} in {time.perf_counter() - total:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
