"""The contrast checker: refuses a line the evidence it was given does not support.

Pure functions over the line, its citations and the call's context (``task.ContrastInput``);
``check`` returns every failure as ``(cause, reason)``. The causes are counted per call in the
call log (``llm_calls.rejections``) and the reasons go back to the model on a re-ask:

- ``unknown_citation``: a cited id was not among the quotes given;
- ``one_sided``: no cited quote of the capability's own tool, or none of any other tool;
- ``no_counterpart``: no other given tool is named;
- ``uncited_tool``: a tool is named but none of its quotes is cited;
- ``unknown_tool``: a product or vendor that was neither given nor in a cited quote is named
  (``KNOWN_NAMES``), or a capitalised name occurs that is nowhere in the material given;
- ``invented_number``: a number (with its unit) is in no cited quote and no catalogue row given;
- ``unsupported_comparative``: a comparative word (``COMPARATIVES``) in a sentence that does not
  carry a number or a quoted fact from both sides;
- ``marketing``: a marketing word (``MARKETING``) outside quotation marks;
- ``misquote``: text in quotation marks that is not in a cited quote;
- ``too_long``: more than two sentences.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MARKETING = (
    "best",
    "best-in-class",
    "leading",
    "industry-leading",
    "market-leading",
    "seamless",
    "seamlessly",
    "revolutionary",
    "groundbreaking",
    "game-changing",
    "cutting-edge",
    "state-of-the-art",
    "world-class",
    "unmatched",
    "unparalleled",
    "unrivalled",
    "superior",
    "powerful",
    "robust",
    "effortless",
    "effortlessly",
    "blazing",
    "innovative",
    "ultimate",
    "amazing",
    "incredible",
    "more reliable",
    "most reliable",
    "easier",
    "easiest",
)
"""Words that sell rather than state; allowed only inside a quotation from the evidence."""

COMPARATIVES = (
    "more",
    "less",
    "fewer",
    "larger",
    "smaller",
    "bigger",
    "cheaper",
    "costlier",
    "faster",
    "slower",
    "longer",
    "shorter",
    "higher",
    "lower",
    "greater",
    "better",
    "worse",
    "wider",
    "narrower",
    "than",
)
"""Words that claim an ordering between the tools, which needs both sides' facts."""

KNOWN_NAMES = (
    "OpenAI",
    "GPT",
    "ChatGPT",
    "Anthropic",
    "Claude",
    "Google",
    "Gemini",
    "Vertex",
    "Cohere",
    "Meta",
    "Llama",
    "Mistral",
    "Mixtral",
    "Pixtral",
    "DeepSeek",
    "Qwen",
    "Alibaba",
    "Microsoft",
    "Azure",
    "AWS",
    "Amazon",
    "Bedrock",
    "Hugging Face",
    "xAI",
    "Grok",
    "Perplexity",
    "AI21",
    "Groq",
    "Together",
    "Fireworks",
    "Replicate",
    "Ollama",
    "vLLM",
    "LangChain",
    "LlamaIndex",
    "NVIDIA",
    "IBM",
    "Apple",
)
"""Vendors and products of the field: naming one that was not given is an invented competitor."""

UNITS = {
    "%": "%",
    "$": "$",
    "€": "€",
    "£": "£",
    "usd": "$",
    "eur": "€",
    "token": "tokens",
    "tokens": "tokens",
    "mb": "mb",
    "gb": "gb",
    "kb": "kb",
    "image": "images",
    "images": "images",
    "language": "languages",
    "languages": "languages",
    "request": "requests",
    "requests": "requests",
    "rps": "rps",
    "rpm": "rpm",
    "tpm": "tpm",
    "second": "seconds",
    "seconds": "seconds",
    "ms": "ms",
    "minute": "minutes",
    "minutes": "minutes",
    "hour": "hours",
    "hours": "hours",
    "day": "days",
    "days": "days",
    "parameter": "parameters",
    "parameters": "parameters",
    "dimension": "dimensions",
    "dimensions": "dimensions",
    "page": "pages",
    "pages": "pages",
    "file": "files",
    "files": "files",
    "character": "characters",
    "characters": "characters",
    "word": "words",
    "words": "words",
    "experts": "experts",
    "expert": "experts",
}
_MULTIPLIER = {"k": 1e3, "m": 1e6, "b": 1e9}
_NUMBER = re.compile(
    r"(?<![\w.\-/])(?P<cur>[$€£])?\s?(?P<num>\d+(?:,\d{3})*(?:\.\d+)?)"
    r"(?P<mult>[kKmMbB](?![A-Za-z]))?(?:[\s\-]?(?P<unit>%|[A-Za-z]+))?"
)
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z“\"])")
_CAPITALISED = re.compile(r"(?<![\w\-])([A-Z][\w\-]*[A-Za-z0-9])")


