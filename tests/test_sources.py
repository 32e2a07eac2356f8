from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import respx

from decomposer.core.errors import InputError
from decomposer.core.text import slugify
from decomposer.ingest.chunks import fence_mask, heading_of, split_lines
from decomposer.ingest.convert import clean_mdx, html_to_markdown, split_front_matter
from decomposer.ingest.sources import SourceDocument, load_sources

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")

URL = "https://docs.example.com/guide/models.md"

MDX = """\
---
title: "Tool use: the basics"
slug: "v2/docs/tool-use"
description: >-
  Long description.
---

import Tabs from '@theme/Tabs';
import { Note,
  Info } from '@components';
export const meta = {
  sidebar: true,
};

# Tool use

<Note title="API Compatibility">
Tools need Chat API V2.
</Note>

<Warning>Trial keys are limited to 1,000 calls a month.</Warning>

<div style={{ textAlign: 'center' }}>
  <img
    src="/img/tools.png"
    alt="tools"
  />
</div>

## Parallel calls

<Tabs groupId="code">
  <TabItem value="python" label="python" default>

```python
import os
# not a heading
<Tabs>
```

  </TabItem>
</Tabs>

<details>
<summary><b>Example output</b></summary>

The model calls two tools at once.
</details>
{/* a JSX comment */}
"""

HTML = """\
<!DOCTYPE html>
<html><head><title>Models | Example Docs</title>
<style>body { color: red }</style><script>console.log("head")</script></head>
<body>
<nav><a href="/">Home</a> <a href="/pricing">Pricing</a></nav>
<main>
<h1>Models</h1>
<p>Our <b>large</b> model has a 128k_context window.</p>
<script>trackPageView("models")</script>
<h2>Function calling</h2>
<pre><code class="language-python">client.chat(tools=tools)
# not a heading
</code></pre>
<table><tr><th>Model</th><th>Context</th></tr><tr><td>large</td><td>128k</td></tr></table>
</main>
<footer>© Example Inc.</footer>
</body></html>
"""


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def load_one(path: Path) -> SourceDocument:
    documents, _ = load_sources([str(path)])
    assert len(documents) == 1
    return documents[0]


def mock_client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler), follow_redirects=True)


def respond(
    status: int = 200, body: str | bytes = "# Models\n", content_type: str = "text/markdown"
) -> Callable[[httpx.Request], httpx.Response]:
    content = body.encode() if isinstance(body, str) else body
    return lambda request: httpx.Response(
        status, content=content, headers={"content-type": content_type}
    )


def outside_fences(text: str) -> list[str]:
    lines = split_lines(text)
    return [line for line, fenced in zip(lines, fence_mask(lines), strict=True) if not fenced]


def fenced_lines(text: str) -> list[str]:
    lines = split_lines(text)
    return [line for line, fenced in zip(lines, fence_mask(lines), strict=True) if fenced]


def headings(text: str) -> list[tuple[int, str]]:
    return [h for line in outside_fences(text) if (h := heading_of(line)) is not None]


# --- bad input -------------------------------------------------------------------------

BAD_FILES: list[tuple[str, str | bytes, str]] = [
    ("empty.md", "", "file is empty"),
    ("blank.txt", "  \n\n\t\n", "file is empty"),
    ("binary.md", b"PK\x03\x04\x00\x00binary", "binary content"),
    ("latin1.md", "# Café\n".encode("latin-1"), "not valid utf-8 text (byte 0xe9"),
    ("utf16.txt", "hello".encode("utf-16"), "UTF-16"),
    ("notes.pdf", "%PDF-1.7", "unsupported file type '.pdf'"),
    ("README", "# Readme\n", "unsupported file type (no extension)"),
    (
        "only-imports.mdx",
        "---\ntitle: X\n---\nimport A from 'a';\n<Tabs>\n</Tabs>\n",
        "no text left",
    ),
    ("only-script.html", "<html><script>x()</script><nav>Home</nav></html>", "no text left"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_file_names_the_file(tmp_path: Path, name: str, content: str | bytes, message: str):
    path = write(tmp_path / name, content)
    with pytest.raises(InputError) as caught:
        load_sources([str(path)])
    assert str(path) in caught.value.message
    assert message in caught.value.message
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no supported files"),
        ({"slides.pdf": "%PDF", "logo.png": "png"}, "no supported files"),
        ({".hidden/a.md": "# A\n", ".draft.md": "# B\n"}, "no supported files"),
    ],
    ids=["empty", "unsupported-only", "hidden-only"],
)
def test_folder_without_supported_files(tmp_path: Path, files: dict[str, str], message: str):
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, content in files.items():
        write(folder / name, content)
    with pytest.raises(InputError, match=message) as caught:
        load_sources([str(folder)])
    assert str(folder) in caught.value.message


