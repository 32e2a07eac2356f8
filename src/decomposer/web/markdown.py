"""Evidence context rendered from Markdown safely: markdown-it-py (raw HTML off), then nh3.

The quote is marked with two private-use characters before rendering and turned into
``<mark>`` afterwards, so the highlight survives Markdown; nh3 then keeps only an allow-list of
tags and ``http(s)``/``mailto`` links (with ``rel="noopener noreferrer"``), and repairs any
nesting a highlight across blocks breaks. Nothing from the document can add a script, a style,
an event handler or an image.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from markupsafe import Markup

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

OPEN, CLOSE = "\ue000", "\ue001"
TAGS = {
    "p", "br", "em", "strong", "code", "pre", "blockquote", "ul", "ol", "li", "a", "mark",
    "h3", "hr", "table", "thead", "tbody", "tr", "th", "td", "del",
}  # fmt: skip
ATTRIBUTES = {"a": {"href", "title"}}
SCHEMES = {"http", "https", "mailto"}


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def render_markdown(text: str) -> Markup:
    """Markdown to sanitized HTML (``Markup``, so Jinja does not escape it again)."""
    return Markup(_clean(_to_html(text.replace(OPEN, "").replace(CLOSE, ""))))


def render_context(before: str, match: str, after: str) -> Markup:
    """The evidence's surrounding text as Markdown with the quote in ``<mark>``."""
    strip = str.maketrans("", "", OPEN + CLOSE)
    source = (
        before.translate(strip) + OPEN + match.translate(strip) + CLOSE + after.translate(strip)
    )
    html = _to_html(source).replace(OPEN, "<mark>").replace(CLOSE, "</mark>")
    return Markup(_clean(html))


def _to_html(text: str) -> str:
    """Headings become ``h3``: a quoted document's ``# Title`` sits under the page's own
    "Evidence" heading and must not outrank it."""
    parser = _parser()
    tokens = parser.parse(text)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = "h3"
    html: str = parser.renderer.render(tokens, parser.options, {})
    return html


def _clean(html: str) -> str:
    import nh3

    return nh3.clean(
        html,
        tags=TAGS,
        attributes=ATTRIBUTES,
        url_schemes=SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
    )
