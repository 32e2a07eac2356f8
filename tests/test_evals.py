"""Golden sets and eval scoring: hand-built extractions scored against a small golden set,
refusals of bad golden files (one line naming the place), and the two shipped sets."""

from __future__ import annotations

import hashlib
import json
import random
import tomllib
from pathlib import Path

import pytest

from decomposer.core.errors import InputError
from decomposer.evals.golden import GoldenSet, load_golden, skeleton, stored_documents
from decomposer.evals.inputs import (
    CostInput,
    ExtractedCapability,
    ExtractedQuote,
    golden_as_extracted,
)
from decomposer.evals.score import is_stated, overlaps, score, unsupported_numbers
from decomposer.extraction.grounding import find_quote

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
DEMO = REPO / "fixtures" / "golden" / "demo.toml"
CORPUS_SET = REPO / "fixtures" / "golden" / "corpus.toml"

DOCS = {
    "api.md": (
        "# Acme API\n\n"
        "## Function calling\n\n"
        "Function calling lets the model ask your code to run a function. Declare each "
        "function with a JSON schema for its parameters.\n\n"
        "## Batch\n\n"
        "Batch inference runs large JSONL files of requests asynchronously at half price; "
        "every batch job finishes within 24 hours.\n"
    ),
    "guides/vision.md": (
        "# Vision\n\n"
        "The **vision model** reads images and answers questions about charts. A request can "
        "hold up to 8 images of at most 10 MB each.\n\n"
        "Unrelated: the office is closed on Sundays.\n"
    ),
}

GOLDEN = """\
version = 1
name = "acme"

[[tool]]
slug = "acme"
root = "docs"

[[tool.document]]
source = "api.md"
sha256 = "{api}"

[[tool.document.capability]]
name = "Function calling"
category = "function-calling"
facts = ["JSON schema for parameters"]
quotes = ["Function calling lets the model ask your code to run a function."]

[[tool.document.capability]]
name = "Batch inference"
category = "batch"
facts = ["JSONL files", "half price", "24 hours"]
quotes = ["Batch inference runs large JSONL files of requests asynchronously at half price"]

[[tool.document]]
source = "guides/vision.md"
sha256 = "{vision}"

[[tool.document.capability]]
name = "Image understanding"
category = "vision"
facts = ["charts", "up to 8 images", "10 MB"]
quotes = ["The vision model reads images and answers questions about charts."]
"""


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_set(root: Path, toml: str | None = None, **overrides: str) -> Path:
    for name, text in DOCS.items():
        path = root / "docs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    hashes = {"api": sha(DOCS["api.md"]), "vision": sha(DOCS["guides/vision.md"]), **overrides}
    file = root / "golden.toml"
    file.write_text((toml or GOLDEN).format(**hashes), encoding="utf-8")
    return file


@pytest.fixture
def golden(tmp_path: Path) -> GoldenSet:
    return load_golden(write_set(tmp_path))


def quote(text: str, document: str) -> ExtractedQuote:
    match = find_quote(text, DOCS[document])
    if match is None:
        return ExtractedQuote(text=text)
    return ExtractedQuote(text=text, document=document, start=match.start, end=match.end)


def cap(
    name: str,
    description: str,
    quotes: list[tuple[str, str]],
    category: str = "other",
    unique: str = "Not stated in the docs.",
    vs: str = "Not stated in the docs.",
) -> ExtractedCapability:
    return ExtractedCapability(
        tool="acme",
        name=name,
        category=category,
        description=description,
        unique=unique,
        vs_alternatives=vs,
        evidence=tuple(quote(text, doc) for text, doc in quotes),
    )


FUNCTIONS = cap(
    "Function calling",
    "The model asks your code to run a function declared with a JSON schema for its parameters.",
    [("Function calling lets the model ask your code to run a function.", "api.md")],
    "function-calling",
)
BATCH = cap(
    "Batch inference",
    "Runs JSONL files of requests asynchronously at half price; jobs finish within 24 hours.",
    [("Batch inference runs large JSONL files of requests asynchronously", "api.md")],
    "batch",
)
VISION = cap(
    "Image understanding",
    "Reads images and charts, up to 8 images of 10 MB each.",
    [("The vision model reads images and answers questions about charts.", "guides/vision.md")],
    "vision",
)


# --- scoring -----------------------------------------------------------------------------------