def test_bad_file_inside_a_folder_is_named(tmp_path: Path):
    write(tmp_path / "docs" / "good.md", "# Good\n")
    bad = write(tmp_path / "docs" / "sub" / "bad.md", b"\x00\x01")
    with pytest.raises(InputError) as caught:
        load_sources([str(tmp_path / "docs")])
    assert bad.as_posix() in caught.value.message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("does/not/exist.md", "no such file or folder"),
        ("ftp://example.com/docs.md", "unsupported URL scheme 'ftp'"),
        ("file:///etc/hosts", "unsupported URL scheme 'file'"),
        ("http://", "malformed URL"),
        ("https:/docs.example.com", "malformed URL"),
        ("https://docs.example .com/page", "malformed URL"),
        ("https://docs.example.com:99999/page", "malformed URL"),
        ("http://[::1/page", "malformed URL"),
    ],
)
def test_bad_path_or_url_is_named(raw: str, message: str):
    with pytest.raises(InputError, match=message) as caught:
        load_sources([raw])
    assert raw in caught.value.message


@pytest.mark.parametrize("inputs", [[], [""], ["   "]])
def test_no_input(inputs: list[str]):
    with pytest.raises(InputError):
        load_sources(inputs)


def test_all_inputs_checked_before_any_fetch(tmp_path: Path):
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, text="# Fine\n")

    good = write(tmp_path / "good.md", "# Good\n")
    with mock_client(handler) as client, pytest.raises(InputError, match=r"missing\.md"):
        load_sources([URL, str(good), str(tmp_path / "missing.md")], http_client=client)
    assert requests == []


def test_a_failing_url_fails_the_whole_load(tmp_path: Path):
    good = write(tmp_path / "good.md", "# Good\n")
    with mock_client(respond(status=404)) as client, pytest.raises(InputError, match="404"):
        load_sources([str(good), URL], http_client=client)


# --- URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (respond(status=404), "HTTP 404 Not Found"),
        (respond(status=500), "HTTP 500 Internal Server Error"),
        (respond(status=403), "HTTP 403 Forbidden"),
        (respond(body=b"%PDF-1.7", content_type="application/pdf"), "unsupported content type"),
        (respond(body=b""), "response body is empty"),
        (respond(body=b"\x00\x01\x02", content_type="text/plain"), "binary content"),
    ],
    ids=["404", "500", "403", "pdf", "empty", "binary"],
)
def test_url_failures(handler: Callable[[httpx.Request], httpx.Response], message: str):
    with mock_client(handler) as client, pytest.raises(InputError) as caught:
        load_sources([URL], http_client=client)
    assert caught.value.message.startswith(URL)
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("error", "name"),
    [
        (httpx.ConnectError("[Errno -2] Name or service not known"), "ConnectError"),
        (httpx.ReadTimeout("timed out"), "ReadTimeout"),
    ],
)
def test_url_connection_errors(error: Exception, name: str):
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    with mock_client(handler) as client, pytest.raises(InputError) as caught:
        load_sources([URL], http_client=client)
    assert caught.value.message == f"{URL}: could not fetch ({name}: {error})"
    assert "Traceback" not in str(caught.value)


def test_url_markdown_ok():
    body = "---\ntitle: Models\n---\n\n# Overview\n\nLarge has 128k context.\r\n"
    with mock_client(respond(body=body, content_type="text/plain; charset=utf-8")) as client:
        documents, notes = load_sources([URL], http_client=client)
    assert notes == []
    [document] = documents
    assert document.source == URL
    assert document.media_type == "text/markdown"
    assert document.title == "Models"
    assert document.text == "# Overview\n\nLarge has 128k context.\n"
    assert document.content_hash == hashlib.sha256(document.text.encode()).hexdigest()


def test_url_html_is_converted():
    url = "https://docs.example.com/models"
    with mock_client(respond(body=HTML, content_type="text/html; charset=utf-8")) as client:
        [document], _ = load_sources([url], http_client=client)
    assert document.media_type == "text/html"
    assert document.title == "Models"
    assert "# Models\n" in document.text
    assert "## Function calling\n" in document.text
    assert "trackPageView" not in document.text


def test_url_title_falls_back_to_last_path_segment():
    with mock_client(respond(body="Plain words.", content_type="text/plain")) as client:
        [document], _ = load_sources(
            ["https://docs.example.com/api/rate-limits"], http_client=client
        )
    assert document.title == "rate-limits"
    assert document.media_type == "text/plain"


def test_url_fetched_with_own_client_following_redirects():
    old, new = "https://docs.example.com/old", "https://docs.example.com/new.md"
    with respx.mock(assert_all_called=True) as router:
        router.get(old).respond(301, headers={"location": new})
        router.get(new).respond(200, text="# Moved\n\nHere.\n")
        [document], _ = load_sources([old])
    assert document.source == old
    assert document.title == "Moved"


