"""Stand-in verification functions for the accuracy-reward tests (imported by worker processes: stdlib only)."""

import os
import time


def hang_on_sqrt(gold: str, answer: str) -> bool:
    """Hangs on an answer with a square root (a stand-in for a verification that never ends), else compares
    strings."""
    if "sqrt" in answer:
        time.sleep(60)
    return gold == answer


def crash_on_sqrt(gold: str, answer: str) -> bool:
    """Kills its own worker process on an answer with a square root (a stand-in for a segfault), else compares
    strings."""
    if "sqrt" in answer:
        os._exit(11)
    return gold == answer
