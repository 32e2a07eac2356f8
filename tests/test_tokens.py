from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from decomposer.core.tokens import estimate_tokens

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")

# True counts from Mistral's Tekken tokenizer (tekken_240911), measured once offline.
CHINESE = "结构化输出是一种强制大语言模型的响应严格遵循用户指定模式的功能。"
JAPANESE = "構造化出力は、ユーザーが指定したスキーマに厳密に従うようにLLMの応答を強制する機能です。"
JSON = '{"model": "mistral-large-latest", "messages": [{"role": "user", "content": "hi"}]}'
TEKKEN_SAMPLES = [
    pytest.param("The quick brown fox jumps over the lazy dog. " * 50, 501, id="english"),
    pytest.param(CHINESE * 20, 660, id="chinese"),
    pytest.param(JAPANESE * 20, 780, id="japanese"),
    pytest.param("<|patch|>" * 300, 1201, id="special-tokens"),
    pytest.param(JSON * 20, 539, id="json"),
]

# Tekken counts for whole corpus pages, for the documented per-page error bound.
TEKKEN_CORPUS = {
    "cohere-api/embeddings.mdx": 3116,
    "cohere-api/models.mdx": 6269,
    "llama-4/prompt_format.md": 19170,
    "llama-4/MODEL_CARD.md": 6213,
    "mistral-api/basic_ocr.md": 42954,
    "mistral-api/overview.md": 4106,
    "mistral-api/function-calling.md": 4478,
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("   \t  ", 0),
        ("hello", 1),
        ("hello world", 2),
        ("internationalisation", 4),
        ("a, b.", 4),
        ("12345", 4),
        ("日本語", 3),
        ("\n" * 10, 2),
    ],
)
def test_small_texts(text: str, expected: int) -> None:
    assert estimate_tokens(text) == expected


@pytest.mark.parametrize(("text", "tekken"), TEKKEN_SAMPLES)
def test_close_to_a_real_tokenizer(text: str, tekken: int) -> None:
    assert abs(estimate_tokens(text) - tekken) / tekken <= 0.18


@needs_corpus
@pytest.mark.corpus
@pytest.mark.parametrize(("name", "tekken"), sorted(TEKKEN_CORPUS.items()))
def test_corpus_pages_within_documented_error(name: str, tekken: int) -> None:
    estimate = estimate_tokens((CORPUS / name).read_text(encoding="utf-8"))
    assert -0.13 <= (estimate - tekken) / tekken <= 0.18


def test_cjk_counts_more_than_characters_over_four() -> None:
    text = "结构化输出" * 100
    assert estimate_tokens(text) >= len(text) > math.ceil(len(text) / 4)


@given(st.text(), st.text())
def test_subadditive(left: str, right: str) -> None:
    assert estimate_tokens(left + right) <= estimate_tokens(left) + estimate_tokens(right)


@given(st.text())
def test_never_more_than_one_per_character(text: str) -> None:
    assert 0 <= estimate_tokens(text) <= len(text)


@given(st.text(), st.text())
def test_monotone_in_prefix(text: str, extra: str) -> None:
    assert estimate_tokens(text) <= estimate_tokens(text + extra)


def test_fast_on_half_a_million_characters() -> None:
    text = ("Mistral Large supports function calling, JSON mode & 128k context. " * 8000)[:500_000]
    # CPU time of this process, not wall-clock: other processes' load cannot move it. The
    # estimate takes ~0.05 s here; 2 s is slack for a slow machine, not for quadratic growth.
    started = time.process_time()
    estimate_tokens(text)
    assert time.process_time() - started < 2.0