def test_perfect_extraction_scores_one_everywhere(golden):
    report = score(golden, [FUNCTIONS, BATCH, VISION])
    caps = report.capabilities
    assert (caps.golden, caps.extracted, caps.matched) == (3, 3, 3)
    assert (caps.recall, caps.precision, caps.f1, caps.same_category) == (1.0, 1.0, 1.0, 1.0)
    assert caps.facts_share == 1.0
    assert report.evidence.recovered_share == 1.0
    assert report.evidence.grounded_share == 1.0
    assert report.missed == () and report.unmatched == ()
    assert [(d.source, d.found, d.recall) for d in report.documents] == [
        ("api.md", 2, 1.0),
        ("guides/vision.md", 1, 1.0),
    ]
    assert report.threshold == 0.22 and report.embedder == "lexical-tfidf-1"


def test_missing_capability_lowers_recall_and_is_listed(golden):
    report = score(golden, [FUNCTIONS, VISION])
    assert report.capabilities.recall == pytest.approx(2 / 3, abs=1e-4)
    assert report.capabilities.precision == 1.0
    assert [(m.golden, m.documents) for m in report.missed] == [("Batch inference", ("api.md",))]
    assert report.evidence.must_quotes == 3 and report.evidence.recovered == 2
    api = next(d for d in report.documents if d.source == "api.md")
    assert (api.golden, api.found, api.recall, api.recovered) == (2, 1, 0.5, 1)


def test_extra_capability_lowers_precision_and_is_listed_for_review(golden):
    extra = cap(
        "Office hours",
        "The office is closed on Sundays.",
        [("Unrelated: the office is closed on Sundays.", "guides/vision.md")],
    )
    report = score(golden, [FUNCTIONS, BATCH, VISION, extra])
    assert report.capabilities.recall == 1.0
    assert report.capabilities.precision == 0.75
    [row] = report.unmatched
    assert (row.extracted, row.evidence_documents) == ("Office hours", ("guides/vision.md",))
    assert row.nearest_similarity < report.threshold


def test_paraphrased_name_still_matches(golden):
    tools = cap(
        "Tool use",
        "Function calling: the model asks your code to run a function with a JSON schema.",
        [("Declare each function with a JSON schema for its parameters.", "api.md")],
        "function-calling",
    )
    report = score(golden, [tools, BATCH, VISION])
    assert report.capabilities.matched == 3
    pair = next(m for m in report.matches if m.golden == "Function calling")
    assert pair.extracted == "Tool use"
    assert pair.quotes_recovered == 0  # a different sentence of the page than the must-quote


def test_wrong_quote_is_not_recovered_and_ungrounded_quote_counts(golden):
    wrong = cap(
        "Image understanding",
        "Reads images and charts, up to 8 images of 10 MB each.",
        [
            ("Unrelated: the office is closed on Sundays.", "guides/vision.md"),
            ("Vision supports 4K video streams natively.", "guides/vision.md"),
        ],
        "vision",
    )
    report = score(golden, [FUNCTIONS, BATCH, wrong])
    pair = next(m for m in report.matches if m.golden == "Image understanding")
    assert (pair.must_quotes, pair.quotes_recovered) == (1, 0)
    assert report.evidence.recovered == 2 and report.evidence.recovered_any == 2
    assert report.evidence.extracted_quotes == 4 and report.evidence.grounded == 3
    assert report.evidence.grounded_share == 0.75


def test_duplicate_extraction_of_one_golden_capability_counts_once(golden):
    again = cap(
        "Batch processing jobs",
        "Batch inference of JSONL files at half price.",
        [("every batch job finishes within 24 hours", "api.md")],
        "batch",
    )
    report = score(golden, [FUNCTIONS, BATCH, VISION, again])
    assert report.capabilities.matched == 3
    assert report.capabilities.precision == 0.75
    assert [u.extracted for u in report.unmatched] == ["Batch processing jobs"]
    assert report.unmatched[0].nearest == "Batch inference"
    # The duplicate's quote still counts as evidence found by some capability of the tool.
    assert report.evidence.recovered_any == 3


