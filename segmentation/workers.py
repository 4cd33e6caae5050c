"""Worker processes for batches: isolated, bounded in memory, behind the interactive app.

Each batch image is processed in a worker process started by ``forkserver``
(never forked from the multi-threaded app).  Each worker

- runs at a lower CPU priority, so that the app's interactive reruns go ahead
  of batch work on a shared server;
- runs under an address-space limit, so that an image too large for the
  machine fails with a ``MemoryError`` in its own worker instead of taking
  the whole server down.

A worker that dies anyway takes only its own image with it: the pool is
rebuilt, and the images that were in flight at the time are run again one at
a time, alone, so that only the image that kills its worker again is reported
as failed (:func:`outcomes`).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import sys
import threading
import types
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

__all__ = ["LocalWorkers", "WorkerDied", "shared_workers", "memory_limit", "outcomes", "start_early",
           "default_workers"]

_GB = 1 << 30
# What the forkserver imports once, for every worker it forks.
PRELOAD = ["segmentation.batch"]
# A worker runs this much lower in CPU priority than the app (0 = same, 19 = lowest).
NICENESS = 10


class WorkerDied(Exception):
    """The worker process running a job ended without an answer (killed, out of memory, crashed)."""


def default_workers() -> int:
    """One worker per core."""
    return os.cpu_count() or 1


def start_early(argv: Sequence[str]) -> bool:
    """Start the forkserver that local batch workers come from now, if the command line `argv` will use them.

    Called before this process imports the library: the forkserver imports it
    (:data:`PRELOAD`) at the same time, on another core, instead of after.
    Returns whether it was started.
    """
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--workers", type=int, default=default_workers())
    peek.add_argument("--scheduler")
    peek.add_argument("-h", "--help", action="store_true")
    try:
        args, _ = peek.parse_known_args(argv)
    except SystemExit:  # a bad --workers: the command line says so
        return False
    if args.help or args.scheduler or args.workers < 2 or "forkserver" not in multiprocessing.get_all_start_methods():
        return False
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(PRELOAD)
    forkserver.ensure_running()
    return True


def memory_limit(workers: int) -> int | None:
    """Address space allowed to each worker (bytes): 80 % of the machine's memory shared among them.

    ``NUCLEI_WORKER_MEMORY_GB`` sets it instead; ``0`` switches the limit off.
    None where the machine's memory cannot be read.
    """
    setting = os.environ.get("NUCLEI_WORKER_MEMORY_GB")
    if setting is not None:
        try:
            gb = float(setting)
        except ValueError:
            raise ValueError(f"NUCLEI_WORKER_MEMORY_GB must be a number of gigabytes, not {setting!r}") from None
        return int(gb * _GB) if gb > 0 else None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    return max(2 * _GB, int(0.8 * total / max(1, workers)))


def one_thread_each() -> None:
    """One image per core: OpenCV's own threads would only compete with the other workers."""
    import cv2

    cv2.setNumThreads(1)


def _warm_up() -> None:
    """One tiny image through everything a batch image goes through (the first real one is then not slower)."""
    import io

    import numpy as np
    import tifffile

    from .batch import BatchInput, process_one
    from .params import Params

    yy, xx = np.mgrid[:64, :64]
    image = (1000 * (((yy - 20) ** 2 + (xx - 20) ** 2 < 100) | ((yy - 40) ** 2 + (xx - 44) ** 2 < 120))
             + 100).astype(np.uint16)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, image)
    process_one(BatchInput("warm.tif", buffer.getvalue()), "warm", Params())


def _start_worker(limit: int | None) -> None:
    """Run in each new worker process."""
    with contextlib.suppress(OSError, AttributeError):
        os.nice(NICENESS)
    one_thread_each()
    if limit is not None:
        try:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ImportError, ValueError, OSError):
            pass  # no limit on this platform


_MAIN_SWAP = threading.Lock()


@contextlib.contextmanager
def _without_main_script() -> Iterator[None]:
    """Start worker processes without the caller's main script.

    A new worker re-imports the parent's ``__main__`` script; under Streamlit
    that script is the app, which would run once more in every worker (slower
    start, more memory, log noise).  The workers only need the library.
    """
    with _MAIN_SWAP:  # several sessions of the app may start workers at once
        main = sys.modules.get("__main__")
        if main is None or getattr(main, "__spec__", None) is not None or not hasattr(main, "__file__"):
            yield
            return
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            sys.modules["__main__"] = main


