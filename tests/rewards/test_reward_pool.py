"""The killable reward worker pool: ordering, timeouts, crashes, isolation, threads, event loops, fork, pickle."""

import _thread
import asyncio
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from trl_reasoning.rewards.pool import TaskResult, WorkerPool


TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/: `support.pool_targets`
REPO_ROOT = os.path.dirname(TESTS_DIR)
BEHAVE = "support.pool_targets:behave"
SLACK = 5.0  # a 1 s timeout must come back well within this on a loaded 2-core machine


@pytest.fixture
def pool():
    with WorkerPool(2) as pool:
        yield pool


def child_pids() -> set[int]:
    """Live or zombie children of this process."""
    me, found = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == me:
            found.add(int(entry))
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def worker_pids(pool: WorkerPool, count: int = 16) -> set[int]:
    return {result.value for result in pool.map("support.pool_targets:pid", [()] * count, timeout=30)}


def mixed_batch(pool: WorkerPool) -> tuple[list[TaskResult], float]:
    """A batch with a sleeping item among good ones, run with a 1 s timeout; returns results and seconds."""
    start = time.monotonic()
    results = pool.map(BEHAVE, [("square", 3), ("sleep", 0), ("square", 4), ("square", 5)], timeout=1.0)
    return results, time.monotonic() - start


def check_mixed(results: list[TaskResult], elapsed: float) -> None:
    assert [r.status for r in results] == ["ok", "timeout", "ok", "ok"]
    assert [results[i].value for i in (0, 2, 3)] == [9, 16, 25]
    assert elapsed < 1.0 + SLACK


def test_results_come_back_in_input_order(pool):
    results = pool.map("support.pool_targets:square", [(i,) for i in range(50)], timeout=30)
    assert [r.status for r in results] == ["ok"] * 50
    assert [r.value for r in results] == [i * i for i in range(50)]
    assert all(r.error is None and r.seconds >= 0 for r in results)
    assert pool.map("support.pool_targets:square", [], timeout=1) == []
    assert pool.stats["items"] == 50


def test_sleep_and_c_level_bigint_time_out_without_stopping_the_batch(pool):
    items = [("square", i) for i in range(6)]
    items[1] = ("sleep", 0)
    items[4] = ("bigpow", 10)  # pow(10, 10**10)
    start = time.monotonic()
    results = pool.map(BEHAVE, items, timeout=1.0)
    elapsed = time.monotonic() - start
    assert [r.status for r in results] == ["ok", "timeout", "ok", "ok", "timeout", "ok"]
    assert [results[i].value for i in (0, 2, 3, 5)] == [0, 4, 9, 25]
    assert "timed out" in results[1].error and results[1].seconds == 1.0
    assert elapsed < 1.0 + SLACK
    assert pool.stats["timeouts"] == 2 and pool.stats["restarts"] == 2


def test_crashes_are_errors_and_later_items_complete(pool):
    items = [("square", 1), ("exit", 0), ("square", 2), ("segfault", 0), ("square", 3), ("square", 4)]
    results = pool.map(BEHAVE, items, timeout=30)
    assert [r.status for r in results] == ["ok", "error", "ok", "error", "ok", "ok"]
    assert [results[i].value for i in (0, 2, 4, 5)] == [1, 4, 9, 16]
    assert "worker died" in results[1].error and "exit code 3" in results[1].error
    assert "SIGSEGV" in results[3].error
    assert pool.stats["restarts"] == 2 and pool.stats["errors"] == 2


def test_exceptions_are_errors_and_the_worker_keeps_going(pool):
    items = [("raise", 7), ("square", 2), ("unpicklable", 1), ("input", 0), ("square", 3)]
    results = pool.map(BEHAVE, items, timeout=30)
    assert [r.status for r in results] == ["error", "ok", "error", "error", "ok"]
    assert "ValueError" in results[0].error and "bad input 7" in results[0].error
    assert "unpicklable result" in results[2].error
    assert "EOFError" in results[3].error  # stdin is not the protocol pipe
    assert [results[1].value, results[4].value] == [4, 9]
    assert pool.stats["restarts"] == 0
    long = pool.map(BEHAVE, [("raise", 10**290)], timeout=30)[0]
    assert long.status == "error" and len(long.error) <= 300


def test_bad_function_and_unpicklable_arguments_are_errors(pool):
    missing = pool.map("support.pool_targets:no_such_function", [(1,), (2,)], timeout=30)
    assert [r.status for r in missing] == ["error", "error"]
    assert "AttributeError" in missing[0].error
    results = pool.map("support.pool_targets:echo", [("a",), (threading.Lock(),), ("b",)], timeout=30)
    assert [r.status for r in results] == ["ok", "error", "ok"]
    assert "unpicklable arguments" in results[1].error
    assert [results[0].value, results[2].value] == [(1, "a"), (1, "b")]


