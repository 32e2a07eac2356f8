"""Unknown is not zero: missing inputs give "—" and "not enough data", Rank comes from the known
parts with its coverage shown, and no copy claims a lead, tie or price built on missing data."""

from __future__ import annotations

import json
import re
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from decomposer.catalog.score import (
    LABELS,
    SUBSCORES,
    ToolInputs,
    Weights,
    explain,
    score_all,
)
from decomposer.pages.compare import build_comparison
from decomposer.pages.copy import Copywriter
from decomposer.pages.model import Options, ToolSide
from decomposer.pages.render import Renderer, render_json

AS = date(2025, 7, 15)
COPY = Copywriter()
RENDER = Renderer()
WEIGHTS = Weights().as_dict()


def test_a_tool_without_signals_is_unknown_not_zero():
    tools = {
        "big": ToolInputs("big", {"github_stars": 1000, "integrations": 10}),
        "bare": ToolInputs("bare", {}, last_release=date(2025, 6, 1)),
    }
    cards = score_all(tools, Weights(), AS)
    bare = cards["bare"]
    for name in ("adoption", "ecosystem"):
        assert bare.subscores[name].value is None
        assert bare.subscores[name].how.startswith("not enough data: ")
    # Rank from Quality 0, Match Graph 0 and Freshness 92 over weights 25 + 25 + 15 = 65.
    assert bare.coverage == 65
    assert bare.rank == round((25 * 0 + 25 * 0 + 15 * 92) / 65)
    assert "Adoption, Ecosystem unknown, so Rank covers 65% of the weight" in bare.rank_how
    data = bare.as_json()
    assert data["adoption"]["value"] is None and data["adoption"]["exact"] is None
    assert any(line.startswith("Adoption — not enough data") for line in explain(bare, Weights()))
    assert cards["big"].coverage == 85  # no release date, no documents: Freshness unknown


def test_rank_is_unknown_when_no_weighted_part_is_known():
    tools = {"t": ToolInputs("t", {})}
    card = score_all(tools, Weights(adoption=1, quality=0, match_graph=0, freshness=0), AS)["t"]
    assert card.rank is None and card.rank_how.startswith("not enough data")


def side(slug: str, name: str, scores: dict[str, int | None], free: bool | None, priced: bool):
    known = {n: v for n, v in scores.items() if v is not None}
    weight = sum(WEIGHTS[n] for n in known)
    rank = int(sum(WEIGHTS[n] * v for n, v in known.items()) / weight + 0.5) if weight else None
    return ToolSide(
        slug=slug,
        name=name,
        vendor=None,
        homepage=None,
        categories=[],
        profile={},
        type_text="API",
        pricing_text="Paid",
        price_text="$1 / month" if priced else "—",
        free_tier=free,
        rank=rank,
        rank_coverage=round(100 * weight / 100),
        subscores=scores,
        scores={},
        capabilities_count=1,
        approved_count=1,
        draft_count=0,
        grounded_count=1,
        times_matched=0,
        capabilities=[],
        shown=0,
        more=0,
    )


maybe = st.one_of(st.none(), st.integers(0, 100))
scores = st.fixed_dictionaries({n: maybe for n in SUBSCORES})
tiers = st.sampled_from([True, False, None])
NAMES = ("Alpha Tool", "Beta Tool")
LEAD = re.compile(r"(Alpha Tool|Beta Tool) (?:leads|is stronger) on (.+?)(?:, while |\.)")
ITEM = re.compile(r"(Adoption|Quality|Ecosystem|Match Graph|Freshness) \((\d+) vs (\d+)\)")


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=\.) ", text) if s]


