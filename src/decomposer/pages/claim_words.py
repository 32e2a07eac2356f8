"""The words the claim checker (``pages.claims``) reads in model-written copy: what counts as a
lead, a tie, "not enough data", a free tier, a price, a capability count, and the comparatives
and marketing words it refuses outright. Kept apart so the lists are easy to review and extend.
"""

from __future__ import annotations

import re

CLAUSE = re.compile(r"(?<=[.!?])\s+|;\s+|,\s+(?:while|whereas|but)\s+|\s+but\s+")
SUB = re.compile(r",\s+|\s+and\s+")
NUMBER = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)(\s*%)?")
OUT_OF = re.compile(r"\s*(?:/\s*100\b|out of 100\b|of 100\b)", re.I)
LEAD = re.compile(
    r"\b(leads?|leading|ahead|higher|stronger|better|outscores?|outperforms?|beats?|tops|"
    r"edges|wins?|exceeds?|greater|surpass(?:es)?|more)\b",
    re.I,
)
BEHIND = re.compile(r"\b(behind|lower|weaker|trails?|lags?|worse|below|fewer|less)\b", re.I)
TIE = re.compile(r"\b(ties?|tied|equal(?:ly)?|same|identical|level|even|match(?:es)?)\b", re.I)
UNKNOWN = re.compile(
    r"not enough data|\bunknown\b|\bno data\b|\bmissing\b|\bnot known\b|cannot be compared|"
    r"can't be compared|cannot compare|not comparable|\bno rank\b|\bnot stated\b|"
    r"\bnot available\b|\bno \w+ (?:data|score|price)\b",
    re.I,
)
NEGATION = re.compile(r"\b(no|not|does not|doesn't|without|lacks?|neither|nor|none)\b", re.I)
FREE = re.compile(r"\bfree\b(?!mium)", re.I)
PRICE = re.compile(r"\b(starts?|starting|price[sd]?|pricing|costs?)\b|[$€£¥]", re.I)
CAPS = re.compile(r"\bcapabilit(?:y|ies)\b", re.I)
RANK_WORDS = re.compile(r"\b(rank(?:s|ed|ing)?|overall)\b", re.I)
ALL_SCORES = re.compile(r"\b(sub-?scores|all (?:of )?(?:their|the) scores|every score)\b", re.I)
GROUP = re.compile(r"\b(both|they|their|them|each|neither|the two)\b", re.I)
ONLY = re.compile(r"\bonly\b", re.I)
PRICING_WORDS = {"freemium": "Freemium", "paid": "Paid", "open weights": "Open weights"}
PRICING = re.compile(r"\b(freemium|paid|open[- ]weights)\b", re.I)
PRICE_COMPARISON = re.compile(
    r"\b(cheaper|pricier|costlier|more expensive|less expensive|more affordable|"
    r"costs? (?:less|more))\b",
    re.I,
)
UNPROVEN = re.compile(
    r"\b(faster|slower|larger|smaller|bigger|easier|harder|simpler|more (?:reliable|powerful|"
    r"capable|accurate|flexible|scalable|popular|mature|secure|advanced|robust|efficient)|"
    r"less (?:reliable|capable|mature))\b",
    re.I,
)
MARKETING = re.compile(
    r"\b(best|best-in-class|industry-leading|market-leading|world-class|cutting-edge|"
    r"state-of-the-art|seamless(?:ly)?|revolutionary|game-changing|unmatched|unrivall?ed|"
    r"unparalleled|superior|powerful|robust|leading-edge|top-notch|ultimate|premier|"
    r"incredible|amazing|excellent|outstanding)\b",
    re.I,
)
"""Marketing words refused outright (documented in docs/comparator.md)."""
CAPITAL = re.compile(r"(?<![\w$€£¥./-])([A-Z][\w'-]*)")
STOP_CAPITALS = {
    "Both",
    "They",
    "Their",
    "Neither",
    "Each",
    "The",
    "Not",
    "Only",
    "On",
    "In",
    "With",
    "Overall",
    "No",
    "Rank",
    "Ranks",
    "Pricing",
    "Starting",
    "Price",
    "Free",
    "Capabilities",
    "Scores",
    "Score",
    "Sub-scores",
    "Its",
    "It",
    "While",
    "Whereas",
    "But",
    "And",
    "However",
}
