"""Killable subprocess workers for reward functions (standard library only).

Why subprocesses: checking a model's answer (sympy) can take unbounded time on hostile output, and much of that is
C-level work (``10**(10**10)`` is one big-int loop) that no signal or thread can interrupt; signals also only work in
the main thread, while rewards are computed in trainer threads and event loops. A subprocess can always be SIGKILLed.
Workers are ``subprocess.Popen([sys.executable, "-m", "trl_reasoning.rewards._worker", ...])``, not multiprocessing,
whose spawn/forkserver start methods re-import the user's ``__main__`` (a training script importing torch and TRL).

Protocol (see :mod:`._worker`): stdin/stdout carry frames of an 8-byte big-endian length and a pickle. A worker
says ``ready`` once its preload imports are done, then answers each chunk of items with one result frame per item.

Deadline rule: the item a worker is on must finish within ``timeout`` of the arrival of that worker's previous result
(or of the chunk's send time, or of the message saying the function was imported). Past it the worker is killed, the
item becomes a "timeout", the rest of its chunk is requeued, and a replacement starts while the others keep going.
Worker startup and the function's import never count against an item.
"""

from __future__ import annotations

import atexit
import json
import math
import operator
import os
import pickle
import selectors
import signal
import struct
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal


__all__ = ["TaskResult", "WorkerPool"]

WORKER_MODULE = "trl_reasoning.rewards._worker"
_HEADER = struct.Struct("!Q")  # same framing as _worker.HEADER (not imported: keeps `-m _worker` clean)
_MAX_CHUNK = 128
_READ_SIZE = 1 << 20
_STDERR_TAIL = 4096
_MAX_WAIT = 1.0
_MAX_STARTUP_FAILURES = 3
_LIVE_POOLS: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


@dataclass(frozen=True)
class TaskResult:
    """Outcome of one item: ``value`` when ``status == "ok"``, else a short ``error``."""

    status: Literal["ok", "timeout", "error"]
    value: Any = None
    error: str | None = None
    seconds: float = 0.0


def _short(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _exit_text(code: int | None) -> str:
    if code is None:
        return "exit code unknown"
    if code < 0:
        try:
            return f"exit code {code}, {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"exit code {code}"


def _child_env() -> dict[str, str]:
    """The parent's environment with ``PYTHONPATH`` set to the parent's ``sys.path``."""
    paths: list[str] = []
    for entry in sys.path:
        if not isinstance(entry, str) or os.pathsep in entry:
            continue
        entry = os.path.abspath(entry) if entry else os.getcwd()
        if entry not in paths:
            paths.append(entry)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, _READ_SIZE)
    except OSError:
        return b""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _Worker:
    """One worker subprocess and the parent's view of it."""

    def __init__(self, proc: subprocess.Popen, startup_timeout: float) -> None:
        self.proc = proc
        self.stdin_fd = proc.stdin.fileno()
        self.stdout_fd = proc.stdout.fileno()
        self.stderr_fd = proc.stderr.fileno()
        self.stderr_open = True
        self.alive = True
        self.ready = False
        self.spawned_at = time.monotonic()
        self.startup_deadline = self.spawned_at + startup_timeout
        self.buffer = bytearray()
        self.stderr_tail = bytearray()
        self.funcs: set[str] = set()  # functions this worker has imported
        self.chunk: deque[int] = deque()  # indices sent and not answered yet; chunk[0] is running
        self.importing = False
        self.clock = 0.0  # when the current item's deadline clock started
        self.deadline = math.inf

    def start_clock(self, now: float, seconds: float) -> None:
        self.clock, self.deadline = now, now + seconds

    def frames(self) -> Iterator[Any]:
        """Complete messages in the input buffer."""
        buffer = self.buffer
        while len(buffer) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buffer)
            end = _HEADER.size + size
            if len(buffer) < end:
                return
            message = pickle.loads(memoryview(buffer)[_HEADER.size : end])
            del buffer[:end]
            yield message

    def keep_stderr(self, data: bytes) -> None:
        self.stderr_tail += data
        del self.stderr_tail[:-_STDERR_TAIL]


class _Batch:
    """State of one ``map`` call."""

    def __init__(self, func: str, items: list[tuple], timeout: float) -> None:
        self.func, self.items, self.timeout = func, items, timeout
        self.results: list[TaskResult | None] = [None] * len(items)
        self.pending: deque[int] = deque(range(len(items)))
        self.left = len(items)


