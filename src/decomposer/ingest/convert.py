"""Conversion of a loaded document to the Markdown text that is stored: MDX without its
components and imports, HTML without its page chrome, YAML front matter split off.

Evidence quotes are located by character offsets in the converted text, so this runs exactly
once, when a document is loaded (``sources``), and never on stored text.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Sequence

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning, Tag, XMLParsedAsHTMLWarning
from markdownify import ATX, MarkdownConverter

from decomposer.ingest.chunks import fence_mask, split_lines

_MAX_TAG_LINES = 20
_DROPPED_HTML = ("head", "title", "script", "style", "nav", "footer", "noscript", "template", "svg")
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


def convert(text: str, media_type: str) -> tuple[str, str | None]:
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
