"""Run page jobs in forked worker processes, so a cold regeneration uses every core.

Rendering a page is CPU work in Python, so threads do not help. Forking after the snapshot and
every tool's side are built lets each child start with them in memory (shared copy-on-write)
instead of pickling them over; the parent's objects are frozen out of the garbage collector
first, so a child's collections neither scan nor copy them. Children touch no database
connection and leave with ``os._exit``, so nothing the parent holds is closed twice. Results
come back over a pipe as length-prefixed pickles.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import selectors
import signal
import struct
from collections.abc import Callable, Generator, Sequence
from typing import Any, TypeVar

from decomposer.core.errors import DecomposerError

Job = TypeVar("Job")
Result = Any  # whatever picklable value the job function returns
FRAME = struct.Struct("<Q")


def cpu_workers(limit: int = 4) -> int:
    """The cores this process may use, at most ``limit``."""
    return max(1, min(limit, len(os.sched_getaffinity(0))))


def run_forked(
    jobs: Sequence[Job], work: Callable[[Job], Result], workers: int
) -> Generator[Result, None, None]:
    """``work(job)`` for every job, spread over ``workers`` forked children; results are yielded
    as they arrive, in no particular order. A failing job stops its child, and the parent raises
    once every child has ended.

    Each child takes a contiguous share of the jobs: pages of neighbouring pairs share tools,
    whose sections and token counts a child then builds once instead of every child building
    them for every tool."""
    readers: list[int] = []
    pids: list[int] = []
    count = min(workers, len(jobs))
    collecting = False
    gc.freeze()  # the parent's objects leave every process's collections: no scans, no copies
    try:
        for index in range(count):
            read_fd, write_fd = os.pipe()
            readers.append(read_fd)
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child; its results are what tests check
                for fd in readers:
                    os.close(fd)
                share = jobs[index * len(jobs) // count : (index + 1) * len(jobs) // count]
                _child(share, work, write_fd)
            os.close(write_fd)
            pids.append(pid)
        collecting = True
        errors = yield from _collect(readers)
    except BaseException:
        for pid in pids:  # this process failed (e.g. writing a page): stop the children
            _kill(pid)
        if not collecting:
            for fd in readers:
                os.close(fd)
        raise
    finally:
        gc.unfreeze()
        failed = [pid for pid in pids if os.waitpid(pid, 0)[1] != 0]
    if errors or failed:
        raise DecomposerError(
            f"a page worker failed: {errors[0] if errors else 'it exited without a report'}"
        )


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _frame(message: tuple[str, Any]) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return FRAME.pack(len(data)) + data


def _child(jobs: Sequence[Job], work: Callable[[Job], Result], write_fd: int) -> None:
    code = 0
    out = os.fdopen(write_fd, "wb")
    try:
        for job in jobs:
            out.write(_frame(("result", work(job))))
            out.flush()
    except BaseException as exc:  # reported to the parent, which raises
        out.write(_frame(("error", f"{type(exc).__name__}: {exc}")))
        code = 1
    finally:
        try:
            out.flush()
        finally:
            os._exit(code)


def _collect(readers: list[int]) -> Generator[Result, None, list[str]]:
    """Yield results from every child until all pipes close; return the errors reported."""
    errors: list[str] = []
    pending = {fd: bytearray() for fd in readers}
    with selectors.DefaultSelector() as selector:
        for fd in readers:
            selector.register(fd, selectors.EVENT_READ)
        try:
            while pending:
                for key, _ in selector.select():
                    fd = int(key.fd)
                    chunk = os.read(fd, 1 << 20)
                    if not chunk:
                        selector.unregister(fd)
                        os.close(fd)
                        del pending[fd]
                        continue
                    buffer = pending[fd]
                    buffer += chunk
                    for kind, value in _frames(buffer):
                        if kind == "error":
                            errors.append(value)
                        else:
                            yield value
        finally:
            for fd in pending:
                os.close(fd)
    return errors


def _frames(buffer: bytearray) -> list[tuple[str, Any]]:
    """Whole frames at the start of ``buffer``, removed from it; a partial frame stays."""
    found: list[tuple[str, Any]] = []
    start = 0
    while len(buffer) - start >= FRAME.size:
        (size,) = FRAME.unpack_from(buffer, start)
        end = start + FRAME.size + size
        if end > len(buffer):
            break
        found.append(pickle.loads(buffer[start + FRAME.size : end]))  # our own child's
        start = end
    del buffer[:start]
    return found
