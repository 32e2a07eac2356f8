"""The golden-set file format (TOML): loading it, and refusing a bad one with the place named.

A golden set lists, per tool and per source document, the capabilities a careful reader finds
in that document. Documents are identified the way ingest stores them: by their source key
(path relative to the tool's root, the folder that is ingested) and the sha256 of their text
*as ingest converts it* (``ingest.sources.load_sources``), so a label can never silently refer
to a page that has changed since it was labelled. Every must-quote is located in the document
with the extraction's own quote matcher (``extraction.grounding.find_quote``), so a quote is
accepted here exactly when it would be accepted as evidence, and its span is kept for scoring.

Layout (see docs/evals.md)::

    version = 1
    name = "demo"

    [[tool]]
    slug = "mistral-api"
    root = "../docs/mistral-api"      # relative to this file, or "corpus:mistral-api"

    [[tool.document]]
    source = "embeddings.md"
    sha256 = "…"

    [[tool.document.capability]]
    name = "Text embeddings"
    category = "embeddings"
    facts = ["1024 dimensions"]
    quotes = ["…verbatim text of the page…"]

``corpus:<path>`` roots are resolved against the ``corpus`` argument of ``load_golden``, so the
same file works wherever the vendor corpus sits on a machine.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from decomposer.core.errors import InputError
from decomposer.core.vocab import CATEGORIES, Category
from decomposer.extraction.grounding import MIN_QUOTE_CHARS, find_quote, normalise
from decomposer.ingest.sources import SourceDocument, load_sources

FORMAT_VERSION = 1
_GROUPED = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?"
_PLAIN = r"\d+(?:\.\d+)?"
_NUMBER = re.compile(f"{_GROUPED}|{_PLAIN}")
CORPUS_PREFIX = "corpus:"


# --- the file as written ---------------------------------------------------------------------


class _Raw(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RawCapability(_Raw):
    name: str = Field(min_length=1)
    category: str
    facts: list[str] = []
    quotes: list[str]


class RawDocument(_Raw):
    source: str = Field(min_length=1)
    sha256: str
    note: str = ""
    capability: list[RawCapability] = []


class RawTool(_Raw):
    slug: str = Field(min_length=1)
    root: str = Field(min_length=1)
    document: list[RawDocument] = []


class RawGolden(_Raw):
    version: int = FORMAT_VERSION
    name: str = Field(min_length=1)
    description: str = ""
    tool: list[RawTool] = Field(min_length=1)


# --- the validated set -------------------------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GoldenQuote(_Frozen):
    """A must-quote and where it was found in the stored text (score 100 = exact)."""

    text: str
    start: int
    end: int
    score: float


class GoldenCapability(_Frozen):
    name: str
    category: Category
    facts: tuple[str, ...]
    quotes: tuple[GoldenQuote, ...]


class GoldenDocument(_Frozen):
    source: str
    sha256: str
    title: str
    note: str
    capabilities: tuple[GoldenCapability, ...]


class GoldenTool(_Frozen):
    slug: str
    root: str
    """As written in the file (``corpus:…`` or a relative path)."""
    path: str
    """The resolved folder: what the eval command ingests for this tool."""
    documents: tuple[GoldenDocument, ...]
    unlisted: tuple[str, ...]
    """Source keys found under the root that the set does not list (not labelled)."""


class GoldenSet(_Frozen):
    name: str
    description: str
    path: str
    tools: tuple[GoldenTool, ...]

    def capabilities(self) -> Iterator[tuple[GoldenTool, GoldenDocument, GoldenCapability]]:
        """Every labelled capability with its tool and document, in file order."""
        for tool in self.tools:
            for document in tool.documents:
                for capability in document.capabilities:
                    yield tool, document, capability

    def count(self) -> int:
        return sum(1 for _ in self.capabilities())


# --- loading -----------------------------------------------------------------------------------


def load_golden(path: str | Path, *, corpus: str | Path | None = None) -> GoldenSet:
    """Read, check and resolve a golden set, or raise a one-line ``InputError`` naming the place.

    ``corpus`` is the folder that ``corpus:`` roots are relative to; relative roots are resolved
    against the golden file's folder.
    """
    file = Path(path)
    label = file.as_posix()
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{label}: cannot read golden set ({exc.strerror or exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{label}: not valid TOML ({exc})") from exc
    return parse_golden(data, file, corpus=corpus)


def parse_golden(
    data: Mapping[str, Any], file: Path, *, corpus: str | Path | None = None
) -> GoldenSet:
    """Check already-parsed TOML ``data`` as if it had been read from ``file``."""
    label = file.as_posix()
    try:
        raw = RawGolden.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{label}: {_describe(exc, data)}") from exc
    if raw.version != FORMAT_VERSION:
        raise InputError(f"{label}: unsupported golden-set version {raw.version} (expected 1)")
    slugs = [tool.slug for tool in raw.tool]
    if duplicate := _first_duplicate(slugs):
        raise InputError(f"{label}: tool {duplicate}: listed more than once")
    base = file.resolve().parent
    corpus_path = Path(corpus) if corpus is not None else None
    tools = tuple(_tool(label, tool, base, corpus_path) for tool in raw.tool)
    return GoldenSet(name=raw.name, description=raw.description, path=label, tools=tools)


def resolve_root(root: str, base: Path, corpus: Path | None) -> Path:
    """The folder a tool's ``root`` names: ``corpus:<path>`` or a path relative to ``base``."""
    if root.startswith(CORPUS_PREFIX):
        if corpus is None:
            raise InputError(f"root {root!r} needs the corpus folder, and none was given")
        return corpus / root[len(CORPUS_PREFIX) :].lstrip("/")
    if Path(root).is_absolute():
        raise InputError(f"root {root!r} is absolute: use a path relative to the golden file")
    return base / root


