"""`decomposer eval`: the demo golden set replayed offline and held to its recorded band, the
corpus set through the fake provider, stored runs listed, shown, compared and reported as HTML,
bad golden files refused in one line, and the user's store never touched by the extraction."""

from __future__ import annotations

import contextlib
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from decomposer.evals.band import figures, load_band, outside
from decomposer.evals.compare import compare_runs
from decomposer.evals.golden import load_golden
from decomposer.evals.html import bar_chart
from decomposer.evals.report import EvalReport
from decomposer.evals.runs import EvalSettings, list_runs, save_run
from decomposer.evals.score import score
from decomposer.store import open_store
from decomposer.store.eval_models import EvalRunRecord
from decomposer.store.models import Capability, Document, LLMCall, Tool
from support.fakeprovider import FakeConfig, create_app
from support.servers import serve
from test_evals import BATCH, FUNCTIONS, GOLDEN, VISION, write_set

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
DEMO = REPO / "fixtures" / "golden" / "demo.toml"
BAND = REPO / "fixtures" / "golden" / "demo-band.toml"
RECORDINGS = REPO / "fixtures" / "recordings"
CORPUS_SET = REPO / "fixtures" / "golden" / "corpus.toml"
HARNESS_NOTE = "measure the harness (ingest, extraction, grounding, scoring), not a model"


def user_rows(settings) -> dict[str, int]:
    store = open_store(settings.database_url)
    with store.transaction() as s:
        counts = {
            table.__tablename__: s.scalar(select(func.count()).select_from(table)) or 0
            for table in (Tool, Document, Capability, LLMCall, EvalRunRecord)
        }
    store.dispose()
    return counts


def band_figures(run: dict) -> dict[str, float | None]:
    return figures(EvalReport.model_validate(run["report"]))


# --- the demo set, offline ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> dict:
    """One replayed eval of the demo set, run once for the tests that read its figures."""
    from decomposer.cli.app import main

    home = tmp_path_factory.mktemp("home")
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        args = ["--home", str(home), "eval", str(DEMO), "--replay", str(RECORDINGS), "--json"]
        code = main(args)
    assert code == 0
    return json.loads(buffer.getvalue())


def test_demo_set_replayed_stays_within_its_recorded_band(demo_run):
    band = load_band(BAND)
    assert set(band) == set(band_figures(demo_run))
    problems = outside(EvalReport.model_validate(demo_run["report"]), band)
    assert problems == [], (
        f"{problems}: if the change is meant to move the figures, update "
        "fixtures/golden/demo-band.toml (python scripts/demo_band.py --write)"
    )
    settings = demo_run["settings"]
    assert (settings["answers"], settings["golden_name"]) == ("replay", "demo")
    assert settings["provider"] == "mistral" and settings["prompt_hash"]
    assert len(settings["golden_sha256"]) == 64 and settings["code_version"]


def test_eval_prints_the_summary_and_never_writes_the_users_store(cli, settings):
    before = user_rows(settings)
    code, out, err = cli("eval", str(DEMO), "--replay", str(RECORDINGS))
    assert code == 0, err
    for line in (
        "recall",
        "precision",
        "must-quotes recovered",
        "quotes grounded",
        "unique stated",
        "vs alternatives stated",
        "unsupported numbers",
        "per document",
        "per correct capability",
    ):
        assert line in out, line
    assert "answers replayed from recordings" in out
    assert "mistral-api/embeddings.md" in out  # the per-document table
    after = user_rows(settings)
    assert after == {**before, "eval_runs": before["eval_runs"] + 1}
    assert after["tools"] == after["documents"] == after["capabilities"] == 0
    assert after["llm_calls"] == 0


def test_eval_run_and_the_shorthand_are_the_same_command(cli, settings):
    code, out, _ = cli("eval", "run", str(DEMO), "--replay", str(RECORDINGS), "--json")
    assert code == 0
    first = json.loads(out)
    second = cli.json("eval", str(DEMO), "--replay", str(RECORDINGS))
    assert (first["id"], second["id"]) == (1, 2)
    assert first["report"] == second["report"] | {"cost": first["report"]["cost"]}
    assert band_figures(first) == band_figures(second)  # deterministic except latency