def test_url_and_files_keep_input_order(tmp_path: Path):
    first = write(tmp_path / "first.md", "# First\n")
    last = write(tmp_path / "last.txt", "Last.\n")
    with mock_client(respond()) as client:
        documents, _ = load_sources([str(first), URL, str(last)], http_client=client)
    assert [d.source for d in documents] == [first.as_posix(), URL, last.as_posix()]


# --- folders ---------------------------------------------------------------------------


def test_folder_walk_is_sorted_recursive_and_skips_hidden(tmp_path: Path):
    docs = tmp_path / "docs"
    for name in [
        "b.md",
        "a.txt",
        "sub/z.html",
        "sub/c.mdx",
        "sub/deeper/d.markdown",
        "A.htm",
        ".hidden/secret.md",
        ".draft.md",
        "logo.png",
        "sub/slides.pdf",
    ]:
        write(docs / name, f"# {Path(name).stem}\n\nText of {name}.\n")
    documents, notes = load_sources([str(docs)])
    expected = ["A.htm", "a.txt", "b.md", "sub/c.mdx", "sub/deeper/d.markdown", "sub/z.html"]
    assert [d.source for d in documents] == [(docs / name).as_posix() for name in expected]
    assert notes == [f"skipped 2 files with unsupported extensions in {docs}"]
    assert load_sources([str(docs)]) == (documents, notes)


def test_file_given_twice_is_loaded_once(tmp_path: Path):
    page = write(tmp_path / "docs" / "page.md", "# Page\n")
    documents, notes = load_sources([str(tmp_path / "docs"), str(page)])
    assert [d.source for d in documents] == [page.as_posix()]
    assert notes == [f"ignored {page.as_posix()}: given more than once"]


def test_source_is_absolute_posix_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    write(tmp_path / "docs" / "page.md", "# Page\n")
    monkeypatch.chdir(tmp_path)
    document = load_one(Path("docs/page.md"))
    assert document.source == (tmp_path / "docs" / "page.md").resolve().as_posix()


# --- conversion ------------------------------------------------------------------------


def test_html_keeps_headings_and_drops_page_chrome():
    text = html_to_markdown(HTML)
    assert headings(text) == [(1, "Models"), (2, "Function calling")]
    for dropped in ("console.log", "trackPageView", "color: red", "Pricing", "© Example", "<"):
        assert dropped not in text
    assert "Our **large** model has a 128k_context window." in text
    assert "```python\nclient.chat(tools=tools)\n# not a heading\n```" in text
    assert "| large | 128k |" in text


def test_html_title_from_title_element_when_no_heading(tmp_path: Path):
    page = write(tmp_path / "page.html", "<title>Rate limits</title><p>100 requests/min.</p>")
    document = load_one(page)
    assert document.title == "Rate limits"
    assert document.text == "100 requests/min.\n"


def test_mdx_cleanup_on_a_small_sample():
    _, body = split_front_matter(MDX)
    text = clean_mdx(body)
    assert text == (
        "# Tool use\n\n"
        "API Compatibility\n"
        "Tools need Chat API V2.\n\n"
        "Trial keys are limited to 1,000 calls a month.\n\n"
        "## Parallel calls\n\n"
        "```python\nimport os\n# not a heading\n<Tabs>\n```\n\n"
        "Example output\n\n"
        "The model calls two tools at once.\n"
    )


def test_mdx_file_title_and_media_type(tmp_path: Path):
    document = load_one(write(tmp_path / "tool-use.mdx", MDX))
    assert document.title == "Tool use: the basics"
    assert document.media_type == "text/mdx"
    assert document.text.startswith("# Tool use\n")


def test_markdown_strips_front_matter_only(tmp_path: Path):
    body = "# Model card\n\n<table>\n  <tr><td>10M</td></tr>\n</table>\n\n\n```\n# code\n```\n"
    document = load_one(write(tmp_path / "card.md", f"---\nid: card\ntitle: 'Card'\n---\n\n{body}"))
    assert document.text == body
    assert document.title == "Card"
    assert document.media_type == "text/markdown"


def test_markdown_with_mdx_imports_is_cleaned(tmp_path: Path):
    text = (
        "# Vision\n\nimport Tabs from '@theme/Tabs';\n\n<Tabs>\n\nPixtral reads images.\n</Tabs>\n"
    )
    document = load_one(write(tmp_path / "vision.md", text))
    assert document.text == "# Vision\n\nPixtral reads images.\n"


def test_leading_rule_is_not_front_matter(tmp_path: Path):
    text = "---\n\nIntro paragraph.\n\n---\n\nMore.\n"
    assert load_one(write(tmp_path / "rules.md", text)).text == text


