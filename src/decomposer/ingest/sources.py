"""Load documentation from files, folders and http(s) URLs as clean, stored-as-is text.

The text returned here is what gets stored and chunked, and evidence quotes are located in it
by character offsets, so conversion (``convert``) happens exactly once, while loading. Every
input is checked before anything is returned: a bad path or URL stops the whole load with an
``InputError`` that names it, instead of storing half a tool's documentation.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO
from urllib.parse import urlsplit

import httpx

from decomposer.core.config import DEFAULT_FETCH_DEADLINE, DEFAULT_MAX_DOCUMENT_MB
from decomposer.core.errors import InputError
from decomposer.ingest.chunks import fence_mask, heading_of, split_lines
from decomposer.ingest.convert import convert, html_title

MEDIA_TYPES: Mapping[str, str] = MappingProxyType(
    {
        ".htm": "text/html",
        ".html": "text/html",
        ".markdown": "text/markdown",
        ".md": "text/markdown",
        ".mdx": "text/mdx",
        ".txt": "text/plain",
    }
)
_SUPPORTED_LIST = ", ".join(MEDIA_TYPES)

_FETCH_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
DEFAULT_MAX_BYTES = int(DEFAULT_MAX_DOCUMENT_MB * 1024 * 1024)
"""Largest file or response body read; documentation pages are far smaller, a bomb is not.
``DEFAULT_FETCH_DEADLINE`` (60 s) bounds a whole fetch: httpx's timeouts bound each read only."""
_READ_SIZE = 64 * 1024
_USER_AGENT = "decomposer/0.1 (+documentation ingest)"
_MAX_TITLE = 200
_HTML_MIME = frozenset({"text/html", "application/xhtml+xml"})
_MARKUP_MIME = frozenset({"text/markdown", "text/x-markdown"})
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@dataclass(frozen=True, slots=True)
class SourceDocument:
    """One page of documentation as stored: converted text plus where it came from."""

    source: str
    title: str
    text: str
    content_hash: str
    media_type: str
    key: str = ""
    """Stable identity within a tool: the URL, or the path below the ingested folder's parent
    (``docs/a.md`` for ``a.md`` in an ingested ``docs/``), or a single file's name. It does not
    depend on where the folder is, so a moved folder matches its stored documents."""


@dataclass(frozen=True, slots=True)
class _File:
    path: Path
    label: str
    key: str


@dataclass(frozen=True, slots=True)
class _Url:
    url: str


_Target = _File | _Url


@dataclass(frozen=True, slots=True)
class _Limits:
    max_bytes: int
    deadline: float
    clock: Callable[[], float]