def test_same_capability_on_two_pages_is_one_golden_capability(tmp_path):
    two_pages = GOLDEN.replace(
        'name = "Image understanding"', 'name = "Batch inference"\n# relabelled', 1
    ).replace('category = "vision"', 'category = "batch"')
    golden = load_golden(write_set(tmp_path, two_pages))
    assert golden.count() == 3
    report = score(golden, [FUNCTIONS, BATCH])
    assert (report.capabilities.golden, report.capabilities.labels) == (2, 3)
    assert report.capabilities.recall == 1.0
    pair = next(m for m in report.matches if m.golden == "Batch inference")
    assert pair.documents == ("api.md", "guides/vision.md")
    assert pair.must_quotes == 2 and pair.quotes_recovered == 1


def test_other_tools_and_empty_inputs(golden):
    stranger = FUNCTIONS.model_copy(update={"tool": "other-tool"})
    report = score(golden, [stranger])
    assert report.capabilities.extracted == 0
    assert report.capabilities.recall == 0.0 and report.capabilities.precision is None
    assert report.capabilities.f1 is None
    assert report.evidence.grounded_share is None
    assert len(report.missed) == 3


def test_scores_are_deterministic_and_independent_of_input_order(golden):
    extra = cap("Office hours", "Closed on Sundays.", [("closed on Sundays", "guides/vision.md")])
    caps = [FUNCTIONS, BATCH, VISION, extra]
    first = json.dumps(score(golden, caps).model_dump(), sort_keys=True)
    for seed in range(3):
        shuffled = caps[:]
        random.Random(seed).shuffle(shuffled)
        assert json.dumps(score(golden, shuffled).model_dump(), sort_keys=True) == first


def test_fields_placeholder_is_empty_and_invented_numbers_are_flagged(golden):
    stated = FUNCTIONS.model_copy(
        update={"unique": "Runs in parallel.", "vs_alternatives": "Unlike X, it is free."}
    )
    invented = BATCH.model_copy(update={"description": "Half price, 24 hours, 99.9% uptime."})
    report = score(golden, [stated, invented, VISION])
    fields = report.fields
    assert (fields.with_unique, fields.with_vs_alternatives) == (1, 1)
    assert fields.unique_share == pytest.approx(1 / 3, abs=1e-4)
    assert [(f.capability, f.number) for f in fields.unsupported_numbers] == [
        ("Batch inference", "24"),
        ("Batch inference", "99.9"),
        ("Image understanding", "10"),
        ("Image understanding", "8"),
    ]
    assert not is_stated("  not stated in the docs ") and not is_stated("")
    assert is_stated("Only vendor with X.")


def test_numbers_in_names_and_thousands_separators_are_not_flagged():
    llama = ExtractedCapability(
        tool="llama-4",
        name="Llama 4 Scout",
        category="models",
        description="Llama 4 reads 8,192 tokens; Scout holds 10M.",
        evidence=(ExtractedQuote(text="up to 8192 tokens and a 10M context"),),
    )
    assert unsupported_numbers(llama) == []


def test_cost_per_document_and_per_correct_capability(golden):
    cost = CostInput(calls=4, input_tokens=3000, output_tokens=1000, cost_usd=0.02, latency_s=8.0)
    report = score(golden, [FUNCTIONS, BATCH], cost=cost)
    assert report.cost is not None
    assert (report.cost.documents, report.cost.correct) == (2, 2)
    assert report.cost.per_document is not None and report.cost.per_correct_capability is not None
    assert report.cost.per_document.tokens == 2000.0
    assert report.cost.per_correct_capability.cost_usd == 0.01
    assert report.cost.per_correct_capability.latency_s == 4.0
    none_right = score(golden, [], cost=cost.model_copy(update={"cost_usd": None}))
    assert none_right.cost is not None and none_right.cost.per_correct_capability is None
    per_document = none_right.cost.per_document
    assert per_document is not None and per_document.cost_usd is None
    assert score(golden, []).cost is None


def test_overlap_rule():
    assert overlaps(0, 100, 10, 20)  # a short quote inside a long one
    assert overlaps(0, 10, 5, 30)  # half of the shorter span shared
    assert not overlaps(0, 10, 6, 30)
    assert not overlaps(0, 10, 10, 20)


def test_higher_threshold_turns_matches_into_misses(golden):
    report = score(golden, [FUNCTIONS, BATCH, VISION], threshold=0.999)
    assert report.capabilities.matched == 0 and report.threshold == 0.999


# --- bad golden files --------------------------------------------------------------------------


