"""Reward worker process, run as ``python -m trl_reasoning.rewards._worker CONFIG_JSON`` by :mod:`.pool`.

Standard library only. CONFIG_JSON holds ``preload`` (module names) and ``memory_limit_mb`` (int or null). The
worker talks to its parent over stdin/stdout with length-prefixed pickle frames:

* worker -> parent, once: ``("ready", pid)`` after the preload imports, or ``("fatal", traceback)`` (then exits 1);
* parent -> worker: ``("run", "module:qualname", [(index, args), ...])``;
* worker -> parent: ``("imported", spec, ok)`` the first time it meets ``spec``, then one
  ``("result", index, status, payload, seconds)`` per item, in order. ``payload`` is the pickled return value when
  ``status == "ok"``, else a short error string.

The worker exits when its stdin closes.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import resource
import signal
import struct
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, BinaryIO


HEADER = struct.Struct("!Q")  # frame = 8-byte big-endian body length + pickle body
ERROR_CHARS = 300


def read_frame(stream: BinaryIO) -> Any:
    """The next message from ``stream``, or None at end of file."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    body = stream.read(size)
    if len(body) < size:
        return None
    return pickle.loads(body)


def write_frame(stream: BinaryIO, message: Any) -> None:
    """Send one message and flush."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(body)))
    stream.write(body)
    stream.flush()


def describe_exception(exc: BaseException) -> str:
    """A short ``repr`` of ``exc`` that always names its type."""
    name = type(exc).__name__
    try:
        text = repr(exc)
    except Exception:
        text = name
    if not text.startswith(name):
        text = f"{name}: {text}"
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 3] + "..."


def resolve(spec: str) -> Callable[..., Any]:
    """Import the function named by ``"package.module:qualname"``."""
    module_name, _, qualname = spec.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{spec} is not callable")
    return obj


def _private_streams() -> tuple[BinaryIO, BinaryIO]:
    """Move the protocol pipes to private fds; fds 0 and 1 become /dev/null so ``print``/``input`` are harmless."""
    in_fd, out_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    return os.fdopen(in_fd, "rb"), os.fdopen(out_fd, "wb")


def _limit_memory(megabytes: int) -> None:
    """Cap the address space so a huge allocation raises MemoryError instead of exhausting the machine."""
    limit = int(megabytes) * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _run_item(func: Callable[..., Any], args: tuple) -> tuple[str, Any, float]:
    start = time.perf_counter()
    try:
        value = func(*args)
    except BaseException as exc:  # SystemExit etc. from user code is an item error too
        return "error", describe_exception(exc), time.perf_counter() - start
    seconds = time.perf_counter() - start
    try:
        return "ok", pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), seconds
    except BaseException as exc:
        return "error", f"unpicklable result: {describe_exception(exc)}", seconds


def serve(reader: BinaryIO, writer: BinaryIO) -> None:
    """Answer ``run`` messages until stdin closes."""
    funcs: dict[str, Callable[..., Any]] = {}
    while True:
        message = read_frame(reader)
        if message is None or message[0] != "run":
            return
        _, spec, items = message
        func, failure = funcs.get(spec), None
        if func is None:
            try:
                func = funcs[spec] = resolve(spec)
            except BaseException as exc:
                failure = f"cannot import {spec}: {describe_exception(exc)}"
            write_frame(writer, ("imported", spec, failure is None))
        for index, args in items:
            if func is None:
                write_frame(writer, ("result", index, "error", failure, 0.0))
                continue
            status, payload, seconds = _run_item(func, args)
            write_frame(writer, ("result", index, status, payload, seconds))


def main(argv: list[str] | None = None) -> int:
    """Worker entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    config = json.loads(argv[0]) if argv else {}
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    reader, writer = _private_streams()
    try:
        try:
            if config.get("memory_limit_mb"):
                _limit_memory(config["memory_limit_mb"])
            for name in config.get("preload", ()):
                importlib.import_module(name)
        except BaseException:
            write_frame(writer, ("fatal", traceback.format_exc()[-2000:]))
            return 1
        write_frame(writer, ("ready", os.getpid()))
        serve(reader, writer)
    except BrokenPipeError:  # the parent went away
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
