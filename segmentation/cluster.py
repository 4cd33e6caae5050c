"""Step 6 on many computers: the same batch, one Dask task per image.

:func:`connect` reaches a running ``dask.distributed`` scheduler (or starts a
``LocalCluster`` for ``"local"``) and returns a :class:`DaskWorkers`, which
:func:`segmentation.batch.run_batch` takes as its ``pool``: the zip, the
progress, Stop and the summary stay the one code path of the local batch;
only where each image is segmented changes.

How an image reaches a worker
    Workers read files from the same path as this computer (a shared
    filesystem: NFS, GPFS, Lustre, a cluster's home or scratch).  Each task
    carries the file's size and modification time as this computer sees them;
    a worker that cannot see the file, or sees a different one, sends the task
    back, and the image is sent again with its bytes (as are the other images
    of that folder from then on).  Images given as bytes always travel with
    their task.

When a worker dies
    The scheduler gives the images it was running to other workers; an image
    whose workers die ``distributed.scheduler.allowed-failures`` + 1 times
    (default 4) is reported as failed, with the reason, and nothing is
    silently missing.

Dask is an optional extra (``pip install -e ".[cluster]"``): this module
imports it only when :func:`connect` is called, and says how to install it
when it is missing.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import platform
import signal
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from .batch import ImageOutcome
from .workers import _without_main_script, one_thread_each

__all__ = ["ClusterError", "DaskWorkers", "connect", "default_address", "INSTALL_HINT", "SCHEDULER_ENV"]

# The environment variable whoever runs the app sets to the scheduler the Batch page offers.
SCHEDULER_ENV = "NUCLEI_DASK_SCHEDULER"
INSTALL_HINT = 'running on a Dask cluster needs Dask: pip install -e ".[cluster]"'
CONNECT_TIMEOUT = 5  # seconds to reach a scheduler before saying it cannot be reached
TASK_PREFIX = "segment"  # tasks are named segment-<random>: one group on the Dask dashboard
WATCH_INTERVAL = 1.0  # seconds between checks that the client still has its scheduler
RETRIES = 1  # a task that raises is tried once more (a dead worker is handled by allowed-failures)

WORKERS_DIED = ("the Dask workers segmenting this image stopped {n} times (most likely it ran out of memory: the "
                "image may be too large for the workers' memory limit); the other images were not affected")
TASK_LOST = ("the Dask scheduler dropped this image before it was done (the connection to the scheduler was lost, "
             "or the scheduler was restarted): run it again")


class ClusterError(Exception):
    """The cluster cannot be used; the message says why and what to do, in one sentence."""


def default_address() -> str | None:
    """The scheduler address set for this server in ``NUCLEI_DASK_SCHEDULER`` (None when unset or blank)."""
    return os.environ.get(SCHEDULER_ENV, "").strip() or None


# --- on the worker ----------------------------------------------------------------


@dataclass(frozen=True)
class _NotHere:
    """A worker's answer when it cannot see the file (or sees another one) at the task's path."""

    folder: str


def _signature(path: str | os.PathLike) -> tuple[int, int] | None:
    """Size and whole-second modification time of a file, or None when it cannot be seen."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, int(st.st_mtime)


# glibc's own ceiling for its adaptive mmap threshold on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX)
MMAP_THRESHOLD = 32 << 20
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h
_malloc_tuned = False


def _tune_malloc() -> bool:
    """Give a Dask worker glibc's speed with large arrays back; True when the setting was changed.

    Dask's nanny starts each worker with ``MALLOC_TRIM_THRESHOLD_`` set, so
    that freed memory goes back to the system.  Setting it also stops glibc
    from raising its mmap threshold as large blocks are freed: every array
    over 128 kB is then a fresh mmap whose pages fault in one by one.  For a
    2048² image that is 10× the page faults and 1.7× the CPU time
    (``benchmarks/cluster_bench.py``).  A fixed threshold where glibc's own
    would have settled gives the speed back; memory is still trimmed.  Other
    C libraries, or a worker started without the variable: left alone.
    """
    global _malloc_tuned
    if _malloc_tuned:
        return False
    _malloc_tuned = True  # once per process
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or platform.libc_ver()[0] != "glibc":
        return False
    try:
        return ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    except (OSError, AttributeError):
        return False