class LocalWorkers:
    """A pool of worker processes on this machine, rebuilt when one of them dies.

    Parameters
    ----------
    workers : int
        Number of processes.
    limit : int or None, optional
        Address-space limit of each worker in bytes; default :func:`memory_limit`.
    """

    def __init__(self, workers: int, limit: int | None | str = "default") -> None:
        self.workers = max(1, int(workers))
        self.limit = memory_limit(self.workers) if limit == "default" else limit
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None

    def _new(self, workers: int) -> ProcessPoolExecutor:
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        ctx = multiprocessing.get_context(method)
        if method == "forkserver":
            ctx.set_forkserver_preload(PRELOAD)
        return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_start_worker,
                                   initargs=(self.limit,))

    def warm(self) -> None:
        """Start the worker processes now and let each segment a tiny image, without waiting.

        Called before a batch's inputs are read: the workers import the
        library and load scikit-image's lazily imported parts meanwhile, not
        on the batch's first images.
        """
        for _ in range(self.workers):
            self.submit(_warm_up)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run ``fn(*args)`` in a worker (rebuilding the pool first if it is broken)."""
        for _ in range(2):
            with self._lock:
                if self._executor is None:
                    self._executor = self._new(self.workers)
                executor = self._executor
            try:
                with _without_main_script():  # workers start on the first submits
                    future = executor.submit(fn, *args)
                future.executor = executor  # type: ignore[attr-defined]  # which pool ran it, for rebuild()
                return future
            except BrokenProcessPool:
                self.rebuild(executor)
        raise WorkerDied("the worker processes could not be started")

    def rebuild(self, broken: ProcessPoolExecutor | None) -> None:
        """Replace the pool if it is still the broken one (another caller may have done it already)."""
        with self._lock:
            if broken is not None and self._executor is broken:
                self._executor = None
        if broken is not None:
            broken.shutdown(wait=False, cancel_futures=True)

    def run_alone(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a fresh worker of its own; :class:`WorkerDied` if that worker dies too."""
        executor = self._new(1)
        try:
            with _without_main_script():
                future = executor.submit(fn, *args)
            return future.result()
        except BrokenProcessPool as exc:
            raise WorkerDied(str(exc)) from exc
        finally:
            executor.shutdown(wait=False, cancel_futures=True)

    def shutdown(self, cancel: bool = True) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=not cancel, cancel_futures=cancel)


_SHARED: LocalWorkers | None = None
_SHARED_LOCK = threading.Lock()


def shared_workers() -> LocalWorkers:
    """One pool for every batch of this server process (the app's sessions share the cores)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = LocalWorkers(os.cpu_count() or 1)
        return _SHARED


def outcomes(
    jobs: Iterable[Any],
    run: Callable[[Any], Any],
    pool: LocalWorkers,
    *,
    in_flight: int,
    should_stop: Callable[[], bool],
    died: Callable[[Any], Any],
) -> Iterator[Any]:
    """``run(job)`` for every job in `pool`, yielded in completion order.

    At most `in_flight` jobs are submitted at a time; when `should_stop()`
    turns true the queued ones are dropped (those running finish).  When a
    worker dies, the jobs in flight then are run again alone; a job whose
    lone worker dies too yields ``died(job)`` instead.  `run` must be a
    module-level function (it is sent to other processes).
    """
    queue = deque(jobs)
    pending: dict[Future, Any] = {}
    try:
        while True:
            while len(pending) < in_flight and queue and not should_stop():
                job = queue.popleft()
                pending[pool.submit(run, job)] = job
            if should_stop():
                # drop the images still queued; those already running finish
                pending = {fut: job for fut, job in pending.items() if not fut.cancel()}
                queue.clear()
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            suspects = []
            broken = None
            for fut in done:
                job = pending.pop(fut)
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    suspects.append(job)
                    broken = getattr(fut, "executor", None)
            if suspects:
                # every job of the broken pool fails with it: take them all, and run each alone
                for fut, job in list(pending.items()):
                    if getattr(fut, "executor", None) is broken:
                        del pending[fut]
                        suspects.append(job)
                pool.rebuild(broken)
                for job in suspects:
                    if should_stop():
                        queue.appendleft(job)
                        continue
                    try:
                        yield pool.run_alone(run, job)
                    except WorkerDied:
                        yield died(job)
    finally:
        for fut in pending:
            fut.cancel()
