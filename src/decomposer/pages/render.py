"""Renderers: a ``Comparison`` as Markdown, standalone HTML (escaped, own CSS) or JSON.

Everything on a page that came from vendor docs or a model is untrusted. HTML output is
autoescaped by Jinja2 and URLs are only linked when they are http(s). Markdown output goes
through ``md_inline``: whitespace (newlines included) collapses to single spaces, so text cannot
start a heading, a list or a new table row, and Markdown/HTML punctuation is backslash-escaped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import jinja2
from markupsafe import Markup

from decomposer.pages.copy import TEMPLATES
from decomposer.pages.model import MODEL_MARK, Comparison, ToolSide

FORMATS = ("md", "html", "json")
SECTION_CACHE = 4096
FILTER_CACHE = 65536  # memoised filter results (escaped names, cells, ids) per renderer
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|{}!~])")
_MD_LINE_START = re.compile(r"^(\d*)([#+\-=]|(?<=\d)[.)])")
_ENTITY = re.compile(r"&(?=#?\w+;)")


def md_inline(text: object) -> str:
    """Untrusted text as one line of Markdown that renders literally."""
    flat = " ".join(str(text).split())
    flat = _ENTITY.sub("&amp;", flat)
    flat = _MD_SPECIAL.sub(r"\\\1", flat)
    return _MD_LINE_START.sub(r"\1\\\2", flat)


def safe_url(url: object) -> str | None:
    text = str(url or "").strip()
    return text if re.match(r"^https?://[^\s<>\"']+$", text) else None


def slug_id(text: object) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


class Renderer:
    """Holds the loaded page templates; build once, render many pages."""

    def __init__(self, templates: Path = TEMPLATES) -> None:
        self.templates = templates
        self.html_env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.md_env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates),
            autoescape=False,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.md_env.filters["md"] = _memoised(md_inline, FILTER_CACHE)
        for env in (self.md_env, self.html_env):
            env.globals["MODEL_MARK"] = MODEL_MARK
        self.html_env.filters["safe_url"] = safe_url
        self.html_env.filters["slug_id"] = _memoised(slug_id, FILTER_CACHE)
        self.css = Markup((templates / "style.css").read_text("utf-8"))  # our own file, trusted
        self.md_page = self.md_env.get_template("page.md.j2")
        self.html_page = self.html_env.get_template("page.html.j2")
        self.md_caps = self.md_env.get_template("capabilities.md.j2")
        self.html_caps = self.html_env.get_template("capabilities.html.j2")
        # A tool's capability sections and JSON are the same on every page it is on: render
        # them once. Keyed by object identity; the side is kept in the value so the id cannot be
        # reused.
        self._sections: dict[tuple[str, int], tuple[ToolSide, str]] = {}

    def section(self, side: ToolSide, fmt: str) -> str:
        """The side's capability section (``md``/``html``) or its JSON object (``json``,
        indented to sit at the top level of a page's JSON)."""
        key = (fmt, id(side))
        hit = self._sections.get(key)
        if hit is not None and hit[0] is side:
            return hit[1]
        if len(self._sections) >= SECTION_CACHE:
            self._sections.clear()
        if fmt == "md":
            text = self.md_caps.render(side=side)
        elif fmt == "html":
            text = Markup(self.html_caps.render(side=side))  # rendered (escaped) by us
        else:
            text = side.model_dump_json(indent=2).replace("\n", "\n  ")
        self._sections[key] = (side, text)
        return text

    def render(self, comparison: Comparison, fmt: str) -> str:
        if fmt == "json":
            return self._json(comparison)
        if fmt in ("md", "html"):
            sections = [self.section(s, fmt) for s in (comparison.a, comparison.b)]
            if fmt == "md":
                return self.md_page.render(c=comparison, sections=sections)
            return self.html_page.render(c=comparison, css=self.css, sections=sections)
        raise ValueError(f"unknown format {fmt!r}")

    def _json(self, comparison: Comparison) -> str:
        """``render_json``, byte for byte, with each side's JSON (most of a page) serialised once
        per run instead of once per page: the rest is serialised and the sides spliced in
        before the top-level key that follows them (nested keys are indented deeper)."""
        rest = comparison.model_dump_json(indent=2, exclude={"a", "b"})
        at = rest.index(_AFTER_SIDES)
        a, b = self.section(comparison.a, "json"), self.section(comparison.b, "json")
        return f'{rest[:at]}\n  "a": {a},\n  "b": {b},{rest[at:]}\n'

    def fingerprint(self) -> str:
        """Hash of every template and stylesheet: part of each page's input hash."""
        digest = hashlib.sha256()
        for path in sorted(p for p in self.templates.rglob("*") if p.is_file()):
            digest.update(path.relative_to(self.templates).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
        return digest.hexdigest()


def _memoised(fn: Callable[[object], str], limit: int) -> Callable[[object], str]:
    """``fn`` with its results kept by the text's value: names and cells repeat on many pages."""
    cache: dict[str, str] = {}

    def cached(value: object) -> str:
        text = str(value)
        hit = cache.get(text)
        if hit is None:
            if len(cache) >= limit:
                cache.clear()
            hit = cache[text] = fn(text)
        return hit

    return cached


def _key_after_sides() -> str:
    fields = list(Comparison.model_fields)
    assert fields[fields.index("a") + 1] == "b", "the sides must be adjacent in Comparison"
    return f'\n  "{fields[fields.index("b") + 1]}": '


_AFTER_SIDES = _key_after_sides()


def render_json(comparison: Comparison) -> str:
    """All data behind the page; ``kind`` and ``schema_version`` come first."""
    return comparison.model_dump_json(indent=2) + "\n"