def _on_worker(fn: Callable[[Any], Any], job: tuple, data: bytes | None, seen: tuple[int, int] | None) -> Any:
    """Run ``fn(job)`` on a worker, with the image's bytes when they travelled with the task."""
    _tune_malloc()
    one_thread_each()  # a worker per core, as `dask worker --nthreads 1` starts them
    inp, *rest = job
    if data is not None:
        inp = replace(inp, source=data)
    elif seen is not None and _signature(inp.source) != seen:
        return _NotHere(str(Path(inp.source).parent))
    return fn((inp, *rest))


def dask_setup(worker: Any) -> None:
    """Dask preload hook of the workers :func:`connect` starts on this computer.

    Ctrl-C in the terminal reaches every process of the command line batch;
    the workers ignore it (no traceback from each of them), and the batch
    process stops and closes them.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _library_version() -> str:
    from . import __version__

    return __version__


# --- on this computer ----------------------------------------------------------------


def _failed(job: tuple, reason: str) -> ImageOutcome:
    inp, out_name, *rest = job
    conditions = rest[1] if len(rest) > 1 else {}  # (params, conditions, suggest) as batch.run_batch makes them
    row = {"image": out_name, "file": inp.name, **conditions, "status": "failed", "reason": reason}
    return ImageOutcome(inp.name, out_name, "failed", reason, row)


def _cancel(task: Any) -> None:
    with contextlib.suppress(Exception):  # the scheduler is gone: nothing left to cancel
        task.cancel()


class _Submission:
    """One image handed to the caller as a ``concurrent.futures.Future``, and the Dask task behind it."""

    def __init__(self, fn: Callable[[tuple], ImageOutcome], job: tuple) -> None:
        self.fn = fn
        self.job = job
        self.future: Future = Future()
        self.task: Any = None  # the distributed.Future now running it
        self.data: Any = None  # the scattered image bytes, kept until the task is done
        self._lock = threading.Lock()
        self.future.add_done_callback(self._on_done)

    def attach(self, task: Any, data: Any) -> None:
        with self._lock:
            self.task, self.data = task, data
        if self.future.cancelled():
            _cancel(task)

    def _on_done(self, future: Future) -> None:
        with self._lock:
            task, self.task, self.data = self.task, None, None  # let the scheduler forget the result
        if future.cancelled() and task is not None:
            _cancel(task)

    def resolve(self, outcome: ImageOutcome) -> None:
        with contextlib.suppress(InvalidStateError):  # the caller cancelled it meanwhile
            self.future.set_result(outcome)

    def fail(self, reason: str) -> None:
        self.resolve(_failed(self.job, reason))


class DaskWorkers:
    """The workers of a Dask cluster, with the interface of :class:`segmentation.workers.LocalWorkers`.

    Pass it as ``pool=`` to :func:`segmentation.batch.run_batch`; make one
    with :func:`connect`.  It runs batch jobs ``fn((BatchInput, out_name,
    Params))``, one Dask task each.

    Parameters
    ----------
    client : distributed.Client
    cluster : distributed.LocalCluster, optional
        A cluster this object started, closed with it.

    Attributes
    ----------
    sent : int
        Images whose bytes travelled with their task (files the workers could not see).
    """

    def __init__(self, client: Any, cluster: Any = None) -> None:
        self.client = client
        self._cluster = cluster
        self._elsewhere: set[str] = set()  # folders the workers cannot see
        self.sent = 0
        self._live: set[_Submission] = set()  # submitted, not yet done
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._watchdog: threading.Thread | None = None

    def _watch(self) -> None:
        """Fail the images in flight once the client has given up on a lost scheduler.

        Dask cancels the tasks it knows of when the connection drops, but a
        task submitted while the client is closing may never hear of it; the
        batch would wait for it forever.
        """
        while not self._closed.wait(WATCH_INTERVAL):
            if self.client.status in ("closing", "closed"):
                with self._lock:
                    lost = list(self._live)
                for sub in lost:
                    sub.fail(TASK_LOST)

    @property
    def address(self) -> str:
        return self.client.scheduler.address

    @property
    def workers(self) -> int:
        """Threads of the cluster's workers now (at least 1): how many images it segments at once."""
        try:
            return max(1, sum(self.client.nthreads().values()))
        except Exception:  # noqa: BLE001 - the scheduler is gone: the images will say so one by one
            return 1

    def describe(self) -> str:
        """E.g. ``"tcp://10.0.0.5:8786: 2 workers, 8 threads"``."""
        nthreads = self.client.nthreads()
        workers, threads = len(nthreads), sum(nthreads.values())
        return f"{self.address}: {workers} worker{'s' * (workers != 1)}, {threads} thread{'s' * (threads != 1)}"

    def check_workers(self) -> None:
        """Raise :class:`ClusterError` unless the workers there now run this package, in this version."""
        from . import __version__

        try:
            answers = self.client.run(_library_version, on_error="return")
        except Exception as exc:  # noqa: BLE001 - the scheduler went away meanwhile, ...
            raise ClusterError(f"cannot ask the workers of {self.address} which version they run "
                               f"({type(exc).__name__}: {_first_line(exc)})") from None
        for worker, answer in sorted(answers.items()):
            if isinstance(answer, BaseException):
                raise ClusterError(f"the Dask worker {worker} cannot run this package ({type(answer).__name__}: "
                                   f"{_first_line(answer)}): install nuclei-segmentation in the workers' "
                                   "environment")
            if answer != __version__:
                raise ClusterError(f"the Dask worker {worker} runs nuclei-segmentation {answer}, this computer "
                                   f"{__version__}: install the same version on both, so that results do not "
                                   "depend on where an image ran")

    def wait_for_workers(self, n: int = 1, timeout: float | None = None) -> None:
        """Block until the cluster has `n` workers (a batch queue may start them late)."""
        self.client.wait_for_workers(n, timeout=timeout)

    def submit(self, fn: Callable[[tuple], ImageOutcome], job: tuple) -> Future:
        """Run ``fn(job)`` on the cluster; cancelling the returned future cancels the task.

        The future always ends with an :class:`ImageOutcome`: a failed one,
        with the reason, when the workers died, the task raised or was lost.
        """
        sub = _Submission(fn, job)
        with self._lock:
            self._live.add(sub)
            if self._watchdog is None:
                self._watchdog = threading.Thread(target=self._watch, name="nuclei-dask-watchdog", daemon=True)
                self._watchdog.start()
        sub.future.add_done_callback(lambda _: self._forget(sub))
        if self.client.status in ("closing", "closed"):
            sub.fail(TASK_LOST)
            return sub.future
        try:
            self._start(sub)
        except Exception as exc:  # noqa: BLE001 - e.g. the scheduler went away: this image says so, the batch goes on
            sub.fail(f"could not be sent to the Dask cluster: {type(exc).__name__}: {_first_line(exc)}")
        return sub.future

    def _forget(self, sub: _Submission) -> None:
        with self._lock:
            self._live.discard(sub)

    def _start(self, sub: _Submission) -> None:
        inp, *rest = sub.job
        data = seen = payload = None
        if isinstance(inp.source, bytes | bytearray | memoryview):
            payload = bytes(inp.source)
        else:
            path = Path(inp.source).absolute()  # the workers' working folder is not ours
            if str(path.parent) in self._elsewhere:
                try:
                    payload = path.read_bytes()
                except OSError as exc:
                    sub.fail(f"cannot read this file to send it to the cluster: {exc}")
                    return
            else:
                seen = _signature(path)
        if payload is not None:
            data = self.client.scatter(payload, hash=False)
            self.sent += 1
        job = (replace(inp, source=b"" if payload is not None else path), *rest)
        task = self.client.submit(_on_worker, sub.fn, job, data, seen, key=f"{TASK_PREFIX}-{uuid.uuid4().hex}",
                                  pure=False, retries=RETRIES)
        sub.attach(task, data)
        task.add_done_callback(partial(self._finished, sub))

    def _finished(self, sub: _Submission, task: Any) -> None:
        """Runs in Dask's callback thread when a task ends."""
        if sub.future.done():  # cancelled by the caller
            return
        try:
            if task.status == "finished":
                result = task.result()
                if isinstance(result, _NotHere):
                    self._elsewhere.add(result.folder)
                    self._start(sub)  # again, with the bytes
                else:
                    sub.resolve(result)
            elif task.status == "error":
                exc = task.exception()
                if type(exc).__name__ == "KilledWorker":
                    sub.fail(WORKERS_DIED.format(n=getattr(exc, "allowed_failures", 3) + 1))
                else:
                    sub.fail(_task_error(exc))
            else:  # cancelled or lost, not by us
                sub.fail(TASK_LOST)
        except Exception as exc:  # noqa: BLE001 - the batch goes on; this image says why it failed
            sub.fail(f"the cluster could not return this image: {type(exc).__name__}: {exc}")

    def rebuild(self, broken: Any) -> None:
        """Nothing to do: the scheduler replaces a dead worker's tasks itself."""

    def run_alone(self, fn: Callable[[tuple], ImageOutcome], job: tuple) -> ImageOutcome:
        """``fn(job)`` on the cluster, waiting for it."""
        return self.submit(fn, job).result()

    def shutdown(self, cancel: bool = True) -> None:
        """Disconnect (the scheduler cancels this client's tasks); close the cluster if we started it."""
        self._closed.set()
        for thing in (self.client, self._cluster):
            if thing is not None:
                with contextlib.suppress(Exception):  # closing a cluster that is already gone says nothing
                    thing.close()

    def __enter__(self) -> DaskWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _task_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ModuleNotFoundError) and "segmentation" in str(exc):
        return f"the Dask worker cannot import this package ({text}): install nuclei-segmentation on the workers"
    return f"the Dask worker could not run this image: {text}"