class WorkerPool:
    """A pool of killable subprocess workers that run ``"module:function"`` on items with per-item timeouts.

    Workers start on the first :meth:`map`; ``preload`` modules are imported in each worker before it counts as
    ready. ``memory_limit_mb`` caps each worker's address space (``None``: no cap). Thread-safe (``map`` calls are
    serialised), usable from threads, event loops and subprocesses, fork-aware, and picklable (as configuration).
    """

    def __init__(
        self,
        workers: int,
        *,
        preload: Sequence[str] = (),
        memory_limit_mb: int | None = 4096,
        startup_timeout: float = 120.0,
    ) -> None:
        try:
            count = operator.index(workers)
        except TypeError:
            count = 0
        if isinstance(workers, bool) or count < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        if memory_limit_mb is not None and (
            isinstance(memory_limit_mb, bool) or not isinstance(memory_limit_mb, int) or memory_limit_mb < 1
        ):
            raise ValueError(f"memory_limit_mb must be None or an integer >= 1, got {memory_limit_mb!r}")
        if not isinstance(startup_timeout, (int, float)) or not startup_timeout > 0:
            raise ValueError(f"startup_timeout must be > 0 seconds, got {startup_timeout!r}")
        self._size = count
        self._preload = (preload,) if isinstance(preload, str) else tuple(preload)
        self._memory_limit_mb = memory_limit_mb
        self._startup_timeout = float(startup_timeout)
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._selector: selectors.BaseSelector | None = None
        self._pid = os.getpid()
        self._closed = False
        self._startup_failures = 0
        self._stats = {"items": 0, "timeouts": 0, "errors": 0, "restarts": 0}
        _LIVE_POOLS.add(self)

    # -- public API ----------------------------------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, int]:
        """Counters since creation: items done, timeouts, errors, worker restarts."""
        return dict(self._stats)

    def map(self, func: str, items: Sequence[tuple], timeout: float) -> list[TaskResult]:
        """Run ``func(*item)`` for every item in the workers; results in input order."""
        module, sep, qualname = func.partition(":") if isinstance(func, str) else ("", "", "")
        if not (module and sep and qualname) or ":" in qualname:
            raise ValueError(f"func must be a 'package.module:qualname' string, got {func!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        calls = []
        for position, item in enumerate(items):
            if not isinstance(item, (tuple, list)):
                raise TypeError(f"items must be tuples of arguments; item {position} is {type(item).__name__}")
            calls.append(tuple(item))
        if not calls:
            return []
        with self._lock:
            if self._closed:
                raise RuntimeError("WorkerPool is closed")
            self._forget_if_forked()
            return self._run(_Batch(func, calls, float(timeout)))

    def close(self) -> None:
        """Kill and reap the workers (waiting up to 5 s for a running ``map``). Idempotent; then ``map`` raises."""
        lock = getattr(self, "_lock", None)
        if lock is None:  # __init__ did not finish
            return
        acquired = lock.acquire(timeout=5.0)  # a stuck daemon thread in map must not block interpreter exit
        try:
            self._closed = True
            self._forget_if_forked()
            workers, self._workers = self._workers, []
            for worker in workers:
                self._stop(worker, kill=True)
        finally:
            if acquired:
                lock.release()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __getstate__(self) -> dict[str, Any]:
        return {
            "workers": self._size,
            "preload": self._preload,
            "memory_limit_mb": self._memory_limit_mb,
            "startup_timeout": self._startup_timeout,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self.__init__(state.pop("workers"), **state)

    def __repr__(self) -> str:
        live = sum(worker.alive for worker in self._workers)
        return f"WorkerPool(workers={self._size}, live={live}, closed={self._closed})"

    # -- process management --------------------------------------------------------------------------------------

    def _forget_if_forked(self) -> None:
        """In a forked child, drop the parent's workers (close our copies of the pipes, never signal them)."""
        if os.getpid() == self._pid:
            return
        for worker in self._workers:
            for stream in (worker.proc.stdin, worker.proc.stdout, worker.proc.stderr):
                try:
                    stream.close()
                except OSError:
                    pass
        self._workers = []
        self._selector = None
        self._pid = os.getpid()

    def _spawn(self) -> _Worker:
        if self._closed:
            raise RuntimeError("WorkerPool was closed while map was running")
        if not sys.executable:
            raise RuntimeError("WorkerPool needs sys.executable to start workers")
        config = json.dumps({"preload": list(self._preload), "memory_limit_mb": self._memory_limit_mb})
        proc = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, config],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            close_fds=True,
            env=_child_env(),
        )
        worker = _Worker(proc, self._startup_timeout)
        self._workers.append(worker)
        if self._selector is not None:
            self._watch(worker)
        return worker

    def _replace(self) -> None:
        self._stats["restarts"] += 1
        self._spawn()

    def _watch(self, worker: _Worker) -> None:
        assert self._selector is not None
        self._selector.register(worker.stdout_fd, selectors.EVENT_READ, (worker, "out"))
        if worker.stderr_open:
            self._selector.register(worker.stderr_fd, selectors.EVENT_READ, (worker, "err"))

    def _unwatch(self, worker: _Worker, fd: int) -> None:
        if self._selector is not None:
            try:
                self._selector.unregister(fd)
            except (KeyError, ValueError):
                pass

    def _stop(self, worker: _Worker, *, kill: bool) -> int | None:
        """Kill (or wait for an exiting) worker, reap it, keep its last stderr, close its pipes; returns exit code."""
        if not worker.alive:
            return worker.proc.returncode
        worker.alive = False
        proc = worker.proc
        if kill:
            try:
                proc.kill()
            except OSError:
                pass
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                pass
        if worker.stderr_open:
            try:
                os.set_blocking(worker.stderr_fd, False)
                for _ in range(64):
                    data = os.read(worker.stderr_fd, 65536)
                    if not data:
                        break
                    worker.keep_stderr(data)
            except OSError:
                pass
        for fd in (worker.stdout_fd, worker.stderr_fd):
            self._unwatch(worker, fd)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            try:
                stream.close()
            except OSError:
                pass
        if worker in self._workers:
            self._workers.remove(worker)
        return proc.returncode

    def _startup_failed(self, worker: _Worker, reason: str) -> None:
        self._stop(worker, kill=True)
        self._startup_failures += 1
        tail = worker.stderr_tail.decode(errors="replace").strip()
        message = f"reward worker (pid {worker.proc.pid}) failed to start: {reason}"
        if tail:
            message += f"\nworker stderr (tail):\n{tail[-2000:]}"
        if self._startup_failures >= _MAX_STARTUP_FAILURES or not any(w.ready for w in self._workers):
            raise RuntimeError(message)
        self._spawn()  # a one-off failure while others work: try again

    # -- the map loop --------------------------------------------------------------------------------------------

    def _run(self, batch: _Batch) -> list[TaskResult]:
        self._selector = selectors.DefaultSelector()
        finished = False
        try:
            now = time.monotonic()
            for worker in self._workers:
                self._watch(worker)
                if not worker.ready:  # time between two maps does not count against startup
                    worker.startup_deadline = now + self._startup_timeout
            while len(self._workers) < self._size:
                self._spawn()
            while batch.left:
                self._dispatch(batch)
                if not batch.left:
                    break
                self._poll(self._wait_time(), batch)
                self._enforce_deadlines(batch)
            finished = True
            return batch.results  # type: ignore[return-value]
        finally:
            if not finished:  # interrupted (Ctrl-C, startup failure): busy workers hold stale items
                for worker in list(self._workers):
                    if worker.chunk:
                        self._stop(worker, kill=True)
            self._selector.close()
            self._selector = None

    def _dispatch(self, batch: _Batch) -> None:
        for worker in list(self._workers):
            if not batch.pending:
                return
            if worker.alive and worker.ready and not worker.chunk:
                self._send(worker, batch)

    def _encode(self, batch: _Batch, indices: list[int]) -> tuple[bytes | None, list[int]]:
        """Pickle a chunk; items whose arguments do not pickle become errors and are left out."""
        try:
            payload = [(index, batch.items[index]) for index in indices]
            return pickle.dumps(("run", batch.func, payload), protocol=pickle.HIGHEST_PROTOCOL), indices
        except Exception:
            good = []
            for index in indices:
                try:
                    pickle.dumps(batch.items[index], protocol=pickle.HIGHEST_PROTOCOL)
                except Exception as exc:
                    self._finish(batch, index, TaskResult("error", error=f"unpicklable arguments: {_short(exc)}"))
                else:
                    good.append(index)
            if not good:
                return None, good
            payload = [(index, batch.items[index]) for index in good]
            return pickle.dumps(("run", batch.func, payload), protocol=pickle.HIGHEST_PROTOCOL), good

    def _send(self, worker: _Worker, batch: _Batch) -> None:
        size = max(1, min(_MAX_CHUNK, len(batch.pending) // (4 * self._size)))
        indices = [batch.pending.popleft() for _ in range(min(size, len(batch.pending)))]
        body, indices = self._encode(batch, indices)
        if body is None:
            return
        try:
            _write_all(worker.stdin_fd, _HEADER.pack(len(body)) + body)
        except OSError:  # it died while idle: its EOF is handled like any death, with nothing running
            batch.pending.extendleft(reversed(indices))
            self._lost(worker, batch)
            return
        now = time.monotonic()
        worker.chunk.extend(indices)
        if batch.func in worker.funcs:
            worker.importing = False
            worker.start_clock(now, batch.timeout)
        else:  # importing the function's module is startup work, not the first item's
            worker.importing = True
            worker.start_clock(now, self._startup_timeout)

    def _wait_time(self) -> float:
        times = [w.deadline for w in self._workers if w.chunk] + [
            w.startup_deadline for w in self._workers if not w.ready
        ]
        if not times:
            return _MAX_WAIT
        return min(max(min(times) - time.monotonic(), 0.0), _MAX_WAIT)

    def _poll(self, wait: float, batch: _Batch) -> None:
        assert self._selector is not None
        for key, _ in self._selector.select(wait):
            worker, stream = key.data
            if worker.alive:
                self._on_readable(worker, stream, batch)

    def _on_readable(self, worker: _Worker, stream: str, batch: _Batch) -> None:
        if stream == "err":
            data = _read(worker.stderr_fd)
            if data:
                worker.keep_stderr(data)
            else:
                worker.stderr_open = False
                self._unwatch(worker, worker.stderr_fd)
            return
        data = _read(worker.stdout_fd)
        if not data:
            self._lost(worker, batch)
            return
        worker.buffer += data
        now = time.monotonic()
        for message in worker.frames():
            self._on_message(worker, message, batch, now)

    def _on_message(self, worker: _Worker, message: tuple, batch: _Batch, now: float) -> None:
        kind = message[0]
        if kind == "result":
            _, index, status, payload, seconds = message
            if not worker.chunk or worker.chunk[0] != index:
                self._stop(worker, kill=True)
                raise RuntimeError(f"reward worker protocol error: result for item {index}, expected {worker.chunk}")
            worker.chunk.popleft()
            if status == "ok":
                try:
                    result = TaskResult("ok", pickle.loads(payload), None, seconds)
                except Exception as exc:
                    result = TaskResult("error", error=f"cannot unpickle result: {_short(exc)}", seconds=seconds)
            else:
                result = TaskResult(status, error=payload, seconds=seconds)
            self._finish(batch, index, result)
            if worker.chunk:
                worker.start_clock(now, batch.timeout)
            else:
                worker.deadline = math.inf
        elif kind == "imported":
            _, spec, ok = message
            if ok:
                worker.funcs.add(spec)
            worker.importing = False
            worker.start_clock(now, batch.timeout)
        elif kind == "ready":
            worker.ready = True
            self._startup_failures = 0
        elif kind == "fatal":
            self._startup_failed(worker, f"error in preload:\n{message[1]}")

    def _finish(self, batch: _Batch, index: int, result: TaskResult) -> None:
        if batch.results[index] is None:
            batch.left -= 1
        batch.results[index] = result
        self._stats["items"] += 1
        if result.status == "timeout":
            self._stats["timeouts"] += 1
        elif result.status == "error":
            self._stats["errors"] += 1

    def _lost(self, worker: _Worker, batch: _Batch) -> None:
        """The worker's stdout closed: it exited or was killed by something else."""
        now = time.monotonic()
        code = self._stop(worker, kill=False)
        if not worker.ready:
            self._startup_failed(worker, f"exited during startup ({_exit_text(code)})")
            return
        if worker.chunk:
            index = worker.chunk.popleft()
            error = f"worker died ({_exit_text(code)})"
            if worker.importing:
                error = f"worker died importing {batch.func} ({_exit_text(code)})"
            self._finish(batch, index, TaskResult("error", error=error, seconds=now - worker.clock))
            batch.pending.extendleft(reversed(worker.chunk))
            worker.chunk.clear()
        self._replace()

    def _enforce_deadlines(self, batch: _Batch) -> None:
        now = time.monotonic()

        def overdue(worker: _Worker) -> bool:
            return worker.alive and (
                (bool(worker.chunk) and worker.deadline <= now)
                or (not worker.ready and worker.startup_deadline <= now)
            )

        if not any(overdue(worker) for worker in self._workers):
            return
        self._poll(0.0, batch)  # what already arrived counts: a result just in time is not a timeout
        for worker in list(self._workers):
            if not overdue(worker):
                continue
            if not worker.ready:
                self._startup_failed(worker, f"not ready after {self._startup_timeout:g} s")
                continue
            index = worker.chunk.popleft()
            if worker.importing:
                error = f"timed out importing {batch.func} after {self._startup_timeout:g} s"
            else:
                error = f"timed out after {batch.timeout:g} s"
            self._stop(worker, kill=True)
            self._finish(batch, index, TaskResult("timeout", error=error, seconds=batch.timeout))
            batch.pending.extendleft(reversed(worker.chunk))
            worker.chunk.clear()
            self._replace()


def _close_all() -> None:
    for pool in list(_LIVE_POOLS):
        try:
            pool.close()
        except Exception:
            pass


def _after_fork_in_child() -> None:
    for pool in list(_LIVE_POOLS):
        pool._lock = threading.Lock()  # the parent's lock may have been held by a thread that does not exist here


atexit.register(_close_all)
os.register_at_fork(after_in_child=_after_fork_in_child)