def test_band_option_fails_a_run_that_leaves_its_band(cli, tmp_path):
    band = tmp_path / "band.toml"
    band.write_text("[band.recall]\nmin = 0.99\nmax = 1.0\n")
    code, out, err = cli("eval", str(DEMO), "--replay", str(RECORDINGS), "--band", str(band))
    assert code == 1 and "recall" in out  # the summary is printed, then the verdict
    assert re.fullmatch(
        r"error: eval run 1 left the band in .*: recall = 0\.\d+ is outside "
        r"\[0\.99, 1\.0\]\n",
        err,
    ), err
    assert cli("eval", str(DEMO), "--replay", str(RECORDINGS), "--band", str(BAND))[0] == 0
    band.write_text("[band.recal]\nmin = 0\nmax = 1\n")
    code, _, err = cli("eval", str(DEMO), "--band", str(band))
    assert code == 1 and "band.recal: unknown figure" in err


def test_a_replay_that_lacks_a_page_is_one_line(cli, tmp_path):
    only = tmp_path / "rec"
    only.mkdir()
    (only / "llama-4.json").write_text((RECORDINGS / "llama-4.json").read_text())
    code, _, err = cli("eval", str(DEMO), "--replay", str(only))
    assert code == 1
    assert err.startswith("error: no recording in ") and err.count("\n") <= 2


# --- bad golden files at the command line -------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('source = "api.md"', 'source = "apis.md"', "acme/apis.md: unknown document"),
        (
            "answers questions about charts.",
            "draws pictures of cats.",
            "acme/guides/vision.md: capability 'Image understanding': quote not in the document",
        ),
        (
            'name = "Batch inference"',
            'name = "Function calling"',
            "acme/api.md: capability 'function calling': duplicate name in this document",
        ),
    ],
)
def test_bad_golden_files_are_refused_in_one_line(cli, settings, tmp_path, old, new, expected):
    file = write_set(tmp_path, GOLDEN.replace(old, new))
    code, out, err = cli("eval", str(file), "--replay", str(RECORDINGS))
    assert code == 1 and out == ""
    assert err.startswith(f"error: {file.as_posix()}: {expected}")
    assert len(err.strip().splitlines()) == 1 or err.splitlines()[1].startswith("hint")
    assert user_rows(settings)["eval_runs"] == 0


def test_a_corpus_set_without_its_corpus_says_what_to_pass(cli, tmp_path):
    file = write_set(tmp_path, GOLDEN.replace('root = "docs"', 'root = "corpus:docs"'))
    code, _, err = cli("eval", str(file), "--replay", str(RECORDINGS))
    assert code == 1
    assert "root 'corpus:docs' needs the corpus folder" in err
    assert cli("eval", str(file), "--corpus", str(tmp_path), "--replay", str(tmp_path))[0] == 1


# --- stored runs: list, show, compare, report ---------------------------------------------------


def stored(session, golden, caps, model: str, cost_usd: float | None = 0.01) -> int:
    from decomposer.evals.inputs import CostInput

    cost = CostInput(calls=3, input_tokens=900, output_tokens=300, cost_usd=cost_usd, latency_s=2.0)
    settings = EvalSettings(
        golden_name=golden.name,
        golden_path=golden.path,
        golden_sha256="a" * 64,
        provider="mistral",
        model=model,
        mode="json_schema",
        prompt_version="v1",
        prompt_hash="b" * 64,
        chunk_tokens=800,
        pack_tokens=800,
        max_tokens=4096,
        concurrency=4,
        answers="live",
        code_version="0.1.0",
    )
    report = score(golden, caps, cost=cost)
    return save_run(session, settings, report, datetime(2026, 12, 2, tzinfo=UTC))


@pytest.fixture
def two_runs(tmp_path, store):
    golden = load_golden(write_set(tmp_path))
    with store.transaction() as s:
        a = stored(s, golden, [FUNCTIONS, BATCH], "small")
        b = stored(
            s,
            golden,
            [FUNCTIONS, VISION, VISION.model_copy(update={"name": "Vision <b>"})],
            "large",
            cost_usd=None,
        )
    return a, b


