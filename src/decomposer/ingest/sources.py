"""Load documentation from files, folders and http(s) URLs as clean, stored-as-is text.

The text returned here is what gets stored and chunked, and evidence quotes are located in
it by character offsets, so conversion happens exactly once, here. Every input is checked
before anything is returned: a bad path or URL stops the whole load with an ``InputError``
that names it, instead of storing half a tool's documentation.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

import httpx
from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning, Tag, XMLParsedAsHTMLWarning
from markdownify import ATX, MarkdownConverter

from decomposer.core.errors import InputError
from decomposer.ingest.chunks import fence_mask, heading_of, split_lines

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
_USER_AGENT = "decomposer/0.1 (+documentation ingest)"
_MAX_TITLE = 200
_MAX_TAG_LINES = 20
_DROPPED_HTML = ("head", "title", "script", "style", "nav", "footer", "noscript", "template", "svg")
_HTML_MIME = frozenset({"text/html", "application/xhtml+xml"})
_MARKUP_MIME = frozenset({"text/markdown", "text/x-markdown"})
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)^(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S | re.M)
_YAML_KEY = re.compile(r"[\w-]+[ \t]*:")
_FRONT_TITLE = re.compile(r"^title:[ \t]*(.*?)[ \t]*$", re.M)
_ESM_LINE = re.compile(
    r"(?:import\s+(?:[\w*${}\s,]+\s+from\s+)?['\"{]|import\s*\{"
    r"|export\s+(?:const|let|var|function|async|class|default|\{|\*))"
)
_TAG = r"</?[A-Za-z][\w.:-]*(?:\s[^<>]*)?/?>"
_TAG_RE = re.compile(_TAG)
_JSX_TAG = re.compile(r"[ \t]*<(?:[A-Z][\w.]*[\s/>]|[a-z][\w-]*\s[^<>]*=\{)")
_TAG_ONLY = re.compile(rf"[ \t]*(?:{_TAG}[ \t]*)+\n?\Z")
_TAG_START = re.compile(r"[ \t]*<[A-Za-z][\w.:-]*(?:\s[^<>]*)?\n?\Z")
_TAG_NAME = re.compile(r"</?[A-Z]")
_COMPONENT_TITLE = re.compile(r"""([ \t]*)<[A-Z][\w.]*\s[^<>]*?\btitle=(["'])(.*?)\2""")
_JSX_COMMENT = re.compile(r"[ \t]*\{/\*.*\*/\}[ \t]*\n?\Z")


@dataclass(frozen=True, slots=True)
class SourceDocument:
    """One page of documentation as stored: converted text plus where it came from."""

    source: str
    title: str
    text: str
    content_hash: str
    media_type: str


@dataclass(frozen=True, slots=True)
class _File:
    path: Path
    label: str


@dataclass(frozen=True, slots=True)
class _Url:
    url: str


_Target = _File | _Url


def load_sources(
    inputs: Sequence[str], *, http_client: httpx.Client | None = None
) -> tuple[list[SourceDocument], list[str]]:
    """Load every input (file, folder or http(s) URL) or raise ``InputError`` for the first bad one.

    Paths and URL syntax are checked for all inputs before any file is read or URL fetched.
    Returns the documents in input order (folders walked in sorted order) and notes for the
    user about what was skipped.
    """
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
    with _client_for(targets, http_client) as client:
        for target in targets:
            document = _load(target, client)
            if document.source in seen:
                notes.append(f"ignored {document.source}: given more than once")
                continue
            seen.add(document.source)
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
        return [_File(path, text)], []
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
    files, skipped = _walk(folder)
    if not files:
        raise InputError(f"{label}: no supported files ({_SUPPORTED_LIST}) in this folder")
    notes = []
    if skipped:
        plural = "s" if skipped != 1 else ""
        notes.append(f"skipped {skipped} file{plural} with unsupported extensions in {label}")
    return [_File(path, path.as_posix()) for path in files], notes


def _walk(folder: Path) -> tuple[list[Path], int]:
    """Supported files under ``folder`` in sorted order, skipping hidden files and folders."""
    found: list[Path] = []
    skipped = 0
    for directory, subdirectories, names in os.walk(folder):
        subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
        for name in names:
            if name.startswith("."):
                continue
            if Path(name).suffix.lower() in MEDIA_TYPES:
                found.append(Path(directory, name))
            else:
                skipped += 1
    return sorted(found, key=lambda path: path.relative_to(folder).parts), skipped


def _media_type_of(path: Path, label: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in MEDIA_TYPES:
        kind = f"{suffix!r}" if suffix else "(no extension)"
        raise InputError(f"{label}: unsupported file type {kind} (supported: {_SUPPORTED_LIST})")
    return MEDIA_TYPES[suffix]


def _client_for(
    targets: Sequence[_Target], client: httpx.Client | None
) -> AbstractContextManager[httpx.Client | None]:
    """The caller's client, or a fresh one closed after use when there are URLs to fetch."""
    if client is not None or not any(isinstance(target, _Url) for target in targets):
        return nullcontext(client)
    return httpx.Client(
        timeout=_FETCH_TIMEOUT, follow_redirects=True, headers={"User-Agent": _USER_AGENT}
    )


def _load(target: _Target, client: httpx.Client | None) -> SourceDocument:
    if isinstance(target, _File):
        return _load_file(target)
    assert client is not None
    return _fetch(client, target.url)


def _load_file(target: _File) -> SourceDocument:
    media_type = _media_type_of(target.path, target.label)
    try:
        data = target.path.read_bytes()
    except OSError as exc:
        raise InputError(f"{target.label}: cannot read ({exc.strerror or exc})") from exc
    if not data.strip():
        raise InputError(f"{target.label}: file is empty")
    text = _decode(data, "utf-8", target.label)
    source = target.path.resolve().as_posix()
    fallback = _fallback_title(text, media_type, target.path.stem)
    return _document(source, media_type, text, target.label, fallback)


def _fetch(client: httpx.Client, url: str) -> SourceDocument:
    try:
        response = client.get(url)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise InputError(f"{url}: could not fetch ({_describe(exc)})") from exc
    if not response.is_success:
        reason = f"{response.status_code} {response.reason_phrase}".strip()
        raise InputError(f"{url}: HTTP {reason}")
    media_type = _url_media_type(url, response.headers.get("content-type", ""))
    if not response.content.strip():
        raise InputError(f"{url}: response body is empty")
    text = _decode(response.content, response.charset_encoding or "utf-8", url)
    fallback = _fallback_title(text, media_type, _url_stem(url))
    return _document(url, media_type, text, url, fallback)


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
    source: str, media_type: str, text: str, label: str, fallback_title: str
) -> SourceDocument:
    converted, declared_title = _convert(text, media_type)
    if not converted.strip():
        raise InputError(f"{label}: no text left after converting it ({media_type})")
    title = _title(converted, declared_title, fallback_title)
    digest = hashlib.sha256(converted.encode("utf-8")).hexdigest()
    return SourceDocument(source, title, converted, digest, media_type)


def _convert(text: str, media_type: str) -> tuple[str, str | None]:
    """Converted text and the title its front matter declares, if any."""
    if media_type == "text/html":
        return html_to_markdown(text), None
    if media_type == "text/plain":
        return text, None
    front, body = split_front_matter(text)
    title = _front_title(front)
    if media_type == "text/mdx" or _looks_like_mdx(body):
        return clean_mdx(body), title
    return body, title


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


def split_front_matter(text: str) -> tuple[str | None, str]:
    """Split a leading YAML front-matter block off; blank lines after it go with it.

    The block must open with a ``key:`` line, so a document that merely starts with a
    ``---`` rule keeps its text.
    """
    match = _FRONT_MATTER.match(text)
    if match is None or not _YAML_KEY.match(match.group(1).lstrip()):
        return None, text
    return match.group(1), text[match.end() :].lstrip("\n")


def _front_title(front: str | None) -> str | None:
    match = _FRONT_TITLE.search(front or "")
    if match is None:
        return None
    value = match.group(1)
    if value[:1] in ("|", ">"):
        return None
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return value.strip() or None


def _looks_like_mdx(body: str) -> bool:
    """Docusaurus compiles ``.md`` as MDX: ESM lines or JSX tags give such files away."""
    lines = split_lines(body)
    return any(
        not in_fence and (_ESM_LINE.match(line) or _JSX_TAG.match(line))
        for line, in_fence in zip(lines, fence_mask(lines), strict=True)
    )


def clean_mdx(body: str) -> str:
    """Drop MDX-only syntax (ESM lines, component tag lines) and keep the prose and code.

    Code fences are kept byte for byte; a line wrapped in tags keeps its inner text
    (``<Note>Text</Note>`` -> ``Text``); runs of blank lines left behind are collapsed.
    """
    lines = split_lines(body)
    fenced = fence_mask(lines)
    kept = _drop_mdx_lines(lines, fenced)
    return "".join(_collapse_blank_lines(kept)).rstrip() + "\n"


def _drop_mdx_lines(lines: Sequence[str], fenced: Sequence[bool]) -> list[tuple[str, bool]]:
    kept: list[tuple[str, bool]] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if fenced[index]:
            kept.append((line, True))
            index += 1
        elif _ESM_LINE.match(line):
            index = _end_of_statement(lines, fenced, index)
        elif _TAG_ONLY.match(line) or _JSX_COMMENT.match(line):
            kept.extend((title, False) for title in _component_title(line))
            index += 1
        elif _TAG_START.match(line) and (end := _end_of_tag(lines, fenced, index)):
            index = end
        else:
            kept.append((_unwrap_tags(line), False))
            index += 1
    return kept


def _component_title(line: str) -> list[str]:
    """The ``title`` of an opening component tag (``<Accordion title='Parallel calls'>``)."""
    match = _COMPONENT_TITLE.match(line)
    return [f"{match.group(1)}{match.group(3)}\n"] if match and match.group(3).strip() else []


def _end_of_statement(lines: Sequence[str], fenced: Sequence[bool], index: int) -> int:
    """Index after an import/export statement, following unbalanced brackets to their close."""
    depth = 0
    for position in range(index, len(lines)):
        if fenced[position]:
            return position
        line = lines[position]
        depth += sum(line.count(c) for c in "([{") - sum(line.count(c) for c in ")]}")
        if depth <= 0:
            return position + 1
    return index + 1


def _end_of_tag(lines: Sequence[str], fenced: Sequence[bool], index: int) -> int | None:
    """Index after a tag opened on ``lines[index]`` and closed by a later line ending in '>'."""
    for position in range(index + 1, min(len(lines), index + _MAX_TAG_LINES)):
        line = lines[position]
        if fenced[position] or "<" in line:
            return None
        if line.rstrip().endswith(">"):
            return position + 1
    return None


def _unwrap_tags(line: str) -> str:
    """Strip tags wrapping a line, or component (capitalised) tags at either end of it."""
    body = line.rstrip("\n")
    tags = list(_TAG_RE.finditer(body))
    if not tags:
        return line
    leading = _leading_run(body, tags)
    trailing = _trailing_run(body, tags)
    wrapped = bool(leading) and bool(trailing) and leading[-1].end() <= trailing[-1].start()
    start = leading[-1].end() if leading and (wrapped or _all_components(leading)) else 0
    end = trailing[-1].start() if trailing and (wrapped or _all_components(trailing)) else None
    if start == 0 and end is None:
        return line
    indent = body[: len(body) - len(body.lstrip(" \t"))]
    return indent + body[start:end].strip(" \t") + line[len(body) :]


def _leading_run(body: str, tags: Sequence[re.Match[str]]) -> list[re.Match[str]]:
    run: list[re.Match[str]] = []
    position = len(body) - len(body.lstrip(" \t"))
    for tag in tags:
        if tag.start() != position:
            break
        run.append(tag)
        position = len(body) - len(body[tag.end() :].lstrip(" \t"))
    return run


def _trailing_run(body: str, tags: Sequence[re.Match[str]]) -> list[re.Match[str]]:
    run: list[re.Match[str]] = []
    position = len(body.rstrip(" \t"))
    for tag in reversed(tags):
        if tag.end() != position:
            break
        run.append(tag)
        position = len(body[: tag.start()].rstrip(" \t"))
    return run


def _all_components(tags: Sequence[re.Match[str]]) -> bool:
    return all(_TAG_NAME.match(tag.group()) is not None for tag in tags)


def _collapse_blank_lines(lines: Sequence[tuple[str, bool]]) -> Iterator[str]:
    """Yield lines, dropping leading blanks and repeats of a blank line outside code fences."""
    previous_blank = True
    for line, in_fence in lines:
        blank = not in_fence and not line.strip()
        if blank and previous_blank:
            continue
        previous_blank = blank
        yield line


def html_to_markdown(html: str) -> str:
    """Markdown with ATX headings for an HTML page.

    Page chrome (head, scripts, styles, navigation, footers) is dropped and, where the page
    marks it, only the <main> (or single <article>) content is kept.
    """
    soup = _parse_html(html)
    for element in soup.find_all(_DROPPED_HTML):
        element.decompose()
    converter = MarkdownConverter(
        heading_style=ATX,
        bullets="-",
        escape_asterisks=False,
        escape_underscores=False,
        code_language_callback=_code_language,
    )
    markdown: str = converter.convert_soup(_main_content(soup))
    lines = split_lines(markdown.strip("\n") + "\n")
    return "".join(_collapse_blank_lines(list(zip(lines, fence_mask(lines), strict=True))))


def html_title(html: str) -> str | None:
    """Text of the page's <title>, the title of last resort for an HTML page."""
    title = _parse_html(html).title
    return (title.get_text(" ", strip=True) or None) if title else None


def _parse_html(html: str) -> BeautifulSoup:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        return BeautifulSoup(html, "html.parser")


def _main_content(soup: BeautifulSoup) -> Tag:
    main = soup.find("main")
    if isinstance(main, Tag):
        return main
    articles = soup.find_all("article")
    if len(articles) == 1 and isinstance(articles[0], Tag):
        return articles[0]
    return soup


def _code_language(pre: Tag) -> str:
    """Fence info string from a ``language-xxx`` class on <pre> or its <code>."""
    code = pre.find("code")
    for element in (pre, code):
        if not isinstance(element, Tag):
            continue
        classes = element.get("class")
        names = classes.split() if isinstance(classes, str) else list(classes or [])
        for name in names:
            if name.startswith(("language-", "lang-")):
                return str(name.split("-", 1)[1])
    return ""
