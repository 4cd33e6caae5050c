"""A small thread-safe cache bounded in bytes, shared by the stage runner, the pictures and the Compare cells.

Keys are hashable tuples (never large arrays); values are results made of
numpy arrays, bytes and small objects.  Values are made read-only when they
are kept, since every user of the server may be handed the same array.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

__all__ = ["Cache", "nbytes", "freeze", "UNKNOWN_BYTES"]

# What an object of unknown size (a plotly figure, say) counts for, so that a cache bounded in bytes is
# bounded in the number of such objects too.
UNKNOWN_BYTES = 64 * 1024


def nbytes(value: Any) -> int:
    """Bytes held by the arrays and byte strings inside `value` (dataclasses, tuples, lists, dicts)."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(nbytes(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, (tuple, list)):
        return sum(nbytes(v) for v in value)
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values())
    size = getattr(value, "nbytes", None)
    if isinstance(size, (int, np.integer)):
        return int(size)
    return 0 if isinstance(value, (int, float, str, type(None))) else UNKNOWN_BYTES


def freeze(value: Any) -> Any:
    """Make every array inside `value` read-only (in place); returns `value`."""
    if isinstance(value, np.ndarray):
        value.setflags(write=False)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            freeze(getattr(value, f.name))
    elif isinstance(value, (tuple, list)):
        for v in value:
            freeze(v)
    elif isinstance(value, dict):
        for v in value.values():
            freeze(v)
    return value


class Cache:
    """Results by key; the least recently used go first once `max_bytes` is exceeded.

    Parameters
    ----------
    max_bytes : int
        Bound on the bytes kept (see :func:`nbytes`).  A single result larger
        than this is returned but not kept.
    workers : int
        Threads for :meth:`submit` (0: no pool; :meth:`get` still works).

    Notes
    -----
    Each key is computed once at a time: a second caller asking for a key
    being computed waits for that computation instead of starting another.
    Failed computations are not kept (the next call tries again).

    Examples
    --------
    >>> cache = Cache(max_bytes=1 << 20)
    >>> cache.get(("answer",), lambda: 42), cache.get(("answer",), lambda: 0)
    (42, 42)
    """

    def __init__(self, max_bytes: int, workers: int = 0) -> None:
        self.max_bytes = int(max_bytes)
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cache") if workers else None
        self._lock = threading.Lock()
        self._done: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._pending: dict[Hashable, Future] = {}
        self._bytes = 0

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._done

    def __len__(self) -> int:
        with self._lock:
            return len(self._done)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def peek(self, key: Hashable, default: Any = None) -> Any:
        """The kept value of `key`, or `default` (does not compute)."""
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                return self._done[key][0]
        return default

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value of `key`, computed here by `compute()` when it is neither kept nor being computed."""
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                return self._done[key][0]
            future = self._pending.get(key)
            mine = future is None
            if mine:
                future = self._pending[key] = Future()
        if not mine:
            return future.result()
        try:
            value = compute()
        except BaseException as exc:
            with self._lock:
                self._pending.pop(key, None)
            future.set_exception(exc)
            raise
        self._keep(key, future, value)
        future.set_result(value)
        return value

    def submit(self, key: Hashable, compute: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        """A future of `key`'s value: done when kept, the running one when being computed, else a new one."""
        if self._pool is None:
            raise RuntimeError("this cache has no worker threads (workers=0)")
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                done: Future = Future()
                done.set_result(self._done[key][0])
                return done
            if key in self._pending:
                return self._pending[key]
            future = self._pending[key] = Future()
        self._pool.submit(self._run, key, future, compute, args, kwargs)
        return future

    def _run(self, key: Hashable, future: Future, compute: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        if not future.set_running_or_notify_cancel():
            with self._lock:
                self._pending.pop(key, None)
            return
        try:
            value = compute(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
            with self._lock:
                self._pending.pop(key, None)
            future.set_exception(exc)
            return
        self._keep(key, future, value)
        future.set_result(value)

    def _keep(self, key: Hashable, future: Future, value: Any) -> None:
        size = nbytes(value)
        freeze(value)
        with self._lock:
            if self._pending.get(key) is future:
                del self._pending[key]
            if size > self.max_bytes or key in self._done:
                return
            self._done[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, old) = self._done.popitem(last=False)
                self._bytes -= old

    def clear(self) -> None:
        """Forget every kept value (running computations finish, and are kept)."""
        with self._lock:
            self._done.clear()
            self._bytes = 0
