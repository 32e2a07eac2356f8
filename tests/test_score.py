"""Scores: each sub-score from its documented formula, Rank from the displayed sub-scores,
configurable weights, and `score --explain` showing every input."""

from __future__ import annotations

import math
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from decomposer.catalog.score import (
    SUBSCORES,
    Context,
    QualityInputs,
    ToolInputs,
    Weights,
    months_between,
    parse_weights,
    score_all,
    score_tool,
)
from decomposer.core.errors import InputError
from pages_support import AS_OF, FIXTURES, run

AS = date(2025, 7, 15)


def test_adoption_is_log_normalised_against_the_catalogue_and_skips_missing_signals():
    tools = {
        "big": ToolInputs("big", {"github_stars": 10_000, "monthly_downloads": 1_000_000}),
        "small": ToolInputs("small", {"github_stars": 100}),
        "none": ToolInputs("none", {}),
    }
    cards = score_all(tools, Weights(), AS)
    assert cards["big"].subscores["adoption"].value == 100
    expected = 100 * math.log1p(100) / math.log1p(10_000)
    assert cards["small"].subscores["adoption"].exact == pytest.approx(expected)
    assert cards["small"].subscores["adoption"].value == 50
    assert cards["none"].subscores["adoption"].value is None  # unknown, not 0
    assert "no adoption signal" in cards["none"].subscores["adoption"].how


def test_quality_is_the_mean_of_four_shares():
    q = QualityInputs(
        approved=3,
        live=4,
        with_grounded_evidence=4,
        quotes=10,
        grounded_quotes=8,
        profile_known=2,
        profile_fields=4,
    )
    card = score_tool(ToolInputs("t", quality=q), Context({}), Weights(), AS)
    assert card.subscores["quality"].exact == pytest.approx((75 + 100 + 80 + 50) / 4)
    assert card.subscores["quality"].value == 76
    empty = score_tool(ToolInputs("e"), Context({}), Weights(), AS)
    assert empty.subscores["quality"].value == 0


def test_freshness_decays_over_twelve_months_and_match_graph_is_zero_until_built():
    t = ToolInputs("t", last_release=date(2025, 1, 3), docs_updated=date(2025, 7, 1))
    card = score_tool(t, Context.of([t]), Weights(), AS)
    assert months_between(date(2025, 1, 3), AS) == 6
    assert card.subscores["freshness"].exact == pytest.approx((50 + 100) / 2)
    old = score_tool(ToolInputs("o", last_release=date(2020, 1, 1)), Context({}), Weights(), AS)
    assert old.subscores["freshness"].value == 0
    assert card.subscores["match_graph"].value == 0
    assert "match graph is not built" in card.subscores["match_graph"].how
    matched = [ToolInputs("a", times_matched=99), ToolInputs("b", times_matched=9)]
    ctx = Context.of(matched)
    assert score_tool(matched[0], ctx, Weights(), AS).subscores["match_graph"].value == 100
    assert score_tool(matched[1], ctx, Weights(), AS).subscores["match_graph"].value == 50


@given(
    st.fixed_dictionaries(
        {
            n: st.integers(0, 10**7)
            for n in ("github_stars", "monthly_downloads", "hf_likes", "integrations")
        }
    ),
    st.integers(0, 1000),
    st.floats(0, 100),
    st.floats(0, 100),
)
def test_every_score_is_within_0_and_100_and_rank_is_the_weighted_sum(signals, matched, w1, w2):
    weights = Weights(adoption=w1, quality=w2) if w1 + w2 + 50 > 0 else Weights()
    t = ToolInputs("t", signals, times_matched=matched, last_release=date(2025, 1, 1))
    other = ToolInputs("o", {k: v * 2 for k, v in signals.items()}, times_matched=matched + 1)
    card = score_tool(t, Context.of([t, other]), weights, AS)
    for name in SUBSCORES:
        assert 0 <= card.subscores[name].value <= 100
    w = weights.as_dict()
    total = sum(w[n] * card.subscores[n].value for n in SUBSCORES) / weights.total
    assert card.rank == math.floor(total + 0.5 + 1e-9)
    assert 0 <= card.rank <= 100


def test_parse_weights():
    assert parse_weights(None) == Weights()
    assert parse_weights("adoption=30, match-graph=0").as_dict() == {
        "adoption": 30,
        "quality": 25,
        "ecosystem": 10,
        "match_graph": 0,
        "freshness": 15,
    }
    for bad, message in (
        ("speed=3", "invalid weight"),
        ("quality=x", "not a number"),
        ("quality=-1", "≥ 0"),
        ("adoption=0,quality=0,ecosystem=0,match_graph=0,freshness=0", "add up to 0"),
    ):
        with pytest.raises(InputError, match=message):
            parse_weights(bad)


def test_score_explain_prints_every_input(settings, capsys):
    assert run(capsys, "tool", "import", str(FIXTURES / "catalogue.toml"))[0] == 0
    code, out, err = run(capsys, "score", "mistral-api", "--explain", "--as-of", AS_OF)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Rank ")
    assert lines[0].endswith(
        "(weights: Adoption 25, Quality 25, Ecosystem 10, Match Graph 25, Freshness 15)"
    )
    for needle in (
        "GitHub stars: 700 → 100 × ln(1 + 700) / ln(1 + 700) = 100.0",
        "monthly downloads: 1,500,000 →",
        "integrations: 40 →",
        "approved capabilities: 0 / 0 → nothing to measure, so 0",
        "profile fields known: 4 / 4 → 100 × 4 / 4 = 100.0",
        "last release: 2025-05-28 → 2 months old",
        "Match Graph 0/100 = no tool has been matched yet",
    ):
        assert any(needle in line for line in lines), needle
    code, out, _ = run(
        capsys, "score", "mistral-api", "--as-of", AS_OF, "--weights", "quality=100", "--json"
    )
    assert code == 0 and '"quality": 100.0' in out
    code, _, err = run(capsys, "score", "nosuch")
    assert code == 1 and err.startswith("error: unknown tool 'nosuch'")
