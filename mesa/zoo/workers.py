"""Local worker processes for a zoo that live and die with it.

A zoo spreads its members over ``workers`` spawned processes. They must not outlive the zoo:
on Ctrl-C, on SIGTERM and on ``kill -9`` of the zoo's process, queued members are dropped at
once and running ones stop (their training resumes from its last checkpoint next time).

- The zoo's process kills its workers whenever it leaves :func:`run_in_workers` for any reason
  but the end of the work (an exception, Ctrl-C, SIGTERM turned into an exception by
  :func:`terminating_raises`).
- A worker also watches its parent: on Linux the kernel sends it SIGKILL when the parent dies
  (``PR_SET_PDEATHSIG``); elsewhere, and as a second guard, a thread checks every
  :data:`WATCH_SECONDS` whether its parent is still the one that started it.
- Workers ignore SIGINT: a Ctrl-C in the terminal reaches the whole process group, and the zoo's
  process decides what stops.

Each job's outcome comes back as ``(name, result, error)``: a :class:`~mesa.errors.MesaError`
or any other exception in a member is reported as that member's failure (its message), and a
worker that dies mid-job (killed, out of memory) fails its job and is replaced.

Inside :func:`growing`, a run may start more workers than it was given while it has jobs no
worker has taken: processes that share a machine (``bench_within_p``'s lanes) hand the workers
of one that has finished to those still running.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from multiprocessing import get_context
from typing import Any

#: How often a worker checks that its parent is alive, and the zoo checks on its workers.
WATCH_SECONDS = 0.5
#: How long idle workers get to exit by themselves once the work is done (killed after that):
#: a killed worker leaves its semaphores behind, and Python warns about them at shutdown.
END_SECONDS = 10.0

Job = tuple[str, tuple[Any, ...]]
OnDone = Callable[[str, Any, str | None], None]

#: Set by :func:`growing`: how many workers a run in this process may use now.
_capacity: Callable[[], int] | None = None


@contextlib.contextmanager
def growing(capacity: Callable[[], int]) -> Iterator[None]:
    """Inside the block, every :func:`run_in_workers` of this process may start more workers
    than it was given, up to ``capacity()`` (asked again every :data:`WATCH_SECONDS`), while
    jobs wait that no worker has taken. Workers are never taken away: a run that has more than
    ``capacity()`` keeps them until its jobs are done."""
    global _capacity
    old, _capacity = _capacity, capacity
    try:
        yield
    finally:
        _capacity = old


def may_grow() -> bool:
    """Whether runs in this process may grow (inside :func:`growing`)."""
    return _capacity is not None


def _wanted(workers: int) -> int:
    if _capacity is None:
        return workers
    try:
        return max(workers, int(_capacity()))
    except Exception:  # an unreadable capacity: keep what the run was given
        return workers


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as an interrupt so that every ``finally`` runs."""


@contextlib.contextmanager
def terminating_raises() -> Iterator[None]:
    """Inside the block, SIGTERM raises :class:`Terminated` (main thread only; elsewhere the
    block runs as it is)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_terminated(signum: int, frame: Any) -> None:
        raise Terminated()

    old = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            threading.Event().wait(WATCH_SECONDS)

    if os.getppid() != parent:  # the parent died before the guard was in place
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


def _worker_main(fn: Callable[..., Any], jobs: Any, results: Any, parent: int) -> None:
    from mesa.errors import print_warnings_on_one_line

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    print_warnings_on_one_line()
    while True:
        job = jobs.get()
        if job is None:
            return
        name, args = job
        results.put(("start", name, os.getpid()))
        try:
            results.put(("done", name, fn(*args)))
        except Exception as e:  # reported as the member's failure; the worker goes on
            from mesa.errors import MesaError

            message = str(e) if isinstance(e, MesaError) else f"{type(e).__name__}: {e}"
            if not isinstance(e, MesaError):
                traceback.print_exc()
            results.put(("error", name, message))


def run_in_workers(fn: Callable[..., Any], jobs: list[Job], workers: int, on_done: OnDone) -> None:
    """Run ``fn(*args)`` for every ``(name, args)`` job in up to ``workers`` spawned processes,
    calling ``on_done(name, result, error)`` in this process as each finishes."""
    ctx = get_context("spawn")
    job_queue, results = ctx.Queue(), ctx.Queue()
    for job in jobs:
        job_queue.put(job)
    n = min(workers, len(jobs))
    for _ in range(n):
        job_queue.put(None)

    def start() -> Any:
        p = ctx.Process(target=_worker_main, args=(fn, job_queue, results, os.getpid()))
        p.start()
        return p

    procs = [start() for _ in range(n)]
    running: dict[int, str] = {}  # worker pid -> job
    remaining = {name for name, _ in jobs}
    ended = False
    try:
        while remaining:
            untaken = len(remaining) - len(running)  # a job just taken may count: one spare
            if untaken > 0 and len(procs) < min(_wanted(workers), len(jobs)):
                job_queue.put(None)  # the new worker's end marker, behind every job
                procs.append(start())
            try:
                kind, name, value = results.get(timeout=WATCH_SECONDS)
            except queue.Empty:
                for i, p in enumerate(procs):
                    if p.exitcode not in (None, 0) and p.pid in running:
                        lost = running.pop(p.pid)
                        remaining.discard(lost)
                        on_done(lost, None, f"its worker died (exit code {p.exitcode})")
                        procs[i] = start()  # takes the end marker the dead worker left
                if not any(p.is_alive() for p in procs) and results.empty():
                    for name in sorted(remaining):
                        on_done(name, None, "no worker left to run it")
                    return
                continue
            if kind == "start":
                running[value] = name
                continue
            running = {pid: job for pid, job in running.items() if job != name}
            remaining.discard(name)
            on_done(name, value if kind == "done" else None, value if kind == "error" else None)
        ended = True
    finally:
        if ended:  # the work is done: idle workers take their end marker and exit cleanly
            for p in procs:
                p.join(timeout=END_SECONDS)
        for p in procs:  # interrupted (or a worker that did not end): killed at once
            if p.is_alive():
                p.kill()
        for p in procs:
            p.join()
        job_queue.close()
        results.close()