@settings(max_examples=300, deadline=None)
@given(scores, scores, tiers, tiers, st.booleans(), st.booleans())
def test_random_pages_with_missing_values_claim_nothing_unknown(sa, sb, fa, fb, pa, pb):
    a, b = side("alpha", NAMES[0], sa, fa, pa), side("beta", NAMES[1], sb, fb, pb)
    c = build_comparison(a, b, Options(as_of=date(2025, 7, 1)), COPY)
    table = {row.name: (row.a, row.b) for row in c.rows}
    both_known = {n for n in SUBSCORES if sa[n] is not None and sb[n] is not None}
    for n in SUBSCORES:
        if n == "freshness":
            continue
        for value, cell in zip((sa[n], sb[n]), table[LABELS[n]], strict=True):
            assert cell == ("— (not enough data)" if value is None else f"{value}/100")
    # Leads only on sub-scores known on both sides, with the table's numbers.
    text = c.verdict.text
    mine, other = {NAMES[0]: sa, NAMES[1]: sb}, {NAMES[0]: sb, NAMES[1]: sa}
    for who, items in LEAD.findall(text):
        for label, x, y in ITEM.findall(items):
            key = next(n for n in SUBSCORES if LABELS[n] == label)
            assert key in both_known, (label, text)
            assert (int(x), int(y)) == (mine[who][key], other[who][key])
            assert int(x) > int(y)
    for label in c.verdict.ties:
        key = next(n for n in SUBSCORES if LABELS[n] == label)
        assert key in both_known and sa[key] == sb[key]
    assert set(c.verdict.not_enough_data) == {LABELS[n] for n in SUBSCORES} - {
        LABELS[n] for n in both_known
    }
    for sentence in _sentences(text):
        if sentence.startswith("They tie on"):
            for n in SUBSCORES:
                assert LABELS[n] not in sentence or n in both_known
    # Overall: a lead or a tie only when both Ranks are known and rest on the same sub-scores.
    same_basis = a.rank is not None and b.rank is not None
    same_basis = same_basis and all((sa[n] is None) == (sb[n] is None) for n in SUBSCORES)
    overall = ("ranks higher at", "scores higher at", " tie at ")
    for copy_text in (c.summary, text):
        if not same_basis:
            assert not any(word in copy_text for word in overall), copy_text
    if not same_basis:
        assert c.verdict.leader is None
        assert "Not enough data to say which" in c.summary
    # Prices and free tiers only where the data says so.
    for s, priced in ((a, pa), (b, pb)):
        assert (f"{s.name} starts at" in text) == priced
    assert "more accessible" not in text or (fa is False or fb is False)
    if fa is not True and fb is not True:
        assert "free tier" not in text
    # Every page format shows the unknowns and carries null + a reason in JSON.
    md = RENDER.render(c, "md")
    if any(v is None for v in (*sa.values(), *sb.values())):
        assert "— (not enough data)" in md or "Freshness (Alpha Tool —" in md or "—)" in md
    assert RENDER.render(c, "json") == render_json(c)  # sides spliced in, byte for byte
    data = json.loads(render_json(c))
    for key, s in (("a", sa), ("b", sb)):
        for n in SUBSCORES:
            assert data[key]["subscores"][n] == s[n]


def test_demo_like_page_shows_dashes_in_every_format():
    full = {n: 80 for n in SUBSCORES}
    bare = {**full, "adoption": None, "ecosystem": None}
    a, b = side("alpha", NAMES[0], full, True, True), side("beta", NAMES[1], bare, True, False)
    c = build_comparison(a, b, Options(as_of=date(2025, 7, 1)), COPY)
    md, html = RENDER.render(c, "md"), RENDER.render(c, "html")
    assert "| Adoption | 80/100 | — (not enough data) |" in md
    assert "<td>— (not enough data)</td>" in html
    assert "Beta Tool's Rank covers 65% of the weight (Adoption, Ecosystem unknown" in md
    assert "Alpha Tool leads on Adoption" not in c.verdict.text
    assert "Not enough data to compare Adoption and Ecosystem." in c.verdict.text
    assert "Not enough data to say which ranks higher." in c.summary