@pytest.mark.parametrize(
    ("name", "content", "title"),
    [
        ("a.md", '---\ntitle: "Quoted: yes"\n---\n# Heading\n', "Quoted: yes"),
        ("b.md", "---\ntitle: 'Single'\n---\n# Heading\n", "Single"),
        ("c.md", "---\nid: c\n---\nIntro\n\n## First heading ##\n", "First heading"),
        ("d.md", "```\n# not this\n```\n\n# This one\n", "This one"),
        ("e-page.md", "No heading at all.\n", "e-page"),
        ("f.txt", "Plain text.\n", "f"),
        ("g.md", "---\ntitle: >-\n  Folded\n---\n# Fallback heading\n", "Fallback heading"),
    ],
)
def test_title(tmp_path: Path, name: str, content: str, title: str):
    assert load_one(write(tmp_path / name, content)).title == title


@pytest.mark.parametrize(
    ("content", "text"),
    [
        (b"# Title\r\n\r\nBody\r\n", "# Title\n\nBody\n"),
        (b"# Title\rBody\r", "# Title\nBody\n"),
        ("\ufeff# Title\n".encode(), "# Title\n"),
        ("Ünïcödé — ≈ € ° 🤗 日本語\n".encode(), "Ünïcödé — ≈ € ° 🤗 日本語\n"),
    ],
    ids=["crlf", "cr", "bom", "non-ascii"],
)
def test_text_is_normalised(tmp_path: Path, content: bytes, text: str):
    document = load_one(write(tmp_path / "page.txt", content))
    assert document.text == text
    assert document.content_hash == hashlib.sha256(text.encode()).hexdigest()


# --- the real corpus -------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus() -> dict[str, SourceDocument]:
    if not CORPUS.is_dir():
        pytest.skip(f"corpus not found at {CORPUS}")
    documents, _ = load_sources([str(CORPUS)])
    return {Path(d.source).relative_to(CORPUS.resolve()).as_posix(): d for d in documents}


def corpus_files() -> list[str]:
    if not CORPUS.is_dir():
        return []
    return sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*.md*"))


@needs_corpus
@pytest.mark.corpus
def test_corpus_loads_every_page(corpus: dict[str, SourceDocument]):
    assert sorted(corpus) == corpus_files()
    assert len(corpus) >= 27


@needs_corpus
@pytest.mark.corpus
@pytest.mark.parametrize("name", corpus_files())
def test_corpus_page_conversion(corpus: dict[str, SourceDocument], name: str):
    document = corpus[name]
    raw = (CORPUS / name).read_text(encoding="utf-8")
    _, body = split_front_matter(raw)
    assert not document.text.startswith("---\n")
    assert headings(document.text) == headings(body)
    assert fenced_lines(document.text) == fenced_lines(body)
    if name.endswith(".mdx") or "import Tabs" in body:
        for line in outside_fences(document.text):
            assert not line.startswith(("import ", "export ")), line
            assert not line.lstrip().startswith(("<Tabs", "</Tabs", "<TabItem", "</TabItem")), line


@needs_corpus
@pytest.mark.corpus
@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("cohere-api/structured-outputs.mdx", "How do Structured Outputs Work?"),
        ("cohere-api/tool-use-overview.mdx", "Basic usage of tool use (function calling)"),
        ("mistral-api/function-calling.md", "Function calling"),
        ("llama-4/prompt_format.md", "Llama 4 - Prompt Formats"),
    ],
)
def test_corpus_titles(corpus: dict[str, SourceDocument], name: str, title: str):
    assert corpus[name].title == title


@needs_corpus
@pytest.mark.corpus
def test_corpus_keeps_component_text(corpus: dict[str, SourceDocument]):
    tool_use = corpus["cohere-api/tool-use-overview.mdx"].text
    assert "Parallel tool calling\n" in tool_use
    assert "\nThe endpoint supports a subset of the JSON Schema specification." in tool_use
    assert "Integration with continue.dev\n" in corpus["mistral-api/coding.md"].text


# --- slugify ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Mistral API", "mistral-api"),
        ("Llama 4", "llama-4"),
        ("  GPT-4o mini!", "gpt-4o-mini"),
        ("Cohere   Command--R+", "cohere-command-r"),
        ("snake_case_tool", "snake-case-tool"),
        ("Café Crème", "cafe-creme"),
        ("通义千问 API", "通义千问-api"),
        ("x" * 100, "x" * 64),
    ],
)
def test_slugify(name: str, slug: str):
    assert slugify(name) == slug


@pytest.mark.parametrize("name", ["", "   ", "!!!", "— / —"])
def test_slugify_rejects_names_without_letters(name: str):
    with pytest.raises(InputError) as caught:
        slugify(name)
    assert repr(name) in caught.value.message