def stored_documents(folder: Path) -> dict[str, SourceDocument]:
    """Documents under ``folder`` as ingest would store them, keyed by path relative to it."""
    documents, _ = load_sources([str(folder)])
    top = folder.resolve()
    return {Path(doc.source).relative_to(top).as_posix(): doc for doc in documents}


def skeleton(slug: str, root: str, folder: Path) -> str:
    """A TOML ``[[tool]]`` block listing every page under ``folder`` with its current hash,
    for a person to fill in with capabilities: the hashes are the tedious part to get right."""
    lines = ["[[tool]]", f"slug = {_toml(slug)}", f"root = {_toml(root)}", ""]
    for source, doc in sorted(stored_documents(folder).items()):
        lines += [
            f"# {doc.title}",
            "[[tool.document]]",
            f"source = {_toml(source)}",
            f"sha256 = {_toml(doc.content_hash)}",
            "",
        ]
    return "\n".join(lines)


def _toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tool(label: str, raw: RawTool, base: Path, corpus: Path | None) -> GoldenTool:
    where = f"{label}: tool {raw.slug}"
    try:
        folder = resolve_root(raw.root, base, corpus)
    except InputError as exc:
        raise InputError(f"{where}: {exc.message}") from exc
    if not folder.is_dir():
        raise InputError(f"{where}: root folder {folder.as_posix()} not found")
    try:
        stored = stored_documents(folder)
    except InputError as exc:
        raise InputError(f"{where}: {exc.message}") from exc
    sources = [doc.source for doc in raw.document]
    if duplicate := _first_duplicate(sources):
        raise InputError(f"{label}: {raw.slug}/{duplicate}: document listed more than once")
    documents = tuple(
        _document(f"{label}: {raw.slug}/{doc.source}", doc, stored, folder) for doc in raw.document
    )
    unlisted = tuple(sorted(set(stored) - set(sources)))
    return GoldenTool(
        slug=raw.slug,
        root=raw.root,
        path=folder.as_posix(),
        documents=documents,
        unlisted=unlisted,
    )


def _document(
    where: str, raw: RawDocument, stored: Mapping[str, SourceDocument], folder: Path
) -> GoldenDocument:
    doc = stored.get(raw.source)
    if doc is None:
        raise InputError(f"{where}: unknown document: not found under {folder.as_posix()}")
    if raw.sha256 != doc.content_hash:
        raise InputError(
            f"{where}: content hash mismatch: the document changed since it was labelled "
            f"(labelled {raw.sha256[:12] or '(empty)'}…, now {doc.content_hash[:12]}…); "
            "check its labels against the new text, then update sha256"
        )
    if not raw.capability and not raw.note.strip():
        raise InputError(f"{where}: no capabilities and no note saying why")
    names = [" ".join(cap.name.split()).casefold() for cap in raw.capability]
    if duplicate := _first_duplicate(names):
        raise InputError(f"{where}: capability {duplicate!r}: duplicate name in this document")
    capabilities = tuple(
        _capability(f"{where}: capability {cap.name!r}", cap, doc.text) for cap in raw.capability
    )
    return GoldenDocument(
        source=raw.source,
        sha256=raw.sha256,
        title=doc.title,
        note=raw.note.strip(),
        capabilities=capabilities,
    )