@dataclass(frozen=True)
class Quote:
    id: str
    tool: str
    text: str


@dataclass(frozen=True)
class Given:
    """What one call was given, as the checker needs it."""

    tool: str
    tools: dict[str, tuple[str, ...]]
    """Tool name -> the names it may be called by (name, vendor, first word of the name)."""
    quotes: dict[str, Quote]
    facts: dict[str, str]
    """Tool name -> its catalogue row as text (prices, free tier)."""
    material: str
    """Every text given, for the proper-name check."""


@dataclass(frozen=True)
class Failure:
    cause: str
    reason: str


def check(line: str, citations: Sequence[str], given: Given) -> list[Failure]:
    """Every reason ``line`` may not be published (empty: it passes)."""
    text = " ".join(line.split())
    failures: list[Failure] = []
    if not text:
        return [Failure("empty", "the line is empty; write one or two sentences or return null")]
    sentences = [s for s in _SENTENCE.split(text) if s.strip()]
    if len(sentences) > 2:
        failures.append(Failure("too_long", f"write at most two sentences, not {len(sentences)}"))
    unknown = [c for c in citations if c not in given.quotes]
    if unknown:
        failures.append(
            Failure(
                "unknown_citation",
                f"citations {unknown} are not ids of the quotes given; cite only ids from "
                f"{sorted(given.quotes)}",
            )
        )
    cited = [given.quotes[c] for c in citations if c in given.quotes]
    cited_tools = {q.tool for q in cited}
    bare = _unquoted(text)
    named = named_tools(bare, given)
    others = [t for t in named if t != given.tool]
    if given.tool not in cited_tools:
        failures.append(Failure("one_sided", f"cite at least one quote of {given.tool} itself"))
    if not cited_tools - {given.tool}:
        failures.append(
            Failure("one_sided", "cite at least one quote of each other tool you contrast with")
        )
    if not others:
        failures.append(
            Failure("no_counterpart", "name the other tool(s) you contrast with, as given")
        )
    for tool in others:
        if tool not in cited_tools:
            failures.append(Failure("uncited_tool", f"you name {tool} but cite none of its quotes"))
    failures.extend(_names(bare, given, cited))
    failures.extend(_numbers(text, given, cited))
    failures.extend(_quotes(text, cited))
    failures.extend(_comparatives(sentences, given, cited))
    failures.extend(_marketing(bare))
    return failures


def named_tools(text: str, given: Given) -> list[str]:
    """The given tools ``text`` names, by any of their names."""
    return [
        tool
        for tool, aliases in given.tools.items()
        if any(_has_word(text, alias) for alias in aliases)
    ]


def aliases(name: str, vendor: str | None) -> tuple[str, ...]:
    """The names a tool may be called by: its name, its vendor, its name's first word."""
    words = name.split()
    found = [name]
    if vendor:
        found.append(vendor)
        found.extend(w for w in vendor.split() if len(w) >= 4 and w[0].isupper())
    if len(words) > 1 and len(words[0]) >= 4:
        found.append(words[0])
    return tuple(dict.fromkeys(found))


def _has_word(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w\-]){re.escape(word)}(?![\w])", text) is not None


def _unquoted(text: str) -> str:
    return _QUOTED.sub(" ", text)


def _names(bare: str, given: Given, cited: Sequence[Quote]) -> Iterable[Failure]:
    allowed = {a for names in given.tools.values() for a in names}
    allowed_words = {w for a in allowed for w in a.split()}
    quoted = " ".join(q.text for q in cited)
    invented = [
        name
        for name in KNOWN_NAMES
        if _has_word(bare, name)
        and not any(name in a or a in name for a in allowed)
        and not _has_word(quoted, name)
    ]
    material = given.material.casefold()
    for sentence in _SENTENCE.split(bare):
        for m in _CAPITALISED.finditer(sentence):
            word = m.group(1)
            if m.start() == 0 or word in allowed_words or word in invented:
                continue
            if word.casefold() not in material:
                invented.append(word)
    if invented:
        yield Failure(
            "unknown_tool",
            f"{sorted(set(invented))} were not given: name only {sorted(given.tools)}, and "
            "nothing that is not in the quotes",
        )