def test_printing_does_not_corrupt_results(pool):
    items = [("print" if i % 2 else "stderr", i) for i in range(20)]
    results = pool.map(BEHAVE, items, timeout=30)
    assert [r.status for r in results] == ["ok"] * 20
    assert [r.value for r in results] == [i * i for i in range(20)]


def test_large_arguments_round_trip(pool):
    text = ("αβγ-" * 50_000)[:200_000]
    results = pool.map("support.pool_targets:echo", [(text,)] * 5 + [("short",)], timeout=30)
    assert all(r.status == "ok" for r in results)
    assert [r.value for r in results] == [(200_000, text)] * 5 + [(5, "short")]


def test_memory_limit_turns_a_huge_allocation_into_an_error():
    with WorkerPool(1, memory_limit_mb=1024) as pool:
        results = pool.map(BEHAVE, [("alloc", 2048), ("alloc", 16), ("square", 3)], timeout=30)
    assert [r.status for r in results] == ["error", "ok", "ok"]
    assert "MemoryError" in results[0].error
    assert [results[1].value, results[2].value] == [16 * 1024 * 1024, 9]


def test_pool_keeps_working_after_kills():
    with WorkerPool(1) as pool:
        first = worker_pids(pool, 1)
        assert pool.map(BEHAVE, [("sleep", 0)], timeout=0.5)[0].status == "timeout"
        assert pool.map(BEHAVE, [("exit", 0)], timeout=30)[0].status == "error"
        results = pool.map("support.pool_targets:square", [(i,) for i in range(10)], timeout=30)
        assert [r.value for r in results] == [i * i for i in range(10)]
        assert worker_pids(pool, 1).isdisjoint(first)
        assert pool.stats == {"items": 14, "timeouts": 1, "errors": 1, "restarts": 2}


def test_interrupted_map_leaves_no_stale_results():
    """Ctrl-C during a map (a simulated SIGINT while an item sleeps), then a new map gets only its own results.

    The interrupt is repeated every 0.3 s until it lands: one delivered while the interpreter runs a finalizer (an
    earlier test's object being collected) is swallowed there, and the map would finish instead of being cut off.
    """
    armed = [True]

    def on_sigint(signum, frame):
        if armed[0]:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    stop = threading.Event()

    def interrupt_until_stopped():
        while not stop.wait(0.3):
            _thread.interrupt_main()

    try:
        with WorkerPool(1) as pool:
            worker_pids(pool, 1)
            interrupter = threading.Thread(target=interrupt_until_stopped, daemon=True)
            interrupter.start()
            try:
                pool.map(BEHAVE, [("square", 1), ("sleep", 0), ("square", 2)], timeout=20)
            except KeyboardInterrupt:
                armed[0] = False
            else:
                pytest.fail("map returned although it was interrupted")
            finally:
                armed[0] = False
                stop.set()
                interrupter.join()
            results = pool.map("support.pool_targets:square", [(i,) for i in range(10, 20)], timeout=30)
            assert [r.value for r in results] == [i * i for i in range(10, 20)]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_function_import_does_not_count_against_the_timeout(monkeypatch):
    monkeypatch.setenv("POOL_TARGETS_IMPORT_SLEEP", "1.5")
    with WorkerPool(1) as pool:
        results = pool.map("support.pool_targets:square", [(3,), (4,)], timeout=0.5)
    assert [(r.status, r.value) for r in results] == [("ok", 9), ("ok", 16)]


def test_startup_failures_raise_with_the_reason(monkeypatch):
    with WorkerPool(2, preload=["no_such_module_for_pool_tests"]) as pool:
        with pytest.raises(RuntimeError, match="no_such_module_for_pool_tests"):
            pool.map("support.pool_targets:square", [(1,)], timeout=5)
    monkeypatch.setenv("POOL_TARGETS_IMPORT_SLEEP", "30")
    with WorkerPool(1, preload=["support.pool_targets"], startup_timeout=0.5) as pool:
        start = time.monotonic()
        with pytest.raises(RuntimeError, match="not ready after 0.5 s"):
            pool.map("support.pool_targets:square", [(1,)], timeout=5)
        assert time.monotonic() - start < 0.5 + SLACK


def test_map_from_threads(pool):
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("thread", mixed_batch(pool)))
    thread.start()
    thread.join()
    check_mixed(*out["thread"])
    with ThreadPoolExecutor(1) as executor:
        check_mixed(*executor.submit(mixed_batch, pool).result())