def _capability(where: str, raw: RawCapability, text: str) -> GoldenCapability:
    if raw.category not in CATEGORIES:
        raise InputError(f"{where}: unknown category {raw.category!r} (one of: {_categories()})")
    if not raw.quotes:
        raise InputError(f"{where}: empty quote list: give at least one verbatim quote")
    if any(not fact.strip() for fact in raw.facts):
        raise InputError(f"{where}: empty fact")
    numbers = numbers_available(text)
    for fact in raw.facts:
        if missing := [n for n in numbers_in(fact) if n not in numbers]:
            raise InputError(f"{where}: fact {fact!r}: number {missing[0]} is not in the document")
    quotes = []
    for quote in raw.quotes:
        if len(normalise(quote).text) < MIN_QUOTE_CHARS:
            raise InputError(
                f"{where}: quote {quote!r} is shorter than {MIN_QUOTE_CHARS} characters"
            )
        match = find_quote(quote, text)
        if match is None:
            raise InputError(f"{where}: quote not in the document: {_clip(quote)!r}")
        quotes.append(GoldenQuote(text=quote, start=match.start, end=match.end, score=match.score))
    return GoldenCapability(
        name=" ".join(raw.name.split()),
        category=raw.category,
        facts=tuple(fact.strip() for fact in raw.facts),
        quotes=tuple(quotes),
    )


def numbers_in(text: str) -> list[str]:
    """The numbers a claim makes, in order: "8,192" is one number (8192), "256, 512" two."""
    return list(dict.fromkeys(n.replace(",", "") for n in _NUMBER.findall(text)))


def numbers_available(text: str) -> set[str]:
    """Every reading of the numbers in a source text, so that "[256,512,1024]" (a list) and
    "1,000" (a thousands separator) both support a claim however it writes them."""
    grouped = {n.replace(",", "") for n in re.findall(_GROUPED, text)}
    return grouped | set(re.findall(_PLAIN, text))


def _first_duplicate(items: Sequence[str]) -> str | None:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return None


def _categories() -> str:
    return ", ".join(CATEGORIES)


def _clip(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _describe(exc: ValidationError, data: Mapping[str, Any]) -> str:
    """The first pydantic error as one line, with list indices replaced by names."""
    error = exc.errors()[0]
    place = _place(error["loc"], data)
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        message = "unknown key (check its spelling)"
    elif error["type"] == "missing":
        message = "missing key"
    return f"{place}: {message}" if place else message


def _place(loc: Sequence[int | str], data: Any) -> str:
    """``("tool", 0, "document", 1, "capability", 2, "quotes")`` as
    ``slug/a.md: capability 'Name': quotes``, naming list items by their slug, source or name."""
    parts: list[str] = []
    node: Any = data
    tool = ""
    for index, key in enumerate(loc):
        kind = str(loc[index - 1]) if index else ""
        if isinstance(key, int):
            node = node[key] if isinstance(node, list) and key < len(node) else None
            name = _name_of(node, kind)
            if kind == "tool":
                tool = name or f"#{key + 1}"
                parts.append(f"tool {tool}")
            elif kind == "document":
                parts = [p for p in parts if not p.startswith("tool ")] if name else parts
                parts.append(f"{tool}/{name}" if name else f"document #{key + 1}")
            elif kind == "capability":
                parts.append(f"capability {name!r}" if name else f"capability #{key + 1}")
            else:
                parts[-1:] = [f"{kind}[{key}]"]
            continue
        node = node.get(key) if isinstance(node, dict) else None
        if key not in ("tool", "document", "capability"):
            parts.append(str(key))
    return ": ".join(parts)


def _name_of(node: Any, kind: str) -> str:
    field = {"tool": "slug", "document": "source", "capability": "name"}.get(kind, "")
    value = node.get(field) if isinstance(node, dict) else None
    return value if isinstance(value, str) else ""