def test_compare_counts_deltas_wins_losses_and_one_sided_finds(two_runs, store):
    with store.transaction() as s:
        a, b = list_runs(s)
    c = compare_runs(a, b)
    metrics = {m.metric: m for m in c.metrics}
    assert metrics["recall"].delta == 0.0
    assert metrics["precision"].a == 1.0 and metrics["precision"].delta == pytest.approx(
        -1 / 3, abs=1e-3
    )
    assert metrics["cost $"].b is None and metrics["cost $"].delta is None  # unknown, not 0
    assert [(d.source, d.outcome) for d in c.documents] == [
        ("api.md", "loss"),
        ("guides/vision.md", "win"),
    ]
    assert [x.golden for x in c.only_a] == ["Batch inference"]
    assert [x.golden for x in c.only_b] == ["Image understanding"]
    assert c.settings_changed == {"model": ("small", "large")}


def test_list_show_and_compare_from_the_cli(cli, two_runs):
    a, b = two_runs
    listed = cli.json("eval", "list")
    assert [r["id"] for r in listed] == [a, b] and listed[1]["cost"]["cost_usd"] is None
    code, out, _ = cli("eval", "list")
    assert code == 0 and "small" in out and "unknown" in out
    shown = cli.json("eval", "show", str(a))
    assert shown["report"]["capabilities"]["matched"] == 2
    code, out, _ = cli("eval", "show", "latest")
    assert code == 0 and f"eval run {b}" in out and "Vision <b>" in out
    code, out, _ = cli("eval", "compare", str(a), str(b))
    assert code == 0
    assert "model: small -> large" in out
    assert re.search(r"precision\s+1\s+0\.6667\s+-0\.3333", out), out
    assert (
        "loss: acme/api.md 2 -> 1 of 2" in out and "win: acme/guides/vision.md 0 -> 1 of 1" in out
    )
    assert "found only by A (run 1): 1\n  acme: Batch inference [api.md]" in out
    assert (
        cli.json("eval", "compare", str(a), str(b))["only_b"][0]["golden"] == "Image understanding"
    )
    code, _, err = cli("eval", "show", "99")
    assert (code, err) == (1, "error: unknown eval run 99 — see `decomposer eval list`\n")


def test_html_reports_are_standalone_with_svg_charts(cli, two_runs, tmp_path):
    a, b = two_runs
    for args, name in (
        (["show", str(b)], "show.html"),
        (["compare", str(a), str(b)], "compare.html"),
        (["report"], "report.html"),
    ):
        out_file = tmp_path / name
        extra = ["--format", "html"] if args[0] != "report" else []
        code, _out, err = cli("eval", *args, *extra, "--out", str(out_file))
        assert code == 0, err
        html = out_file.read_text()
        assert html.startswith("<!doctype html>") and "<svg" in html
        assert "<script" not in html and "<link" not in html
        assert re.findall(r"(?:src|href)=", html) == []
        urls = set(re.findall(r"https?://[^\"' ]+", html))
        assert urls == {"http://www.w3.org/2000/svg"}
        assert "Vision <b>" not in html
    assert "Vision &lt;b&gt;" in (tmp_path / "show.html").read_text()
    compare = (tmp_path / "compare.html").read_text()
    assert "Recall per document" in compare and 'class="n loss"' in compare
    assert "unknown" in compare  # run b has no price: never drawn as $0


def test_bar_chart_draws_unknown_as_text_not_a_bar():
    svg = bar_chart("t", ["x"], ["a", "b"], [[0.5, None]])
    assert svg.count("<rect") == 2 + 1  # two legend keys, one bar
    assert ">unknown</text>" in svg


def test_unknown_format_and_both_json_and_format_are_refused(cli, two_runs):
    assert cli("eval", "show", "1", "--format", "pdf")[0] == 1
    assert cli("eval", "show", "1", "--json", "--format", "html")[0] == 1


# --- the corpus set through the fake provider ---------------------------------------------------