def refusal(tmp_path: Path, toml: str | None = None, corpus: Path | None = None, **kw: str) -> str:
    file = write_set(tmp_path, toml, **kw)
    with pytest.raises(InputError) as caught:
        load_golden(file, corpus=corpus)
    message = str(caught.value)
    assert "\n" not in message
    return message.removeprefix(f"{file.as_posix()}: ")


def test_unknown_document_is_refused(tmp_path):
    toml = GOLDEN.replace('source = "api.md"', 'source = "apis.md"')
    root = (tmp_path / "docs").as_posix()
    assert refusal(tmp_path, toml) == f"acme/apis.md: unknown document: not found under {root}"


def test_changed_document_is_refused_with_both_hashes(tmp_path):
    old = "0" * 64
    assert refusal(tmp_path, api=old) == (
        "acme/api.md: content hash mismatch: the document changed since it was labelled "
        f"(labelled 000000000000…, now {sha(DOCS['api.md'])[:12]}…); "
        "check its labels against the new text, then update sha256"
    )


def test_quote_not_in_document_is_refused(tmp_path):
    toml = GOLDEN.replace("answers questions about charts.", "draws pictures of cats.")
    assert refusal(tmp_path, toml) == (
        "acme/guides/vision.md: capability 'Image understanding': quote not in the document: "
        "'The vision model reads images and draws pictures of cats.'"
    )


def test_quote_matching_tolerates_markdown_and_whitespace(tmp_path):
    toml = GOLDEN.replace(
        '"The vision model reads images and answers questions about charts."',
        '"the  VISION model reads\\nimages and answers questions about charts"',
    )
    golden = load_golden(write_set(tmp_path, toml))
    [(_, _, vision)] = [c for c in golden.capabilities() if c[2].name == "Image understanding"]
    text = DOCS["guides/vision.md"]
    q = vision.quotes[0]
    assert text[q.start : q.end].startswith("The **vision model**") and q.score == 100.0


def test_duplicate_capability_name_is_refused(tmp_path):
    toml = GOLDEN.replace('name = "Batch inference"', 'name = "function  Calling"')
    assert refusal(tmp_path, toml) == (
        "acme/api.md: capability 'function calling': duplicate name in this document"
    )


def test_unknown_category_is_refused(tmp_path):
    toml = GOLDEN.replace('category = "batch"', 'category = "batching"')
    message = refusal(tmp_path, toml)
    assert message.startswith(
        "acme/api.md: capability 'Batch inference': unknown category 'batching' (one of: models, "
    )


def test_empty_quote_list_is_refused(tmp_path):
    toml = GOLDEN.replace(
        'quotes = ["Function calling lets the model ask your code to run a function."]',
        "quotes = []",
    )
    assert refusal(tmp_path, toml) == (
        "acme/api.md: capability 'Function calling': empty quote list: "
        "give at least one verbatim quote"
    )


def test_fact_with_a_number_the_page_lacks_is_refused(tmp_path):
    toml = GOLDEN.replace('"24 hours"', '"48 hours"')
    assert refusal(tmp_path, toml) == (
        "acme/api.md: capability 'Batch inference': fact '48 hours': "
        "number 48 is not in the document"
    )


def test_structural_errors_name_the_place(tmp_path):
    typo = GOLDEN.replace('facts = ["charts"', 'fact = ["charts"')
    assert refusal(tmp_path, typo) == (
        "acme/guides/vision.md: capability 'Image understanding': fact: "
        "unknown key (check its spelling)"
    )
    missing = GOLDEN.replace('sha256 = "{vision}"\n', "")
    assert refusal(tmp_path, missing) == "acme/guides/vision.md: sha256: missing key"
    assert refusal(tmp_path, "version = 1\n") == "name: missing key"
    not_text = GOLDEN.replace('"half price", "24 hours"', '"half price", 24')
    assert refusal(tmp_path, not_text) == (
        "acme/api.md: capability 'Batch inference': facts[2]: Input should be a valid string"
    )
    nameless = GOLDEN.replace('name = "Image understanding"\n', "")
    assert refusal(tmp_path, nameless) == "acme/guides/vision.md: capability #1: name: missing key"
    bad_toml = refusal(tmp_path, 'name = "x\n')
    assert bad_toml.startswith("not valid TOML (")