def load_sources(
    inputs: Sequence[str],
    *,
    http_client: httpx.Client | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    fetch_deadline: float = DEFAULT_FETCH_DEADLINE,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[list[SourceDocument], list[str]]:
    """Load every input (file, folder or http(s) URL) or raise ``InputError`` for the first bad one.

    Paths and URL syntax are checked for all inputs before any file is read or URL fetched.
    Returns the documents in input order (folders walked in sorted order) and notes for the
    user about what was skipped. No file or body larger than ``max_bytes`` is read, and no
    URL may take longer than ``fetch_deadline`` seconds (measured with ``clock``) in all.
    """
    if max_bytes < 1:
        raise InputError(f"the document size cap must be at least 1 byte, got {max_bytes}")
    if not fetch_deadline > 0:
        raise InputError(f"the fetch deadline must be positive, got {fetch_deadline} s")
    limits = _Limits(max_bytes, fetch_deadline, clock)
    if not inputs:
        raise InputError("no inputs given", hint="pass files, folders or http(s) URLs")
    targets: list[_Target] = []
    notes: list[str] = []
    for raw in inputs:
        found, note = _resolve(raw)
        targets.extend(found)
        notes.extend(note)
    documents: list[SourceDocument] = []
    seen: set[str] = set()
    keys: dict[str, str] = {}
    with _client_for(targets, http_client, fetch_deadline) as client:
        for target in targets:
            document = _load(target, client, limits)
            if document.source in seen:
                notes.append(f"ignored {document.source}: given more than once")
                continue
            if (other := keys.get(document.key)) is not None:
                raise InputError(
                    f"{other} and {document.source} would both be stored as {document.key!r}",
                    hint="ingest one of them in another command, or rename one folder",
                )
            seen.add(document.source)
            keys[document.key] = document.source
            documents.append(document)
    return documents, notes


def _resolve(raw: str) -> tuple[list[_Target], list[str]]:
    """Check one input without reading it; a folder expands to its supported files."""
    text = raw.strip()
    if not text:
        raise InputError("empty input: expected a file, folder or http(s) URL")
    if _looks_like_url(text):
        return [_Url(_checked_url(text))], []
    path = Path(text).expanduser()
    if path.is_dir():
        return _resolve_folder(path, text)
    if path.is_file():
        _media_type_of(path, text)
        return [_File(path, text, path.resolve().name)], []
    if path.exists():
        raise InputError(f"{text}: not a regular file or folder")
    raise InputError(f"{text}: no such file or folder")


def _looks_like_url(text: str) -> bool:
    return "://" in text or text.lower().startswith(("http:", "https:"))


def _checked_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as exc:
        raise InputError(f"{url}: malformed URL ({exc})") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise InputError(f"{url}: unsupported URL scheme {parts.scheme!r} (use http or https)")
    if not parts.hostname or any(char.isspace() for char in url):
        raise InputError(f"{url}: malformed URL (expected http(s)://host/path)")
    return url


def _resolve_folder(folder: Path, label: str) -> tuple[list[_Target], list[str]]:
    files, skipped, special = _walk(folder)
    notes = []
    if special:
        listed = ", ".join(path.relative_to(folder).as_posix() for path in special[:3])
        more = f" and {len(special) - 3} more" if len(special) > 3 else ""
        notes.append(
            f"skipped {listed}{more} in {label}: not a regular file (FIFO, socket or device)"
        )
    if not files:
        raise InputError(f"{label}: no supported files ({_SUPPORTED_LIST}) in this folder")
    if skipped:
        plural = "s" if skipped != 1 else ""
        notes.append(f"skipped {skipped} file{plural} with unsupported extensions in {label}")
    root = folder.resolve()
    keys = [f"{root.name}/{p.relative_to(folder).as_posix()}" for p in files]
    return [_File(p, p.as_posix(), key) for p, key in zip(files, keys, strict=True)], notes


def _walk(folder: Path) -> tuple[list[Path], int, list[Path]]:
    """Supported files under ``folder`` in sorted order, skipping hidden files and folders.

    Also returns the count of unsupported files and the supported-looking names that are not
    regular files: reading a FIFO named ``x.md`` would block for ever.
    """
    found: list[Path] = []
    special: list[Path] = []
    skipped = 0
    for directory, subdirectories, names in os.walk(folder):
        subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
        for name in names:
            if name.startswith("."):
                continue
            path = Path(directory, name)
            if path.suffix.lower() not in MEDIA_TYPES:
                skipped += 1
            elif path.is_file():
                found.append(path)
            else:
                special.append(path)

    def order(path: Path) -> tuple[str, ...]:
        return path.relative_to(folder).parts

    return sorted(found, key=order), skipped, sorted(special, key=order)


def _media_type_of(path: Path, label: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in MEDIA_TYPES:
        kind = f"{suffix!r}" if suffix else "(no extension)"
        raise InputError(f"{label}: unsupported file type {kind} (supported: {_SUPPORTED_LIST})")
    return MEDIA_TYPES[suffix]


def _client_for(
    targets: Sequence[_Target], client: httpx.Client | None, deadline: float
) -> AbstractContextManager[httpx.Client | None]:
    """The caller's client, or a fresh one closed after use when there are URLs to fetch.

    No single wait may outlast the whole fetch's deadline.
    """
    if client is not None or not any(isinstance(target, _Url) for target in targets):
        return nullcontext(client)
    timeout = httpx.Timeout(
        min(_FETCH_TIMEOUT.read or deadline, deadline),
        connect=min(_FETCH_TIMEOUT.connect or deadline, deadline),
    )
    return httpx.Client(timeout=timeout, follow_redirects=True, headers={"User-Agent": _USER_AGENT})


def _load(target: _Target, client: httpx.Client | None, limits: _Limits) -> SourceDocument:
    if isinstance(target, _File):
        return _load_file(target, limits.max_bytes)
    assert client is not None
    return _fetch(client, target.url, limits)


def _read_file(target: _File, max_bytes: int) -> bytes:
    """The file's bytes, refusing anything but a regular file and anything over ``max_bytes``.

    Opened non-blocking and checked after opening, so a FIFO swapped in after the folder walk
    cannot block, and at most ``max_bytes + 1`` bytes are read even if the file grows.
    """
    try:
        fd = os.open(target.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise InputError(f"{target.label}: cannot read ({exc.strerror or exc})") from exc
    with os.fdopen(fd, "rb") as handle:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise InputError(f"{target.label}: not a regular file (FIFO, socket or device)")
        try:
            data = _read_up_to(handle, max_bytes + 1, status.st_size)
        except OSError as exc:
            raise InputError(f"{target.label}: cannot read ({exc.strerror or exc})") from exc
    if len(data) > max_bytes:
        raise InputError(f"{target.label}: file is larger than the {_size(max_bytes)} cap")
    return data


def _read_up_to(handle: BinaryIO, limit: int, expected: int) -> bytes:
    """At most ``limit`` bytes, allocating for the file's size rather than for the limit.

    A file that grows after ``fstat`` is read on in small pieces up to the limit.
    """
    pieces = [handle.read(min(expected + 1, limit))]
    total = len(pieces[0])
    while pieces[-1] and total < limit:
        pieces.append(handle.read(min(_READ_SIZE, limit - total)))
        total += len(pieces[-1])
    return pieces[0] if len(pieces) <= 2 and not pieces[-1] else b"".join(pieces)


def _size(count: int) -> str:
    """A byte count for messages: whole MB/KB where exact enough, else bytes."""
    for unit, size in (("MB", 1024 * 1024), ("KB", 1024)):
        if count >= size:
            value = count / size
            return f"{value:g} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{count} bytes"


def _load_file(target: _File, max_bytes: int) -> SourceDocument:
    media_type = _media_type_of(target.path, target.label)
    data = _read_file(target, max_bytes)
    if not data.strip():
        raise InputError(f"{target.label}: file is empty")
    text = _decode(data, "utf-8", target.label)
    source = target.path.resolve().as_posix()
    fallback = _fallback_title(text, media_type, target.path.stem)
    return _document(source, media_type, text, target.label, fallback, key=target.key)


def _fetch(client: httpx.Client, url: str, limits: _Limits) -> SourceDocument:
    started = limits.clock()
    try:
        with client.stream("GET", url) as response:
            if not response.is_success:
                reason = f"{response.status_code} {response.reason_phrase}".strip()
                raise InputError(f"{url}: HTTP {reason}")
            media_type = _url_media_type(url, response.headers.get("content-type", ""))
            _check_length(url, response, limits.max_bytes)
            body = _read_body(url, response, limits, started)
            encoding = response.charset_encoding or "utf-8"
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise InputError(f"{url}: could not fetch ({_describe(exc)})") from exc
    if not body.strip():
        raise InputError(f"{url}: response body is empty")
    text = _decode(body, encoding, url)
    fallback = _fallback_title(text, media_type, _url_stem(url))
    return _document(url, media_type, text, url, fallback)


def _check_length(url: str, response: httpx.Response, max_bytes: int) -> None:
    """Refuse a body the server says is over the cap before reading any of it."""
    declared = response.headers.get("content-length", "").strip()
    if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise InputError(f"{url}: response is larger than the {_size(max_bytes)} cap")


def _read_body(url: str, response: httpx.Response, limits: _Limits, started: float) -> bytes:
    """The decoded body, read piece by piece so the size cap and the deadline hold mid-stream.

    The cap counts decoded bytes, so a small gzip body cannot expand past it.
    """
    pieces: list[bytes] = []
    size = 0
    _check_deadline(url, limits, started)
    for piece in response.iter_bytes():
        size += len(piece)
        if size > limits.max_bytes:
            raise InputError(f"{url}: response is larger than the {_size(limits.max_bytes)} cap")
        _check_deadline(url, limits, started)
        pieces.append(piece)
    return b"".join(pieces)


def _check_deadline(url: str, limits: _Limits, started: float) -> None:
    if limits.clock() - started > limits.deadline:
        raise InputError(
            f"{url}: not fully received within the {limits.deadline:g} s fetch deadline",
            hint="the server is too slow; try again later or save the page to a file",
        )


def _fallback_title(text: str, media_type: str, stem: str) -> str:
    return (html_title(text) if media_type == "text/html" else None) or stem


def _describe(exc: Exception) -> str:
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _url_media_type(url: str, content_type: str) -> str:
    """HTML by content type first (a GitHub page for README.md is HTML), then by extension."""
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime in _HTML_MIME:
        return "text/html"
    if mime and not mime.startswith("text/") and mime != "application/octet-stream":
        raise InputError(
            f"{url}: unsupported content type {mime!r} (expected HTML, Markdown or text)"
        )
    suffix = Path(urlsplit(url).path).suffix.lower()
    if suffix in MEDIA_TYPES:
        return MEDIA_TYPES[suffix]
    return "text/markdown" if mime in _MARKUP_MIME else "text/plain"


def _url_stem(url: str) -> str:
    parts = urlsplit(url)
    segments = [segment for segment in parts.path.split("/") if segment]
    return Path(segments[-1]).stem if segments else parts.hostname or url


def _decode(data: bytes, encoding: str, label: str) -> str:
    """Bytes to text with ``\\n`` line ends; binary and mis-encoded input is refused."""
    if data.startswith(_UTF16_BOMS):
        raise InputError(f"{label}: not UTF-8 text (UTF-16 byte-order mark)", hint="save as UTF-8")
    if b"\0" in data:
        raise InputError(f"{label}: binary content (NUL bytes), not a text document")
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        text = data.decode(codec)
    except LookupError:
        text = _decode(data, "utf-8", label)
    except UnicodeDecodeError as exc:
        where = f"byte 0x{data[exc.start]:02x} at offset {exc.start}"
        raise InputError(
            f"{label}: not valid {encoding} text ({where})", hint="save it as UTF-8"
        ) from exc
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _document(
    source: str, media_type: str, text: str, label: str, fallback_title: str, key: str = ""
) -> SourceDocument:
    try:
        converted, declared_title = convert(text, media_type)
    except InputError as exc:
        raise InputError(f"{label}: {exc.message}", hint=exc.hint) from None
    if not converted.strip():
        raise InputError(f"{label}: no text left after converting it ({media_type})")
    title = _title(converted, declared_title, fallback_title)
    digest = hashlib.sha256(converted.encode("utf-8")).hexdigest()
    return SourceDocument(source, title, converted, digest, media_type, key or source)


def _title(text: str, declared: str | None, fallback: str) -> str:
    """Front-matter title, else the first heading, else the <title> or file name stem."""
    title = declared or _first_heading(text) or fallback
    title = " ".join(title.split())
    return title if len(title) <= _MAX_TITLE else title[: _MAX_TITLE - 1].rstrip() + "…"


def _first_heading(text: str) -> str | None:
    lines = split_lines(text)
    for line, in_fence in zip(lines, fence_mask(lines), strict=True):
        heading = None if in_fence else heading_of(line)
        if heading is not None and heading[1]:
            return heading[1]
    return None
