"""Functions that tests/rewards/test_reward_pool.py runs inside reward workers (standard library only)."""

import os
import signal
import sys
import time
from typing import Any


# Lets a test make this module slow to import (for the import-time and startup-timeout tests).
_IMPORT_SLEEP = float(os.environ.get("POOL_TARGETS_IMPORT_SLEEP", "0"))
if _IMPORT_SLEEP > 0:
    time.sleep(_IMPORT_SLEEP)


def square(x: int) -> int:
    """x squared."""
    return x * x


def echo(text: str) -> tuple[int, str]:
    """The argument back, with its length."""
    return len(text), text


def pid() -> int:
    """The worker's process id."""
    return os.getpid()


def behave(action: str, x: int = 0) -> Any:
    """Square ``x`` after misbehaving as ``action`` says."""
    if action == "sleep":
        time.sleep(30)
    elif action == "bigpow":
        return pow(10, 10**x)  # C-level big-int work: no signal or thread can stop it
    elif action == "exit":
        os._exit(3)
    elif action == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif action == "raise":
        raise ValueError(f"bad input {x}")
    elif action == "print":
        for line in range(2000):
            print("noise", line, "\x00" * 8)
        sys.stdout.flush()
        os.write(1, b"\x00\x00\x00\x00\x00\x00\x00\x10garbage-frame")
    elif action == "stderr":
        sys.stderr.write("e" * 300_000)
        sys.stderr.flush()
    elif action == "alloc":
        return len(bytearray(x * 1024 * 1024))
    elif action == "unpicklable":
        return lambda: x
    elif action == "input":
        return input()
    elif action != "square":
        raise ValueError(f"unknown action {action!r}")
    return x * x
