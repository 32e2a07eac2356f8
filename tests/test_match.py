"""Search queries, the match graph, Times Matched in scores and pages, explain and similar."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from decomposer.core.errors import InputError
from decomposer.matching.queries import parse_queries
from decomposer.store.match_models import MatchEdge, MatchRun, SearchQuery, SearchQueryCount
from pages_support import AS_OF, add_tool, run

ACME = [
    {
        "name": "Text embeddings",
        "category": "embeddings",
        "description": "Generates vector embeddings from text for semantic search and RAG.",
        "unique": "Multilingual embeddings.",
    },
    {
        "name": "Fine-tuning",
        "category": "fine-tuning",
        "description": "Fine-tune the model on your own datasets with LoRA adapters.",
        "unique": "Jobs run asynchronously.",
    },
    {
        "name": "Invoices",
        "category": "platform",
        "description": "Monthly invoices are emailed to the account owner.",
        "unique": "PDF invoices.",
    },
]
BETA = [
    {
        "name": "Embedding API",
        "category": "embeddings",
        "description": "Turns text into embedding vectors for semantic search.",
        "unique": "Cheap.",
    },
    {
        "name": "Custom fine-tuning",
        "category": "fine-tuning",
        "description": "Fine-tunes models on a customer's datasets.",
        "unique": "Full-parameter.",
    },
    {
        "name": "Weather radar",
        "category": "other",
        "description": "Shows rain clouds moving over a map in real time.",
        "unique": "Live.",
    },
]
GAMMA = [
    {
        "name": "Recipes",
        "category": "other",
        "description": "Suggests dinner recipes from what is in the fridge.",
        "unique": "Tasty.",
    }
]
QUERIES = (
    "query,count,date\n"
    "text embeddings for semantic search,40,2025-06-01\n"
    "text embeddings for semantic search,10,2025-06-02\n"
    "fine-tune on my datasets,7,2025-06-01\n"
    "weather radar map,3,\n"
    "quantum teleportation,100,2025-06-01\n"
)


@pytest.fixture
def tools(store):
    add_tool(store, "acme", ACME)
    add_tool(store, "beta", BETA)
    add_tool(store, "gamma", GAMMA)
    return store


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, "utf-8")
    return path


# --- query files ---------------------------------------------------------------------------------


def test_plain_file_one_query_per_line(tmp_path):
    path = write(tmp_path, "q.txt", "rag embeddings\n\n  lora   fine tuning \nrag, cheap\n")
    rows = parse_queries(path)
    assert [(r.line, r.text, r.count, r.day) for r in rows] == [
        (1, "rag embeddings", 1, ""),
        (3, "lora fine tuning", 1, ""),
        (4, "rag, cheap", 1, ""),  # no CSV header: commas are part of the query
    ]


def test_csv_with_header_in_any_order_and_optional_columns(tmp_path):
    path = write(tmp_path, "q.csv", 'count,query\n3,"rag, cheap"\n,plain\n')
    rows = parse_queries(path)
    assert [(r.text, r.count, r.day) for r in rows] == [("rag, cheap", 3, ""), ("plain", 1, "")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("query,count\nok,1\nbad,zero\n", "q:3: count must be a whole number"),
        ("query,count\nok,1\nbad,0\n", "q:3: count must be a whole number"),
        ("query,date\nok,2025-06-01\nbad,01/06/2025\n", "q:3: date must be YYYY-MM-DD"),
        ("query,date\nok,2025-02-30\n", "q:2: date must be YYYY-MM-DD"),
        ("query,count\nok,1,extra\n", "q:2: expected 2 fields"),
        ("query,count\n,4\n", "q:2: empty query"),
        ("query,clicks\nx,1\n", "q:1: unknown column 'clicks'"),
        ("first\nsecond \x07bell\n", "q:2: control characters"),
        ("ok\n" + "x" * 1001 + "\n", "q:2: query is 1001 characters long"),
        ("\n\n", "no queries"),
    ],
)
def test_bad_lines_are_refused_with_their_line_number(tmp_path, text, message):
    path = write(tmp_path, "q", text)
    with pytest.raises(InputError) as info:
        parse_queries(path)
    assert message in str(info.value).replace(str(tmp_path) + "/", "")


def test_non_utf8_names_the_line(tmp_path):
    path = tmp_path / "q.txt"
    path.write_bytes(b"fine\nalso fine\nbad \xff byte\n")
    with pytest.raises(InputError, match=r"q.txt:3: not UTF-8"):
        parse_queries(path)


def test_a_bad_file_imports_nothing(tools, settings, capsys, tmp_path):
    path = write(tmp_path, "q.csv", "query,count\ngood one,2\nbad one,-1\n")
    code, _out, err = run(capsys, "match", "import-queries", str(path))
    assert code == 1
    assert err.strip().startswith("error: ") and ":3: count must be" in err
    assert len(err.strip().splitlines()) == 1
    with tools.transaction() as s:
        assert s.scalar(select(func.count()).select_from(SearchQuery)) == 0


def test_import_sums_days_and_is_idempotent(tools, capsys, tmp_path):
    path = write(tmp_path, "q.csv", QUERIES)
    code, out, err = run(capsys, "match", "import-queries", str(path))
    assert code == 0, err
    assert "5 queries" not in out and "4 queries (160 searches), 4 new, 5 counts set" in out
    code, out, _ = run(capsys, "match", "import-queries", str(path))
    assert "0 new, 0 counts set, 5 unchanged" in out
    with tools.transaction() as s:
        assert s.scalar(select(func.sum(SearchQueryCount.count))) == 160
    code, out, _ = run(
        capsys, "match", "import-queries", "--replace", str(write(tmp_path, "b.txt", "a\nb\n"))
    )
    with tools.transaction() as s:
        assert sorted(s.scalars(select(SearchQuery.text))) == ["a", "b"]


# --- the match graph ------------------------------------------------------------------------------


def imported(capsys, tmp_path, text=QUERIES):
    code, _, err = run(capsys, "match", "import-queries", str(write(tmp_path, "q.csv", text)))
    assert code == 0, err


def test_run_builds_the_graph_and_times_matched_weights_by_count(tools, capsys, tmp_path):
    imported(capsys, tmp_path)
    code, out, err = run(capsys, "match", "run", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["model"] == "lexical-tfidf-1"
    assert report["queries"] == 4 and report["capabilities"] == 7
    # embeddings query (50 searches) hits acme + beta; fine-tune (7) hits acme + beta;
    # weather (3) hits beta only; quantum (100) hits nothing; gamma is never matched.
    assert report["times_matched"] == {"acme": 57, "beta": 60}
    assert report["matched_queries"] == 3
    with tools.transaction() as s:
        runs = s.scalars(select(MatchRun)).all()
        assert [r.status for r in runs] == ["succeeded"]
        edges = s.scalars(select(MatchEdge)).all()
        assert len(edges) == report["edges"] > 0
        assert all(0 < e.score <= 1 for e in edges)
        assert all(e.rank <= 10 for e in edges)


def test_run_is_deterministic_and_replaces_the_previous_graph(tools, capsys, tmp_path):
    imported(capsys, tmp_path)
    first = json.loads(run(capsys, "match", "run", "--json")[1])
    second = json.loads(run(capsys, "match", "run", "--json")[1])
    assert first["digest"] == second["digest"]
    assert first["times_matched"] == second["times_matched"]
    assert second["run_id"] == first["run_id"] + 1
    with tools.transaction() as s:
        assert set(s.scalars(select(MatchEdge.run_id))) == {second["run_id"]}


def test_top_k_and_threshold_options(tools, capsys, tmp_path):
    imported(capsys, tmp_path)
    report = json.loads(run(capsys, "match", "run", "--top-k", "1", "--json")[1])
    assert report["edges"] <= report["queries"]
    strict = json.loads(run(capsys, "match", "run", "--threshold", "0.99", "--json")[1])
    assert strict["times_matched"] == {}
    code, _, err = run(capsys, "match", "run", "--top-k", "0")
    assert code == 1 and "--top-k must be at least 1" in err


def test_run_without_queries_is_a_clear_error(tools, capsys):
    code, _, err = run(capsys, "match", "run")
    assert code == 1 and "no search queries" in err and "import-queries" in err


def test_rejected_capabilities_stop_counting(tools, capsys, tmp_path):
    from pages_support import set_status

    imported(capsys, tmp_path)
    run(capsys, "match", "run")
    set_status(tools, "Weather radar", "rejected")
    explained = json.loads(run(capsys, "match", "explain", "beta", "--json")[1])
    assert explained["times_matched"] == 57
    assert "weather radar map" not in [q["query"] for q in explained["queries"]]


def test_explain_lists_queries_and_why(tools, capsys, tmp_path):
    imported(capsys, tmp_path)
    run(capsys, "match", "run")
    code, out, err = run(capsys, "match", "explain", "acme", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["times_matched"] == 57
    assert [q["query"] for q in data["queries"]] == [
        "text embeddings for semantic search",
        "fine-tune on my datasets",
    ]
    top = data["queries"][0]
    assert top["searches"] == 50
    assert top["hits"][0]["capability"] == "Text embeddings"
    assert {"embed", "semant", "search"} <= set(top["hits"][0]["shared_terms"])
    code, out, _ = run(capsys, "match", "explain", "acme")
    assert "Times Matched 57 from 2 queries" in out
    assert "#1 Text embeddings" in out
    code, _, err = run(capsys, "match", "explain", "nope")
    assert code == 1 and "unknown tool" in err


def test_explain_before_any_run(tools, capsys):
    code, out, _ = run(capsys, "match", "explain", "acme")
    assert code == 0 and "no match graph yet" in out


def test_similar_lists_alternatives_with_the_shared_pairs(tools, capsys):
    code, out, err = run(capsys, "match", "similar", "acme", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert [t["slug"] for t in data["similar"]] == ["beta"]  # gamma shares nothing
    beta = data["similar"][0]
    assert beta["shared_count"] == 2
    assert {(p["mine"], p["theirs"]) for p in beta["shared"]} == {
        ("Text embeddings", "Embedding API"),
        ("Fine-tuning", "Custom fine-tuning"),
    }
    assert beta["only_in_tool"] == 1 and beta["only_in_other"] == 1
    code, out, _ = run(capsys, "match", "similar", "acme")
    assert "beta (Beta): 2 shared" in out and "Text embeddings  ↔  Embedding API" in out


# --- pages and scores -----------------------------------------------------------------------------


def test_times_matched_feeds_the_match_graph_score_and_the_page(tools, capsys, tmp_path):
    before = json.loads(
        run(capsys, "compare", "acme", "beta", "--format", "json", "--as-of", AS_OF)[1]
    )
    assert before["a"]["subscores"]["match_graph"] == 0
    imported(capsys, tmp_path)
    run(capsys, "match", "run")
    code, out, err = run(capsys, "compare", "acme", "beta", "--format", "json", "--as-of", AS_OF)
    assert code == 0, err
    page = json.loads(out)
    assert page["a"]["times_matched"] == 57 and page["b"]["times_matched"] == 60
    assert page["b"]["subscores"]["match_graph"] == 100
    assert 0 < page["a"]["subscores"]["match_graph"] < 100
    rows = {r["name"]: (r["a"], r["b"]) for r in page["rows"]}
    assert rows["Times Matched"] == ("57", "60")
    score = json.loads(run(capsys, "score", "acme", "--json", "--as-of", AS_OF)[1])
    assert score["match_graph"]["value"] == page["a"]["subscores"]["match_graph"]


def test_page_json_and_markdown_carry_the_alignment(tools, capsys):
    code, out, err = run(capsys, "compare", "acme", "beta", "--format", "json", "--as-of", AS_OF)
    assert code == 0, err
    page = json.loads(out)
    assert {(p["a"]["name"], p["b"]["name"]) for p in page["shared"]} == {
        ("Text embeddings", "Embedding API"),
        ("Fine-tuning", "Custom fine-tuning"),
    }
    assert all(p["similarity"] >= page["alignment"]["threshold"] for p in page["shared"])
    assert [c["name"] for c in page["only_in_a"]] == ["Invoices"]
    assert [c["name"] for c in page["only_in_b"]] == ["Weather radar"]
    md = run(capsys, "compare", "acme", "beta", "--as-of", AS_OF)[1]
    section = md.split("## Shared capabilities", 1)[1].split("## Verdict", 1)[0]
    assert "| Acme | Beta | Similarity |" in section
    assert "| Text embeddings | Embedding API |" in section
    assert "Only in Acme: Invoices." in section
    assert "Only in Beta: Weather radar." in section
    html = run(capsys, "compare", "acme", "beta", "--format", "html", "--as-of", AS_OF)[1]
    assert '<section class="shared"' in html and "<td>Custom fine-tuning</td>" in html


def test_no_shared_capabilities_is_said_plainly(tools, capsys):
    md = run(capsys, "compare", "acme", "gamma", "--as-of", AS_OF)[1]
    assert "No capability of Acme has a counterpart in Gamma" in md
    assert "Only in Gamma: Recipes." in md


def test_regenerate_rewrites_pages_when_the_match_graph_changes(tools, capsys, tmp_path):
    out_dir = tmp_path / "pages"
    args = ("regenerate", "--out-dir", str(out_dir), "--as-of", AS_OF, "--json")
    first = json.loads(run(capsys, *args)[1])
    assert first["written"] > 0
    assert json.loads(run(capsys, *args)[1])["written"] == 0
    imported(capsys, tmp_path)
    run(capsys, "match", "run")
    changed = json.loads(run(capsys, *args)[1])
    assert changed["written"] == first["written"]
    assert json.loads(out_dir.joinpath("acme-vs-beta.json").read_text())["a"]["times_matched"] == 57
    run(capsys, "match", "run")  # same inputs, same graph digest: nothing to rewrite
    assert json.loads(run(capsys, *args)[1])["written"] == 0