@pytest.mark.corpus
@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")
def test_corpus_set_runs_end_to_end_through_the_fake_provider(cli, settings):
    with serve(create_app(FakeConfig(latency_ms=1, latency_p99_ms=2))) as base:
        code, out, err = cli(
            "eval",
            str(CORPUS_SET),
            "--corpus",
            str(CORPUS),
            "--provider",
            "openai-compatible",
            "--base-url",
            f"{base}/v1",
            "--model",
            "fake",
            "--harness",
        )
    assert code == 0, err
    assert HARNESS_NOTE in out
    run = cli.json("eval", "show", "latest")
    assert run["settings"]["answers"] == "harness"
    report = run["report"]
    golden = load_golden(CORPUS_SET, corpus=CORPUS)
    assert (
        report["capabilities"]["golden"] == 93
        and report["capabilities"]["labels"] == golden.count()
    )
    # The fake quotes each page's first sentence verbatim: every quote grounds.
    assert report["evidence"]["grounded_share"] == 1.0
    assert report["capabilities"]["extracted"] > 0
    assert report["cost"]["calls"] > 0 and report["cost"]["documents"] == 27
    assert user_rows(settings)["capabilities"] == 0


def test_keep_scratch_keeps_the_extraction_out_of_the_users_store(cli, settings, tmp_path):
    scratch = tmp_path / "scratch"
    code, out, err = cli(
        "eval", str(DEMO), "--replay", str(RECORDINGS), "--keep-scratch", str(scratch)
    )
    assert code == 0, err
    assert f"scratch store kept: {scratch / 'scratch.db'}" in out
    kept = open_store(f"sqlite:///{scratch / 'scratch.db'}")
    with kept.transaction() as s:
        tools = sorted(s.scalars(select(Tool.slug)))
        capabilities = s.scalar(select(func.count()).select_from(Capability))
        calls = s.scalar(select(func.count()).select_from(LLMCall))
    kept.dispose()
    assert tools == ["llama-4", "mistral-api"] and capabilities == 31 and calls == 2
    assert user_rows(settings) == {
        "tools": 0,
        "documents": 0,
        "capabilities": 0,
        "llm_calls": 0,
        "eval_runs": 1,
    }
    code, _, err = cli(
        "eval", str(DEMO), "--replay", str(RECORDINGS), "--keep-scratch", str(scratch)
    )
    assert code == 1 and "already exists: an eval needs an empty scratch folder" in err


# --- the optional judge -------------------------------------------------------------------------


def test_judge_labels_unmatched_extractions_with_a_checked_quote(cli, settings, tmp_path):
    file = write_set(tmp_path)
    office = "Acme offices are open on weekdays from nine to five."
    (tmp_path / "docs" / "office.md").write_text(f"# Office\n\n{office}\n")
    with serve(create_app(FakeConfig(latency_ms=1, latency_p99_ms=2))) as base:
        code, out, err = cli(
            "eval",
            str(file),
            "--provider",
            "openai-compatible",
            "--base-url",
            f"{base}/v1",
            "--model",
            "fake",
            "--harness",
            "--judge",
            "--pack-tokens",
            "1",
        )
    assert code == 0, err
    assert "judge: supported — The page states it." in out
    assert "verdicts are model-written" in out
    report = cli.json("eval", "show", "latest")["report"]
    judge = report["judge"]
    [verdict] = judge["verdicts"]
    assert verdict["supported"] is True and verdict["quote"] == office
    assert (judge["judged"], judge["supported"], judge["calls"]) == (1, 1, 1)
    caps = report["capabilities"]
    assert judge["precision"] == round((caps["matched"] + 1) / caps["extracted"], 4)
    assert report["cost"]["calls"] == 3  # the extraction's calls; the judge's are its own
    assert user_rows(settings)["llm_calls"] == 0


def test_a_supported_verdict_must_quote_the_documents():
    from pydantic import ValidationError

    from decomposer.evals.judge import Verdict

    documents = {"documents": [{"source": "a.md", "text": "Acme runs batch jobs at half price."}]}
    good = '{"supported": true, "quote": "runs batch jobs at half price", "reason": "stated"}'
    assert Verdict.model_validate_json(good, context=documents).supported
    invented = '{"supported": true, "quote": "runs jobs for free", "reason": "stated"}'
    with pytest.raises(ValidationError, match="quote copied exactly"):
        Verdict.model_validate_json(invented, context=documents)
    no = '{"supported": false, "quote": "", "reason": "not on the page"}'
    assert not Verdict.model_validate_json(no, context=documents).supported


def test_judge_and_replay_are_refused_together(cli):
    code, _, err = cli("eval", str(DEMO), "--replay", str(RECORDINGS), "--judge")
    assert code == 1 and "recordings hold no judge answers" in err