def test_document_without_capabilities_needs_a_note(tmp_path):
    bare = GOLDEN.split("[[tool.document.capability]]")[0]
    assert refusal(tmp_path, bare) == "acme/api.md: no capabilities and no note saying why"
    noted = bare.replace('sha256 = "{api}"', 'sha256 = "{api}"\nnote = "A pricing stub."')
    golden = load_golden(write_set(tmp_path, noted))
    assert golden.tools[0].documents[0].note == "A pricing stub."
    assert golden.tools[0].unlisted == ("guides/vision.md",)


def test_corpus_root_needs_the_corpus_folder(tmp_path):
    toml = GOLDEN.replace('root = "docs"', 'root = "corpus:docs"')
    assert refusal(tmp_path, toml) == (
        "tool acme: root 'corpus:docs' needs the corpus folder, and none was given"
    )
    golden = load_golden(write_set(tmp_path, toml), corpus=tmp_path)
    assert golden.tools[0].path == (tmp_path / "docs").as_posix()
    assert golden.tools[0].root == "corpus:docs"


def test_duplicate_tool_and_document_are_refused(tmp_path):
    tool = GOLDEN[GOLDEN.index("[[tool]]") :]
    assert refusal(tmp_path, GOLDEN + "\n" + tool) == "tool acme: listed more than once"
    doc = GOLDEN[GOLDEN.index('[[tool.document]]\nsource = "guides') :]
    assert refusal(tmp_path, GOLDEN + "\n" + doc) == (
        "acme/guides/vision.md: document listed more than once"
    )


def test_skeleton_lists_every_page_with_its_stored_hash(tmp_path):
    write_set(tmp_path)
    text = skeleton("acme", "docs", tmp_path / "docs")
    data = tomllib.loads(text)
    [tool] = data["tool"]
    assert (tool["slug"], tool["root"]) == ("acme", "docs")
    assert {d["source"]: d["sha256"] for d in tool["document"]} == {
        "api.md": sha(DOCS["api.md"]),
        "guides/vision.md": sha(DOCS["guides/vision.md"]),
    }


# --- the shipped golden sets -------------------------------------------------------------------


def check_shipped(golden: GoldenSet) -> None:
    """Every page under each root is listed, and the labels are distinct enough that the golden
    set scored against itself is perfect."""
    for tool in golden.tools:
        assert tool.unlisted == (), f"{tool.slug}: pages not in the golden set: {tool.unlisted}"
        for document in tool.documents:
            assert document.capabilities or document.note
    report = score(golden, golden_as_extracted(golden))
    assert report.capabilities.recall == 1.0
    assert report.capabilities.precision == 1.0
    assert report.capabilities.facts_share == 1.0
    assert report.evidence.recovered_share == 1.0
    assert report.unmatched == () and report.missed == ()
    # Harder: descriptions replaced by the must-quotes, the words a model would start from.
    quoted = [
        e.model_copy(update={"description": " ".join(q.text for q in e.evidence)})
        for e in golden_as_extracted(golden)
    ]
    paired = score(golden, quoted).matches
    assert [(m.golden, m.extracted) for m in paired] == [(m.golden, m.golden) for m in paired]
    assert len(paired) == report.capabilities.golden


def test_demo_golden_set_loads_and_scores_itself_perfectly():
    golden = load_golden(DEMO)
    assert [t.slug for t in golden.tools] == ["mistral-api", "llama-4"]
    assert [len(t.documents) for t in golden.tools] == [7, 3]
    assert golden.count() >= 30
    check_shipped(golden)


def test_demo_golden_hashes_are_ingests_hashes():
    golden = load_golden(DEMO)
    for tool in golden.tools:
        stored = stored_documents(Path(tool.path))
        for document in tool.documents:
            assert document.sha256 == stored[document.source].content_hash


@pytest.mark.corpus
@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")
def test_corpus_golden_set_covers_the_corpus_and_scores_itself_perfectly():
    golden = load_golden(CORPUS_SET, corpus=CORPUS)
    assert [t.slug for t in golden.tools] == ["mistral-api", "llama-4", "cohere-api"]
    assert sum(len(t.documents) for t in golden.tools) == 27
    assert golden.count() >= 60
    empty = sorted(f"{t.slug}/{d.source}" for t in golden.tools for d in t.documents if not d.note)
    assert len(empty) == 25  # all but the two pages that state no capability
    check_shipped(golden)
