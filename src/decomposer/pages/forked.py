"""Run page jobs in forked worker processes, so a cold regeneration uses every core.

Rendering and writing a page is CPU work in Python plus kernel time for the file, so threads
do not help. Forking after the snapshot and every tool's side are built lets each child start
with them in memory (shared copy-on-write) instead of pickling them over. Children touch no
database connection and leave with ``os._exit``, so nothing the parent holds is closed twice.
Results come back as one JSON line per job; the parent keeps the manifest.
"""

from __future__ import annotations

import json
import os
import selectors
from collections.abc import Callable, Generator, Sequence
from typing import Any, TypeVar

from decomposer.core.errors import DecomposerError

Job = TypeVar("Job")
Result = Any  # whatever JSON the job function returns


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
    for index in range(count):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child; its results are what tests check
            os.close(read_fd)
            share = jobs[index * len(jobs) // count : (index + 1) * len(jobs) // count]
            _child(share, work, write_fd)
        os.close(write_fd)
        pids.append(pid)
        readers.append(read_fd)
    errors = yield from _collect(readers)
    failed = [pid for pid in pids if os.waitpid(pid, 0)[1] != 0]
    if errors or failed:
        raise DecomposerError(
            f"a page worker failed: {errors[0] if errors else 'it exited without a report'}"
        )


def _child(jobs: Sequence[Job], work: Callable[[Job], Result], write_fd: int) -> None:
    code = 0
    out = os.fdopen(write_fd, "w", encoding="utf-8")
    try:
        for job in jobs:
            out.write(json.dumps({"result": work(job)}) + "\n")
            out.flush()
    except BaseException as exc:  # reported to the parent, which raises
        out.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
        code = 1
    finally:
        try:
            out.flush()
        finally:
            os._exit(code)


def _collect(readers: list[int]) -> Generator[Result, None, list[str]]:
    """Yield results from every child until all pipes close; return the errors reported."""
    errors: list[str] = []
    pending = dict.fromkeys(readers, b"")
    with selectors.DefaultSelector() as selector:
        for fd in readers:
            selector.register(fd, selectors.EVENT_READ)
        while pending:
            for key, _ in selector.select():
                fd = int(key.fd)
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    selector.unregister(fd)
                    os.close(fd)
                    del pending[fd]
                    continue
                *lines, pending[fd] = (pending[fd] + chunk).split(b"\n")
                for line in lines:
                    message = json.loads(line)
                    if "error" in message:
                        errors.append(message["error"])
                    else:
                        yield message["result"]
    return errors
