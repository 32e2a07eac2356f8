"""The fake provider's answer to a ``--copy llm`` request (prompts/copy): a summary and verdict
written from the ``<page>`` table in the prompt, true to it; with ``error_rate``, a first attempt
sometimes carries one false claim (a lead on an unknown score, a swapped leader, an invented
price), so benchmarks see the checker refuse it and the re-ask correct it."""

from __future__ import annotations

import random
import re
from typing import Any

_PAGE = re.compile(r'<page title="[^"]*">\n(.*?)</page>', re.S)


def is_copy_request(text: str) -> bool:
    return _PAGE.search(text) is not None


def _table(block: str) -> tuple[list[str], dict[str, list[str]]]:
    names: list[str] = []
    rows: dict[str, list[str]] = {}
    for line in block.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not cells[0]:
            names = cells[1:]
        else:
            rows[cells[0]] = cells[1:]
    return names, rows


def _listed(block: str, prefix: str) -> list[str]:
    m = re.search(rf"^{re.escape(prefix)}: (.*)$", block, re.M)
    if m is None or m.group(1) in ("none", "nothing"):
        return []
    return [x.strip() for x in m.group(1).split(",")]


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def copy_answer(
    text: str, first_attempt: bool, rng: random.Random, error_rate: float
) -> dict[str, Any]:
    m = _PAGE.search(text)
    assert m is not None
    block = m.group(1)
    (a, b), rows = _table(block)
    rank = {n: rows["Rank"][i].split(" ")[0] for i, n in enumerate((a, b))}
    if "Ranks comparable: yes" in block:
        if rank[a] == rank[b]:
            summary = f"{a} and {b} tie at {rank[a]}/100."
        else:
            hi, lo = (a, b) if int(rank[a]) > int(rank[b]) else (b, a)
            summary = f"{hi} ranks higher at {rank[hi]}/100 vs {lo} at {rank[lo]}/100."
    else:
        summary = "Not enough data to say which ranks higher."
    sentences: list[str] = []
    for i, name in enumerate((a, b)):
        labels = [x for x in _listed(block, f"{name} leads on") if x != "Rank"]
        if labels:
            parts = [f"{x} ({rows[x][i]} vs {rows[x][1 - i]})" for x in labels]
            sentences.append(f"{name} leads on {_and(parts)}.")
    unknown = _listed(block, "Not enough data")
    if unknown:
        sentences.append(f"Not enough data to compare {_and(unknown)}.")
    ties = [x for x in _listed(block, "Ties") if x != "Rank"]
    if ties:
        sentences.append(f"They tie on {_and(ties)}.")
    free = rows["Free tier"]
    if free == ["yes", "yes"]:
        sentences.append("Both have a free tier.")
    elif sorted(free) == ["no", "yes"]:
        has, lacks = (a, b) if free[0] == "yes" else (b, a)
        sentences.append(f"{has} has a free tier and {lacks} does not.")
    for i, name in enumerate((a, b)):
        if rows["Starting price"][i] != "—":
            sentences.append(f"{name} starts at {rows['Starting price'][i]}.")
    caps = rows["Capabilities"]
    sentences.append(f"{a} has {caps[0]} capabilities and {b} has {caps[1]} capabilities.")
    wrong = first_attempt and rng.random() < error_rate
    if wrong:
        sentences.insert(0, _false_claim(a, b, rows, unknown, rng))
    return {"summary": summary, "verdict": " ".join(sentences), "false_claim": wrong}


def _false_claim(
    a: str, b: str, rows: dict[str, list[str]], unknown: list[str], rng: random.Random
) -> str:
    if unknown and rng.random() < 0.5:
        return f"{a} leads on {unknown[0]} (100 vs 0)."
    for label in ("Quality", "Match Graph", "Freshness", "Adoption", "Ecosystem"):
        x, y = rows[label]
        if x != "—" and y != "—" and x != y:
            loser = a if int(x) < int(y) else b
            return f"{loser} leads on {label}."
    return f"{a} starts at $9.99 / month."