def _pairs(text: str) -> list[tuple[float, str | None]]:
    found: list[tuple[float, str | None]] = []
    for m in _NUMBER.finditer(text):
        value = float(m.group("num").replace(",", ""))
        mult = m.group("mult")
        if mult:
            value *= _MULTIPLIER[mult.lower()]
        unit = m.group("cur") or m.group("unit")
        found.append((round(value, 6), UNITS.get(unit.lower()) if unit else None))
    return found


def _supported(pair: tuple[float, str | None], sources: Iterable[str]) -> bool:
    value, unit = pair
    for source in sources:
        for v, u in _pairs(source):
            if v != value:
                continue
            if unit is None or u == unit:
                return True
            if u is None and unit.casefold() in source.casefold():
                return True
    return False


def _masked(text: str, given: Given) -> str:
    """Tool names ("Llama 4") are names, not numbers."""
    names = sorted((a for names in given.tools.values() for a in names), key=len, reverse=True)
    for name in names:
        text = re.sub(rf"(?<![\w\-]){re.escape(name)}(?!\w)", "TOOL", text)
    return text


def _side_sources(tool: str, given: Given, cited: Sequence[Quote]) -> list[str]:
    return [q.text for q in cited if q.tool == tool] + [given.facts.get(tool, "")]


def _numbers(text: str, given: Given, cited: Sequence[Quote]) -> Iterable[Failure]:
    sources = [q.text for q in cited] + list(given.facts.values())
    missing = [pair for pair in _pairs(_masked(text, given)) if not _supported(pair, sources)]
    if missing:
        shown = ", ".join(_show(p) for p in missing)
        yield Failure(
            "invented_number",
            f"{shown} not found in the quotes you cite or the catalogue rows given; use only "
            "numbers (with their units) that the cited quotes state",
        )


def _show(pair: tuple[float, str | None]) -> str:
    value, unit = pair
    number = f"{value:g}"
    return f"{number} {unit}" if unit else number


def _norm(text: str) -> str:
    return " ".join(text.replace("’", "'").casefold().split())


def _quotes(text: str, cited: Sequence[Quote]) -> Iterable[Failure]:
    sources = [_norm(q.text) for q in cited]
    bad = [
        fragment
        for m in _QUOTED.finditer(text)
        for fragment in (m.group(1) or m.group(2),)
        if not any(_norm(fragment) in s for s in sources)
    ]
    if bad:
        yield Failure(
            "misquote",
            f"quoted text {bad} is not in a cited quote; quote the evidence exactly or "
            "do not use quotation marks",
        )


def _comparatives(
    sentences: Sequence[str], given: Given, cited: Sequence[Quote]
) -> Iterable[Failure]:
    for sentence in sentences:
        bare = _unquoted(sentence)
        words = [w for w in COMPARATIVES if _has_word(bare.casefold(), w)]
        if not words:
            continue
        backed = {
            tool
            for tool in given.tools
            if _carries(_masked(sentence, given), _side_sources(tool, given, cited))
        }
        others = [t for t in named_tools(bare, given) if t != given.tool]
        if given.tool in backed and others and all(t in backed for t in others):
            continue
        yield Failure(
            "unsupported_comparative",
            f"{words} in {sentence!r} compares without both sides' facts: put the number or "
            "quoted fact of each tool in the same sentence, or state the difference without "
            "a comparative",
        )


def _carries(sentence: str, sources: Sequence[str]) -> bool:
    """The sentence holds a number or a quoted fragment from these sources."""
    if any(_supported(pair, sources) for pair in _pairs(sentence)):
        return True
    normalised = [_norm(s) for s in sources]
    return any(
        _norm(m.group(1) or m.group(2)) in s for m in _QUOTED.finditer(sentence) for s in normalised
    )


def _marketing(bare: str) -> Iterable[Failure]:
    lowered = bare.casefold()
    found = [w for w in MARKETING if _has_word(lowered, w)]
    if found:
        yield Failure(
            "marketing",
            f"marketing words {found} outside a quotation: state what the evidence says instead",
        )