def test_concurrent_maps_from_two_threads(pool):
    def run(offset: int) -> list[TaskResult]:
        return pool.map("support.pool_targets:square", [(offset + i,) for i in range(200)], timeout=30)

    with ThreadPoolExecutor(2) as executor:
        futures = [executor.submit(run, offset) for offset in (0, 1000)]
        first, second = (future.result() for future in futures)
    assert [r.value for r in first] == [i * i for i in range(200)]
    assert [r.value for r in second] == [(1000 + i) ** 2 for i in range(200)]


def test_map_inside_a_running_event_loop(pool):
    async def main():
        direct = mixed_batch(pool)
        threaded = await asyncio.to_thread(mixed_batch, pool)
        return direct, threaded

    direct, threaded = asyncio.run(main())
    check_mixed(*direct)
    check_mixed(*threaded)


def test_map_inside_a_subprocess():
    script = (
        "import json, time\n"
        "from trl_reasoning.rewards.pool import WorkerPool\n"
        "with WorkerPool(2) as pool:\n"
        "    start = time.monotonic()\n"
        f"    results = pool.map({BEHAVE!r}, [('square', 3), ('sleep', 0), ('square', 4)], timeout=1.0)\n"
        "    elapsed = time.monotonic() - start\n"
        "print(json.dumps({'results': [[r.status, r.value] for r in results], 'elapsed': elapsed}))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([TESTS_DIR, REPO_ROOT])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["results"] == [["ok", 9], ["timeout", None], ["ok", 16]]
    assert report["elapsed"] < 1.0 + SLACK


def test_workers_exit_when_the_parent_dies_without_closing():
    script = (
        "import json, os, sys\n"
        "from trl_reasoning.rewards.pool import WorkerPool\n"
        "pool = WorkerPool(2)\n"
        "pids = {r.value for r in pool.map('support.pool_targets:pid', [()] * 16, timeout=30)}\n"
        "print(json.dumps(sorted(pids)), flush=True)\n"
        "os._exit(0)  # no close(), no atexit: the workers only see their stdin close\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([TESTS_DIR, REPO_ROOT])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    pids = json.loads(done.stdout)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(running(pid) for pid in pids):
        time.sleep(0.05)
    assert not any(running(pid) for pid in pids)


def test_forked_child_starts_its_own_workers(pool):
    parent_workers = worker_pids(pool)
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child
        try:
            os.close(read_fd)
            values = [r.value for r in pool.map("support.pool_targets:square", [(i,) for i in range(10)], timeout=30)]
            report = {"values": values, "pids": sorted(worker_pids(pool))}
            pool.close()
            os.write(write_fd, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as reader:
        data = reader.read()
    os.waitpid(child, 0)
    report = json.loads(data)
    assert report["values"] == [i * i for i in range(10)]
    assert set(report["pids"]).isdisjoint(parent_workers)
    for pid in parent_workers:  # the parent's workers were not touched
        os.kill(pid, 0)
    again = pool.map("support.pool_targets:square", [(i,) for i in range(10)], timeout=30)
    assert [r.value for r in again] == report["values"]
    assert pool.stats["restarts"] == 0


def test_pickled_pool_starts_its_own_workers(pool):
    original = worker_pids(pool)
    with pickle.loads(pickle.dumps(pool)) as copy:
        assert copy.stats["items"] == 0
        results = copy.map("support.pool_targets:square", [(i,) for i in range(5)], timeout=30)
        assert [r.value for r in results] == [0, 1, 4, 9, 16]
        assert worker_pids(copy).isdisjoint(original)


@pytest.mark.parametrize("workers", [0, -1, 1.5, "2", None])
def test_bad_workers_raise(workers):
    with pytest.raises(ValueError, match="workers"):
        WorkerPool(workers)


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), None])
def test_bad_timeout_raises(timeout):
    pool = WorkerPool(1)
    with pytest.raises(ValueError, match="timeout"):
        pool.map("support.pool_targets:square", [(1,)], timeout=timeout)
    with pytest.raises(ValueError, match="func"):
        pool.map("support.pool_targets.square", [(1,)], timeout=1)
    pool.close()


def test_close_is_idempotent_and_leaves_no_children():
    before = child_pids()
    pool = WorkerPool(2)
    assert pool.map(BEHAVE, [("sleep", 0)], timeout=0.3)[0].status == "timeout"  # leaves a replacement starting
    workers = child_pids() - before
    assert len(workers) == 2
    pool.close()
    pool.close()
    assert child_pids() <= before
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(RuntimeError, match="closed"):
        pool.map("support.pool_targets:square", [(1,)], timeout=1)