def connect(address: str, *, workers: int | None = None, timeout: float | None = None) -> DaskWorkers:
    """Workers of the Dask scheduler at `address`, ready for ``run_batch(..., pool=...)``.

    Parameters
    ----------
    address : str
        A running scheduler, ``tcp://host:8786`` (``host:8786`` works too), or
        ``"local"`` to start a ``LocalCluster`` of worker processes on this
        computer (for the command line; the app has its own workers).
    workers : int, optional
        With ``"local"``: worker processes to start (default: one per core).
    timeout : float, optional
        Seconds to try to reach the scheduler (default :data:`CONNECT_TIMEOUT`, 5).

    Returns
    -------
    DaskWorkers
        Close it with ``shutdown()`` (or use it in a ``with`` block).

    Raises
    ------
    ClusterError
        Dask is not installed, the address is not a scheduler that answers
        within `timeout`, or its workers cannot import this package.  The
        message says it in one sentence.

    Examples
    --------
    >>> with connect("tcp://10.0.0.5:8786") as pool:  # doctest: +SKIP
    ...     report = run_batch(inputs, params, "results.zip", pool=pool)
    """
    try:
        import distributed
    except ImportError:
        raise ClusterError(INSTALL_HINT) from None
    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    address = (address or "").strip()
    if not address:
        raise ClusterError("no scheduler address given: use the address `dask scheduler` prints, "
                           "e.g. tcp://10.0.0.5:8786, or 'local'")
    if address.lower().startswith(("http://", "https://")):
        raise ClusterError(f"{address} is a web address (the Dask dashboard?): give the scheduler's address, "
                           "which `dask scheduler` prints as tcp://host:8786")
    local = address.lower() == "local"
    cluster = None
    try:
        if local:
            with _without_main_script():  # the workers need the library, not the caller's script
                # Dask's own log lines (a worker restarting, the cluster closing) would bury the progress lines:
                # what matters reaches the user as an image's outcome
                cluster = distributed.LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                                   processes=True, dashboard_address=":0",
                                                   silence_logs=logging.CRITICAL, preload=[__name__])
            client = distributed.Client(cluster, set_as_default=False)
        else:
            client = distributed.Client(address, timeout=timeout, set_as_default=False)
    except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, ValueError for a malformed address, ...
        if cluster is not None:
            cluster.close()
        if local:
            raise ClusterError(f"cannot start Dask workers on this computer ({type(exc).__name__}: "
                               f"{_first_line(exc)})") from None
        raise ClusterError(f"cannot reach a Dask scheduler at {address} within {timeout:g} s ({type(exc).__name__}: "
                           f"{_first_line(exc)}): is `dask scheduler` running there, and is this the address it "
                           "printed?") from None
    pool = DaskWorkers(client, cluster)
    try:
        pool.check_workers()
    except ClusterError:
        pool.shutdown()
        raise
    return pool


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


