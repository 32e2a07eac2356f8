"""Page files on disk: atomic writes, and a writer thread so creating files overlaps rendering.

Creating a file cost 0.1 to 0.9 ms of kernel time on the shared disk we benchmark on (ext4 in
a VM; the rest of the write is cheap), about as much as rendering a page. ``PageWriter`` hands
finished pages to one background thread (the system calls release the GIL) while the caller
renders the next pair. At most ``PENDING`` pairs wait, so memory stays bounded; the first
failed write is raised in the caller, at the latest by ``close``.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

PAGE_MODE = 0o644  # pages are published: readable by the web server, not only by us
PENDING = 64  # pairs rendered but not yet on disk
_names = itertools.count()


def _temp_fd(path: Path) -> tuple[int, Path]:
    """A new file next to ``path``: a fixed name per process and call, without ``mkstemp``'s
    random names; ``mkstemp`` only when that name is taken (a stale file of a dead process)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{next(_names)}.tmp")
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        return os.open(tmp, flags, PAGE_MODE), tmp
    except FileExistsError:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        return fd, Path(name)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8, as is) to ``path``: a temp file in the same folder, then rename."""
    data = memoryview(text.encode("utf-8"))
    fd, tmp = _temp_fd(path)
    try:
        try:
            os.fchmod(fd, PAGE_MODE)  # whatever the umask
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_all(pages: Sequence[tuple[Path, str]]) -> None:
    for path, text in pages:
        write_atomic(path, text)


class PageWriter:
    """Writes batches of pages in one background thread, in order; use as a context manager."""

    def __init__(self, pending: int = PENDING) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="page-writer")
        self._waiting: deque[Future[None]] = deque()
        self._pending = pending

    def write(self, pages: Sequence[tuple[Path, str]]) -> None:
        """Queue ``pages``; waits for the oldest batch when too many are queued."""
        while self._waiting and (len(self._waiting) >= self._pending or self._waiting[0].done()):
            self._waiting.popleft().result()  # raises that batch's error
        self._waiting.append(self._pool.submit(_write_all, list(pages)))

    def close(self) -> None:
        """Wait until every queued page is on disk; raise the first error."""
        try:
            while self._waiting:
                self._waiting.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> PageWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is None:
            self.close()
        else:  # the caller failed: stop, let queued writes that already started finish
            self._pool.shutdown(wait=True, cancel_futures=True)
