"""The claim checker for model-written copy: every clause of a summary or verdict must be a claim
the page's table confirms, or it is refused with the reason (which Instructor sends back).

A clause (sentences split at ``.``, ``;``, ``, while``, ``, but``, ``, whereas``) must be about
at least one thing the table holds — a score (Rank, Adoption, Quality, Ecosystem, Match Graph,
Freshness), the free tier, the pricing model or starting price, the capability count — and:

- a lead ("leads", "higher", "ahead", …; "behind", "lower", … name the other side) stands only
  where both sides are known and the named side really is ahead; Rank only when the Ranks are
  comparable (both known, built on the same sub-scores);
- a tie only where both sides are known and equal;
- "not enough data" / "unknown" only where a side really is unknown;
- every number is the table's value for the tool and score it is attached to (the first number
  after a tool belongs to it; a second with no tool named in between, as in "(98 vs 91)", to
  the other side), a percentage is a Rank's coverage, a price number is in that tool's price;
- free tier and pricing claims match the table, and nothing is said where it is unknown;
- one fact per clause: a score mixed with the free tier, a price or the count, or a lead or tie
  mixed with "not enough data" about a named tool, is refused (it could hide an unchecked claim);
- no price comparison, no comparative the table cannot prove (faster, more reliable, …), no
  marketing word, and no capitalised name that is not on the page (no invented competitors).

Anything it cannot classify is refused: the checker fails closed. ``PageFacts`` is both the
prompt's data and the checker's reference, built from the two ``ToolSide``s of a page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from pydantic import BaseModel, ConfigDict

from decomposer.catalog.score import LABELS, SUBSCORES
from decomposer.pages.claim_words import (
    ALL_SCORES,
    BEHIND,
    CAPITAL,
    CAPS,
    CLAUSE,
    FREE,
    GROUP,
    LEAD,
    MARKETING,
    NEGATION,
    NUMBER,
    ONLY,
    OUT_OF,
    PRICE,
    PRICE_COMPARISON,
    PRICING,
    PRICING_WORDS,
    RANK_WORDS,
    STOP_CAPITALS,
    SUB,
    TIE,
    UNKNOWN,
    UNPROVEN,
)
from decomposer.pages.copy import ranks_comparable
from decomposer.pages.model import MISSING, ToolSide

RANK = "Rank"
SCORE_LABELS = tuple(LABELS[n] for n in SUBSCORES)


class SideFacts(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    rank: int | None
    rank_coverage: int
    scores: dict[str, int | None]
    """By label (``Adoption`` …); ``None`` is unknown (not enough data)."""
    free_tier: bool | None
    pricing: str | None
    starting_price: str | None
    capabilities: int

    @classmethod
    def of(cls, side: ToolSide) -> SideFacts:
        return cls(
            name=side.name,
            rank=side.rank,
            rank_coverage=side.rank_coverage,
            scores={LABELS[n]: side.subscores[n] for n in SUBSCORES},
            free_tier=side.free_tier,
            pricing=None if side.pricing_text == MISSING else side.pricing_text,
            starting_price=None if side.price_text == MISSING else side.price_text,
            capabilities=side.capabilities_count,
        )

    def value(self, label: str) -> int | None:
        return self.rank if label == RANK else self.scores[label]


class PageFacts(BaseModel):
    """What a page's copy may say: both sides' table values and what follows from them."""

    model_config = ConfigDict(frozen=True)

    title: str
    a: SideFacts
    b: SideFacts
    ranks_comparable: bool
    leads: dict[str, list[str]]
    ties: list[str]
    unknown: list[str]

    @classmethod
    def of(cls, a: ToolSide, b: ToolSide) -> PageFacts:
        fa, fb = SideFacts.of(a), SideFacts.of(b)
        comparable = ranks_comparable(a, b)
        labels = ([RANK] if comparable else []) + list(SCORE_LABELS)

        def ahead(x: SideFacts, y: SideFacts) -> list[str]:
            return [
                n
                for n in labels
                if _known(x.value(n), y.value(n)) and x.value(n) > y.value(n)  # type: ignore[operator]
            ]

        return cls(
            title=f"{a.name} vs {b.name}",
            a=fa,
            b=fb,
            ranks_comparable=comparable,
            leads={fa.name: ahead(fa, fb), fb.name: ahead(fb, fa)},
            ties=[
                n for n in labels if _known(fa.value(n), fb.value(n)) and fa.value(n) == fb.value(n)
            ],
            unknown=[n for n in SCORE_LABELS if not _known(fa.scores[n], fb.scores[n])],
        )

    def other(self, side: SideFacts) -> SideFacts:
        return self.b if side is self.a else self.a


def _known(x: int | None, y: int | None) -> bool:
    return x is not None and y is not None


@dataclass(frozen=True)
class _Mention:
    at: int
    side: SideFacts | None
    """``None`` means both sides ("both", "they", "neither")."""


@dataclass
class Clause:
    text: str
    mentions: list[_Mention]

    @property
    def named(self) -> list[SideFacts]:
        return [m.side for m in self.mentions if m.side is not None]

    @property
    def group(self) -> bool:
        return any(m.side is None for m in self.mentions)

    def owner_at(self, at: int) -> _Mention | None:
        before = [m for m in self.mentions if m.at <= at]
        return before[-1] if before else (self.mentions[0] if len(self.mentions) == 1 else None)


# --- the checker --------------------------------------------------------------------------------


class Checker:
    """Checks copy against one page's ``PageFacts``; ``problems`` lists every refusal."""

    def __init__(self, facts: PageFacts) -> None:
        self.facts = facts
        names = sorted({facts.a.name, facts.b.name}, key=len, reverse=True)
        self._names = re.compile("|".join(re.escape(n) for n in names), re.I)
        self._allowed = {w for n in (facts.a.name, facts.b.name) for w in re.split(r"[\s'’]+", n)}
        self._allowed |= set(SCORE_LABELS) | {"Match", "Graph"} | set(PRICING_WORDS.values())
        self._allowed |= {"Open", "Weights", "Freemium", "Paid"}

    def problems(self, field: str, text: str) -> list[str]:
        text = " ".join(text.split())
        if not text:
            return [f"{field}: empty"]
        out: list[str] = []
        for raw in (c.strip(" .") for c in CLAUSE.split(text)):
            if not raw:
                continue
            clause = Clause(raw, self._mentions(raw))
            for problem in self._check(clause):
                out.append(f'{field}: "{raw}": {problem}')
        return out

    def _mentions(self, text: str) -> list[_Mention]:
        found = [_Mention(m.start(), self._side(m.group(0))) for m in self._names.finditer(text)]
        found += [_Mention(m.start(), None) for m in GROUP.finditer(text)]
        return sorted(found, key=lambda m: m.at)

    def _unnamed(self, text: str) -> str:
        """The text with the tools' names blanked (same length), so "Llama 4" is no number."""
        return self._names.sub(lambda m: "_" * len(m.group(0)), text)

    def _side(self, name: str) -> SideFacts:
        return self.facts.a if name.casefold() == self.facts.a.name.casefold() else self.facts.b

    def _check(self, clause: Clause) -> list[str]:
        text = clause.text
        out = self._vocabulary(text)
        topics = [
            name
            for name, found in (
                ("the free tier", FREE.search(text)),
                ("the price", PRICE.search(text) or PRICING.search(text)),
                ("the capability count", CAPS.search(text)),
                ("a score", self._labels(text)),
            )
            if found
        ]
        if len(topics) > 1:
            out.append(f"mixes {' and '.join(topics)} in one clause: one fact per sentence")
        elif topics == ["the free tier"]:
            out += self._free_tier(clause)
        elif topics == ["the price"]:
            out += self._price(clause)
        elif topics == ["the capability count"]:
            out += self._count(clause)
        elif topics or LEAD.search(text) or TIE.search(text):
            out += self._scores(clause)
        else:
            out.append(
                "not a claim the table can confirm: say who leads, ties or lacks data on a "
                "score, the free tier, the starting price or the capability count"
            )
        return out

    def _vocabulary(self, text: str) -> list[str]:
        out = []
        if m := MARKETING.search(text):
            out.append(f"marketing word {m.group(0)!r}: state only the table's facts")
        if m := PRICE_COMPARISON.search(text):
            out.append(f"{m.group(0)!r} compares prices: state each starting price instead")
        if m := UNPROVEN.search(text):
            out.append(f"{m.group(0)!r} is not in the table: compare only its scores")
        words = [m.group(1) for m in CAPITAL.finditer(text)]
        for i, word in enumerate(words):
            bare = word.rstrip("'s").rstrip("’s") if word.endswith(("'s", "’s")) else word
            first = i == 0 and text.startswith(word)
            if not first and bare not in self._allowed and bare not in STOP_CAPITALS:
                out.append(f"names {bare!r}, which is not on this page: name only the two tools")
        return out

    # --- scores ---

    def _labels(self, text: str) -> list[tuple[int, str]]:
        found: list[tuple[int, str]] = []
        for label in SCORE_LABELS:
            found += [(m.start(), label) for m in re.finditer(rf"\b{label}\b", text, re.I)]
        found += [(m.start(), RANK) for m in RANK_WORDS.finditer(text)]
        if m := ALL_SCORES.search(text):
            found += [(m.start(), label) for label in SCORE_LABELS]
        return sorted(found)

    def _scores(self, clause: Clause) -> list[str]:
        text = re.sub(r"\bmatch graph\b", "Graph", clause.text, flags=re.I)  # not a tie word
        labels = self._labels(clause.text) or [(0, RANK)]
        names = list(dict.fromkeys(label for _, label in labels))
        f = self.facts
        out: list[str] = []
        ranking = LEAD.search(text) or BEHIND.search(text) or TIE.search(text)
        if UNKNOWN.search(text) and ranking and clause.named:
            out.append(
                "mixes a lead or tie with 'not enough data' in one clause: say each in its own "
                "sentence"
            )
        elif UNKNOWN.search(text):
            for label in names:
                out += self._unknown(clause, label)
        elif TIE.search(text) and not (LEAD.search(text) or BEHIND.search(text)):
            for label in names:
                va, vb = f.a.value(label), f.b.value(label)
                if label == RANK and not f.ranks_comparable:
                    out.append(
                        "claims a tie on Rank, but the Ranks cannot be compared (not enough data)"
                    )
                elif not _known(va, vb):
                    out.append(self._unknown_reason("a tie", label))
                elif va != vb:
                    out.append(f"claims a tie on {label}, but the table has {self._pair(label)}")
        elif LEAD.search(text) or BEHIND.search(text):
            subject = clause.named[0] if clause.named else None
            if subject is None:
                return [*out, "claims a lead without naming which tool leads"]
            behind = bool(BEHIND.search(text)) and not LEAD.search(text)
            leader = f.other(subject) if behind else subject
            for label in names:
                va, vb = leader.value(label), f.other(leader).value(label)
                if label == RANK and not f.ranks_comparable:
                    out.append(
                        "claims who ranks higher, but the Ranks cannot be compared (they rest "
                        "on different known sub-scores, or one is unknown): say not enough data"
                    )
                elif va is None or vb is None:
                    out.append(self._unknown_reason("a lead", label))
                elif va == vb:
                    out.append(f"claims a lead on {label}, but it is a tie ({self._pair(label)})")
                elif va < vb:
                    out.append(
                        f"wrong leader on {label}: the table has {self._pair(label)}, so "
                        f"{f.other(leader).name} leads"
                    )
        out += self._numbers(clause, labels)
        return out

    def _unknown(self, clause: Clause, label: str) -> list[str]:
        """ "Not enough data to compare X" needs a side unknown; "B's X is unknown" needs B's."""
        f = self.facts
        about = clause.named if clause.named and not clause.group else []
        if re.search(r"compar|to say", clause.text, re.I) or not about:
            if label == RANK:
                ok = not f.ranks_comparable
            else:
                ok = f.a.value(label) is None or f.b.value(label) is None
        else:
            ok = all(s.value(label) is None for s in about)
        if ok:
            return []
        return [f"says {label} is not known, but the table has {self._pair(label)}"]

    def _unknown_reason(self, what: str, label: str) -> str:
        missing = [s.name for s in (self.facts.a, self.facts.b) if s.value(label) is None]
        return (
            f"claims {what} on {label}, which is unknown for {' and '.join(missing)} (not enough "
            f"data): say it cannot be compared instead"
        )

    def _pair(self, label: str) -> str:
        return " vs ".join(
            f"{s.name} {_show(s.value(label))}" for s in (self.facts.a, self.facts.b)
        )

    def _numbers(self, clause: Clause, labels: list[tuple[int, str]]) -> list[str]:
        out: list[str] = []
        previous: SideFacts | None = None
        previous_at = -1
        text = OUT_OF.sub(lambda m: " " * len(m.group(0)), self._unnamed(clause.text))
        for m in NUMBER.finditer(text):
            number, percent = _decimal(m.group(1)), bool(m.group(2))
            mention = clause.owner_at(m.start())
            if mention is None:
                out.append(f"gives {m.group(1)} without naming the tool it belongs to")
                continue
            sides = [mention.side] if mention.side is not None else [self.facts.a, self.facts.b]
            moved = mention.at > previous_at
            if not percent and mention.side is not None and mention.side is previous and not moved:
                sides = [self.facts.other(mention.side)]  # "(98 vs 91)": the second is the other's
            if percent:
                if not all(number == s.rank_coverage for s in sides):
                    cover = ", ".join(f"{s.name} {s.rank_coverage}%" for s in sides)
                    out.append(f"{m.group(1)}% is not the Rank coverage in the table ({cover})")
                continue
            before = [lb for at, lb in labels if at <= m.start()]
            label = before[-1] if before else labels[0][1]
            for side in sides:
                value = side.value(label)
                if value is None:
                    out.append(
                        f"gives {m.group(1)} for {side.name}'s {label}, which is unknown (not "
                        "enough data)"
                    )
                elif number != value:
                    out.append(
                        f"{m.group(1)} is not {side.name}'s {label} in the table "
                        f"({self._pair(label)})"
                    )
            previous = sides[0] if len(sides) == 1 else None
            previous_at = m.start()
        return out

    # --- free tier, prices, counts ---

    def _parts(self, clause: Clause) -> list[tuple[str, list[SideFacts]]]:
        """Sub-clauses with the tools each is about ("both"/"neither" -> both; none named ->
        the previous sub-clause's)."""
        parts: list[tuple[str, list[SideFacts]]] = []
        last: list[SideFacts] = []
        for piece in (p for p in SUB.split(clause.text) if p.strip()):
            sides = [m.side or self.facts.a for m in self._mentions(piece)]
            if any(m.side is None for m in self._mentions(piece)):
                sides = [self.facts.a, self.facts.b]
            sides = [s for i, s in enumerate(sides) if all(s is not t for t in sides[:i])] or last
            parts.append((piece, sides))
            last = sides
        return parts

    def _free_tier(self, clause: Clause) -> list[str]:
        out: list[str] = []
        for piece, sides in self._parts(clause):
            if not sides:
                out.append("speaks of a free tier without naming the tool")
                continue
            if LEAD.search(piece):  # "making X more accessible"
                x, y = sides[0], self.facts.other(sides[0])
                if not (x.free_tier is True and y.free_tier is False):
                    out.append(
                        f"calls {x.name} more accessible, but the table does not show a free tier "
                        f"for {x.name} and none for {y.name}"
                    )
                continue
            unknown = bool(UNKNOWN.search(piece))
            negated = bool(NEGATION.search(piece))
            for side in sides:
                if unknown:
                    if side.free_tier is not None:
                        has = "has" if side.free_tier else "has no"
                        out.append(f"says {side.name}'s free tier is unknown, but it {has} one")
                elif side.free_tier is None:
                    out.append(
                        f"the table does not say whether {side.name} has a free tier: claim "
                        "nothing about it"
                    )
                elif side.free_tier == negated:
                    has = "has" if side.free_tier else "has no"
                    out.append(f"wrong: {side.name} {has} free tier in the table")
            if ONLY.search(piece) and not unknown and not negated and len(sides) == 1:
                other = self.facts.other(sides[0])
                if other.free_tier is not False:
                    out.append(
                        f"says only {sides[0].name} has a free tier, but the table does not say "
                        f"{other.name} has none"
                    )
        return out

    def _price(self, clause: Clause) -> list[str]:
        out: list[str] = []
        for piece, sides in self._parts(clause):
            digits = self._unnamed(piece)
            if not (PRICE.search(piece) or PRICING.search(piece) or NUMBER.search(digits)):
                continue
            if not sides:
                out.append("gives a price without naming the tool")
                continue
            unknown = bool(UNKNOWN.search(piece))
            for side in sides:
                if m := PRICING.search(piece):
                    word = PRICING_WORDS[m.group(1).lower().replace("-", " ")]
                    if side.pricing != word:
                        actual = side.pricing or "unknown"
                        out.append(f"{side.name}'s pricing is {actual}, not {word}")
                if not (PRICE.search(piece) or NUMBER.search(digits)):
                    continue
                if unknown:
                    if side.starting_price is not None:
                        out.append(
                            f"says {side.name}'s price is unknown, but it starts at "
                            f"{side.starting_price}"
                        )
                    continue
                if side.starting_price is None:
                    out.append(f"{side.name}'s starting price is unknown in the table: claim none")
                    continue
                allowed = {_decimal(n) for n, _ in NUMBER.findall(side.starting_price)}
                for n, _ in NUMBER.findall(digits):
                    if _decimal(n) not in allowed:
                        out.append(
                            f"{n} is not in {side.name}'s starting price ({side.starting_price})"
                        )
        return out

    def _count(self, clause: Clause) -> list[str]:
        out: list[str] = []
        if LEAD.search(clause.text) or BEHIND.search(clause.text):
            if not clause.named:
                return ["compares capability counts without naming a tool"]
            x = clause.named[0]
            y = self.facts.other(x)
            more = not (BEHIND.search(clause.text) and not LEAD.search(clause.text))
            if (x.capabilities > y.capabilities) != more or x.capabilities == y.capabilities:
                out.append(
                    f"wrong: the table has {x.name} {x.capabilities} and {y.name} "
                    f"{y.capabilities} capabilities"
                )
        for m in NUMBER.finditer(self._unnamed(clause.text)):
            mention = clause.owner_at(m.start())
            sides = [mention.side] if mention and mention.side else [self.facts.a, self.facts.b]
            if not any(_decimal(m.group(1)) == s.capabilities for s in sides):
                out.append(f"{m.group(1)} is not a capability count in the table")
        return out


def _show(value: int | None) -> str:
    return "— (not enough data)" if value is None else str(value)


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text.replace(",", ""))
    except InvalidOperation:
        return Decimal(-1)


def check_copy(facts: PageFacts, summary: str, verdict: str) -> list[str]:
    """Every refusal for a summary and verdict, each naming the clause and the reason."""
    checker = Checker(facts)
    return checker.problems("summary", summary) + checker.problems("verdict", verdict)
