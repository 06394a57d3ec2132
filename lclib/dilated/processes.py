"""Run a function on P local processes joined in one ``torch.distributed`` group: :func:`launch`.

For LongNet's distributed attention (``lclib.dilated.distributed``) on one machine, in tests and the
benchmark. Each rank writes its result or its exception to a file; the parent waits, and when ranks
fail it raises the one that failed first with its own type, message and traceback, not the peers'
consequent connection errors.
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from .. import validate

MAX_PROCESSES = 64  # launch starts local processes: more is a typo, not an experiment
GRACE_S = 2.0  # once a rank has failed, how long its peers get to finish or fail before they are stopped


class _RemoteTraceback(Exception):
    """A rank's traceback, chained as the cause of the exception launch raises (as concurrent.futures does)."""

    def __str__(self) -> str:
        return f"\n\n{self.args[0]}"


def _failure(exc: BaseException) -> dict[str, Any]:
    """What the parent needs of a rank's exception; call inside the except block (it reads the traceback)."""
    try:
        pickled = pickle.dumps(exc)
        pickle.loads(pickled)
    except Exception:  # noqa: BLE001 - an exception that does not round-trip goes by type name and message
        pickled = None
    return {"status": "error", "time": time.time(), "type": type(exc).__name__, "message": str(exc),
            "traceback": traceback.format_exc(), "exception": pickled}


def _save(result_dir: str, rank: int, record: dict[str, Any]) -> None:
    path = os.path.join(result_dir, f"{rank}.pt")
    torch.save(record, path + ".tmp")
    os.replace(path + ".tmp", path)  # the parent never reads half a file


def _worker(rank: int, world_size: int, init_file: str, result_dir: str, backend: str, timeout: float,
            fn: Callable[..., Any], args: tuple) -> None:
    torch.set_num_threads(1)
    try:
        dist.init_process_group(backend, init_method=f"file://{init_file}", rank=rank, world_size=world_size,
                                timeout=timedelta(seconds=timeout))
        record = {"status": "ok", "value": fn(*args)}
    except BaseException as e:  # noqa: BLE001 - carried to the parent, stamped with its time
        record = _failure(e)
    try:  # before destroy_process_group: a failure is on disk before its peers see the connections close
        _save(result_dir, rank, record)
    except Exception as e:  # noqa: BLE001
        _save(result_dir, rank, _failure(TypeError(f"fn's result must be picklable to return to launch: {e}")))
    if dist.is_initialized():
        dist.destroy_process_group()


def _check_launch(fn: Any, world_size: Any, backend: Any, timeout: Any, start_method: Any) -> None:
    """Everything launch can check before a process starts."""
    if not callable(fn):
        raise TypeError(f"fn must be a callable (a module-level function), got {type(fn).__name__}")
    validate.integer("world_size", world_size, low=1, high=MAX_PROCESSES)  # local processes
    validate.number("timeout", timeout, low=0, low_open=True)  # seconds
    backends = [name for name, ok in (("gloo", dist.is_gloo_available()), ("nccl", dist.is_nccl_available())) if ok]
    validate.one_of("backend (those available here)", backend, backends)
    validate.one_of("start_method", start_method, mp.get_all_start_methods())
    if start_method != "fork":  # a fresh interpreter imports fn by module and name
        if getattr(fn, "__module__", None) == "__main__" and not hasattr(sys.modules["__main__"], "__file__"):
            raise TypeError(f"fn must be importable by a fresh process ({start_method}), but "
                            f"{getattr(fn, '__qualname__', fn)!r} lives in an interactive session: move it into "
                            f"a module, or pass start_method='fork'")
        try:
            pickle.dumps(fn)
        except Exception as e:  # noqa: BLE001
            raise TypeError(f"fn must be picklable by name for start_method={start_method!r} (a module-level "
                            f"function, not a lambda or a nested one), got {fn!r}: {e}") from None


