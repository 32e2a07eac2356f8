"""Offline token estimate for sizing LLM requests.

Real tokenizers need vocabulary files fetched at run time, which is impossible here, and
chunk budgets only need to be roughly right. The heuristic counts what drives BPE token
counts:

* each run of letters costs one token per 6 letters (at least one per word),
* each CJK ideograph, kana or Hangul syllable costs one token,
* each digit, underscore or punctuation/symbol character costs 0.7 of a token,
* each line break costs 0.2 of a token; other whitespace is free.

Calibrated against Mistral's Tekken tokenizer (``tekken_240911``): on the 27 vendor pages
of the shared corpus the estimate was within -4 % .. +18 % of the true count per page (mean
absolute error 7 %, +2 % over the whole corpus); on English, Chinese, Japanese, JSON,
special-token and hash-heavy Markdown-table samples within -13 % .. +18 %. Expect larger
errors for scripts that BPE vocabularies cover poorly (e.g. Devanagari, Arabic), which are
underestimated, and for tokenizers that group digits (GPT-4 style), which are overestimated.

The estimate is subadditive: cutting a text anywhere never makes the pieces' estimates
add up to less than the whole's, so a chunk packed from pieces that fit a budget fits it.
"""

from __future__ import annotations

import re

_CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
_LETTER_RUN = re.compile(rf"[^\W\d_{_CJK}]+")
_SYMBOL = re.compile(rf"[^\w\s{_CJK}]|[\d_]")
_CJK_CHAR = re.compile(rf"[{_CJK}]")

_LETTERS_PER_TOKEN = 6
_TENTHS_PER_SYMBOL = 7
_TENTHS_PER_NEWLINE = 2


def estimate_tokens(text: str) -> int:
    """Estimate how many tokens an LLM tokenizer would produce for ``text``.

    Deterministic and linear in ``len(text)`` (roughly 0.15 s per million characters).
    """
    if not text:
        return 0
    word_tokens = sum(
        (len(run) + _LETTERS_PER_TOKEN - 1) // _LETTERS_PER_TOKEN
        for run in _LETTER_RUN.findall(text)
    )
    tenths = (
        10 * (word_tokens + len(_CJK_CHAR.findall(text)))
        + _TENTHS_PER_SYMBOL * len(_SYMBOL.findall(text))
        + _TENTHS_PER_NEWLINE * text.count("\n")
    )
    return (tenths + 9) // 10
