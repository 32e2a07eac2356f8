"""Rendered pages: golden snapshots of the three formats, escaping of hostile text, standalone HTML.

Refresh the snapshots after an intended change with ``UPDATE_GOLDEN=1 pytest tests/test_render.py``
and review the diff under tests/golden/.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest

from decomposer.catalog.snapshot import load_snapshot
from decomposer.core.errors import DecomposerError
from decomposer.pages.compare import compare
from decomposer.pages.model import Options
from decomposer.pages.render import Renderer, md_inline, render_json, safe_url
from decomposer.store import open_store
from pages_support import AS_OF, add_tool, build_demo, install_db, run

GOLDEN = Path(__file__).with_name("golden")
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory):
    return build_demo(tmp_path_factory.mktemp("demo"))


@pytest.fixture
def demo(demo_db, settings):
    install_db(demo_db, settings.home)
    return settings


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, "utf-8")
    assert path.exists(), f"missing {path}: run with UPDATE_GOLDEN=1"
    assert text == path.read_text("utf-8"), f"{name} changed: rerun with UPDATE_GOLDEN=1 and review"


@pytest.mark.parametrize("fmt", ["md", "html", "json"])
def test_golden_demo_pages(demo, capsys, fmt):
    code, out, err = run(
        capsys, "compare", "mistral-api", "llama-4", "--format", fmt, "--as-of", AS_OF
    )
    assert code == 0, err
    check_golden(f"mistral-api-vs-llama-4.{fmt}", out)


def test_golden_draft_preview(demo, capsys):
    code, out, err = run(
        capsys, "compare", "mistral-api", "llama-4", "--include-unreviewed", "--as-of", AS_OF
    )
    assert code == 0, err
    check_golden("mistral-api-vs-llama-4.drafts.md", out)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_data(self, data):
        self.text.append(data)


def test_html_is_a_standalone_page(demo, capsys):
    code, out, _ = run(
        capsys, "compare", "mistral-api", "llama-4", "--format", "html", "--as-of", AS_OF
    )
    assert code == 0
    assert out.startswith("<!DOCTYPE html>") and out.rstrip().endswith("</html>")
    parser = _Collector()
    parser.feed(out)
    assert "style" in parser.tags and "table" in parser.tags
    assert "script" not in parser.tags and "link" not in parser.tags and "img" not in parser.tags
    assert "@import" not in out and "url(" not in out  # no fonts, CDNs or remote CSS


HOSTILE = {
    "name": "Evil | <b>bold</b>",
    "description": "<script>alert('x')</script> | col | \n# Heading\n\n| fake | row |",
    "unique": "<img src=x onerror=alert(1)> & &amp; " + "long" * 800,
    "vs": "[link](javascript:alert(1)) *em* `code` \r\n- list item",
}


@pytest.fixture
def hostile(settings):
    store = open_store(settings.database_url)
    add_tool(store, "evil-tool", [HOSTILE, {"name": "Plain"}])
    add_tool(store, "good-tool", [{"name": "Good"}], signals={"github_stars": 10})
    store.dispose()
    return settings


def test_hostile_text_is_escaped_in_html(hostile, capsys):
    code, out, err = run(capsys, "compare", "evil-tool", "good-tool", "--format", "html")
    assert code == 0, err
    parser = _Collector()
    parser.feed(out)
    assert "script" not in parser.tags and "img" not in parser.tags and "b" not in parser.tags
    assert not any(name.startswith("on") for name, _ in parser.attrs)
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in out
    text = "".join(parser.text)
    assert "<script>alert('x')</script>" in text  # shown to the reader as text
    assert "long" * 800 in text  # very long text is kept whole (CSS wraps it)


def test_hostile_text_cannot_break_the_markdown_layout(hostile, capsys):
    code, out, err = run(capsys, "compare", "evil-tool", "good-tool")
    assert code == 0, err
    lines = out.splitlines()
    start = lines.index("| Feature | Evil Tool | Good Tool |")
    table = lines[start : lines.index("", start)]
    assert len(table) == 2 + 10  # header, rule and the ten rows: no injected rows
    shared = lines[lines.index("## Shared capabilities") : lines.index("## Verdict")]
    pair_rows = [line for line in shared if line.startswith("|")]
    assert len(table) + len(pair_rows) == len([line for line in lines if line.startswith("|")])
    for line in table + pair_rows:
        assert len(re.findall(r"(?<!\\)\|", line)) == 4, line
    headings = [line for line in lines if line.startswith("#")]
    assert headings == [
        "# Evil Tool vs Good Tool",
        "## Evil Tool Capabilities",
        "### Evil \\| \\<b\\>bold\\</b\\>",
        "### Plain",
        "## Good Tool Capabilities",
        "### Good",
        "## Shared capabilities",
        "## Verdict",
    ]
    assert re.search(r"(?<!\\)<", out) is None  # every < is escaped: no raw HTML in the page
    assert not any(line.startswith(("- list", "| fake")) for line in lines)
    assert "\\[link\\](javascript:alert(1))" in out


def test_hostile_text_round_trips_in_json(hostile, capsys):
    code, out, err = run(capsys, "compare", "evil-tool", "good-tool", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    [cap] = [c for c in data["a"]["capabilities"] if c["name"] == HOSTILE["name"]]
    assert cap["description"] == HOSTILE["description"]
    assert cap["unique"] == HOSTILE["unique"]


@pytest.mark.parametrize("store_of", ["demo", "hostile"])
def test_json_pages_splice_each_side_serialised_once_byte_for_byte(store_of, request):
    """The renderer serialises a side's JSON once per run and splices it into each page; every
    page must still equal the whole model serialised at once."""
    settings = request.getfixturevalue(store_of)
    store = open_store(settings.database_url)
    with store.transaction() as session:
        snapshot = load_snapshot(session, None)
    store.dispose()
    renderer, options = Renderer(), Options(as_of=date.fromisoformat(AS_OF))
    slugs = sorted(snapshot.tools)
    pages = 0
    for include_unreviewed in (False, True):
        opts = options.model_copy(update={"include_unreviewed": include_unreviewed})
        for a, b in itertools.permutations(slugs, 2):
            try:
                c = compare(snapshot, a, b, options=opts)
            except DecomposerError:
                continue  # a tool with nothing to show
            assert renderer.render(c, "json") == render_json(c)
            pages += 1
    assert pages >= 2


def test_md_inline_and_safe_url_units():
    assert md_inline("a\n\n# b | c") == "a # b \\| c"
    assert md_inline("# title") == "\\# title"
    assert md_inline("1. item") == "1\\. item"
    assert md_inline("&lt; R&D") == "&amp;lt; R&D"
    assert safe_url("javascript:alert(1)") is None
    assert safe_url("https://docs.mistral.ai") == "https://docs.mistral.ai"
    assert safe_url('https://x.example/"onmouseover=') is None