def _wait(procs: list[Any], result_dir: str, timeout: float) -> tuple[dict[int, dict[str, Any]], dict[int, int]]:
    """Poll until every rank is done, GRACE_S after the first failure, or the timeout.

    Returns the records read and the exit codes of ranks that ended without one (crashed).
    """
    deadline, failed_at, records = time.monotonic() + timeout, None, {}
    while True:
        running = [rank for rank, p in enumerate(procs) if p.is_alive()]  # before the files: no race
        for rank in range(len(procs)):
            path = os.path.join(result_dir, f"{rank}.pt")
            if rank not in records and os.path.exists(path):
                records[rank] = torch.load(path, weights_only=False)
        crashed = {rank: procs[rank].exitcode for rank in range(len(procs))
                   if rank not in running and rank not in records}
        now = time.monotonic()
        if failed_at is None and (crashed or any(r["status"] == "error" for r in records.values())):
            failed_at = now
        if not running or now >= deadline or (failed_at is not None and now - failed_at >= GRACE_S):
            return records, crashed
        time.sleep(0.01)


def _first_failure(records: dict[int, dict[str, Any]], crashed: dict[int, int],
                   world_size: int) -> BaseException | None:
    """The root cause: a rank that died without a word, else the earliest exception (its peers' errors,
    such as a closed connection, come after it). Its own type and message, prefixed with its rank."""
    if crashed:
        rank = min(crashed)
        return RuntimeError(f"rank {rank} of {world_size} failed first: it exited with code {crashed[rank]} "
                            f"without a result (killed, out of memory, or fn could not be imported there)")
    errors = sorted((r["time"], rank) for rank, r in records.items() if r["status"] == "error")
    if not errors:
        return None
    rank = errors[0][1]
    record, head = records[rank], f"rank {rank} of {world_size} failed first"
    exc = None
    if record["exception"] is not None:
        try:
            exc = pickle.loads(record["exception"])
        except Exception:  # noqa: BLE001
            exc = None
    if isinstance(exc, Exception) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        exc.args = (f"{head}: {exc.args[0]}",)
        if head not in str(exc):
            exc = None
    else:
        exc = None
    exc = exc or RuntimeError(f"{head} with {record['type']}: {record['message']}")
    exc.__cause__ = _RemoteTraceback(record["traceback"])
    return exc


def launch(fn: Callable[..., Any], world_size: int, *args: Any, backend: str = "gloo", timeout: float = 300.0,
           start_method: str = "spawn") -> list:
    """Run fn(*args) on ``world_size`` fresh processes joined in one process group; return each rank's result.

    fn must be importable by name (a module-level function) and its result picklable; inside it,
    ``torch.distributed.get_rank()`` says which process it is. One thread per process; at most
    MAX_PROCESSES processes, for at most ``timeout`` seconds (then TimeoutError). Arguments are
    checked before any process starts. When ranks fail, the one that failed first is raised here
    with its own exception type and message, prefixed "rank r of P failed first", and its traceback
    as the cause: not the peers' consequent errors (a closed connection). The others are stopped
    GRACE_S seconds after the first failure.
    """
    _check_launch(fn, world_size, backend, timeout, start_method)
    with tempfile.TemporaryDirectory() as tmp:
        ctx, procs = mp.get_context(start_method), []
        try:
            for rank in range(world_size):
                procs.append(ctx.Process(target=_worker, args=(rank, world_size, os.path.join(tmp, "init"), tmp,
                                                               backend, timeout, fn, args)))
                try:
                    procs[-1].start()  # spawn and forkserver pickle fn and args here
                except (pickle.PicklingError, AttributeError, TypeError) as e:
                    procs.pop()
                    raise TypeError(f"args must be picklable for start_method={start_method!r}: {e}") from None
            records, crashed = _wait(procs, tmp, timeout)
        finally:
            for p in procs:
                if p.is_alive():
                    p.terminate()
            for p in procs:
                p.join()
    failure = _first_failure(records, crashed, world_size)
    if failure is not None:
        raise failure
    if len(records) < world_size:
        late = [rank for rank in range(world_size) if rank not in records]
        raise TimeoutError(f"launch: ranks {late} of {world_size} were still running after timeout={timeout} s "
                           f"and were stopped")
    return [records[rank]["value"] for rank in range(world_size)]
