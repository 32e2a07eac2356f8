"""Keys never reach a log, debug included: a provider's 401 that echoes the key, run with
DECOMPOSER_DEBUG=1 through the real SDKs and Instructor (respx at the HTTP layer), leaves no
trace of the key in any log record (caplog) or on stderr."""

from __future__ import annotations

import logging
import sys
import traceback

import httpx
import pytest
import respx

from conftest import DOC, MISTRAL_URL, OPENAI_URL, SECRET
from decomposer.core.errors import DecomposerError
from decomposer.core.redact import RedactingFilter, protect, redact


@pytest.fixture
def acme(cli, tmp_path):
    (tmp_path / "acme-docs").mkdir()
    (tmp_path / "acme-docs" / "acme.md").write_text(DOC)
    assert cli("tool", "add", "AcmeDB")[0] == 0
    assert cli("ingest", "acmedb", str(tmp_path / "acme-docs"))[0] == 0


MISTRAL_SHAPED = "mK3x9TqL2vB8nR4wZ6yH1jC5pF7sD0aE"
"""A key with no recognisable shape: only its registered value can hide it."""


@pytest.mark.parametrize(
    ("provider", "url", "variable", "key"),
    [
        ("mistral", MISTRAL_URL, "MISTRAL_API_KEY", MISTRAL_SHAPED),
        ("openai", OPENAI_URL, "OPENAI_API_KEY", SECRET),
    ],
)
def test_a_key_echoed_by_a_provider_never_reaches_a_log_in_debug_mode(
    cli, acme, monkeypatch, caplog, capsys, provider, url, variable, key
):
    monkeypatch.setenv(variable, key)
    monkeypatch.setenv("DECOMPOSER_DEBUG", "1")
    caplog.set_level(logging.DEBUG)
    for name in ("instructor", "httpx", "openai", "mistralai"):  # as in a fresh debug process
        caplog.set_level(logging.DEBUG, logger=name)
    stderr = logging.StreamHandler(sys.stderr)  # what basicConfig would print in a terminal
    stderr.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(stderr)
    echo = {
        "error": {
            "message": f"Incorrect API key provided: Bearer {key}. Authorization: Bearer {key}",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        },
        "message": f"Unauthorized: the key {key} is unknown",
    }
    try:
        with respx.mock() as mock:
            route = mock.post(url).mock(return_value=httpx.Response(401, json=echo))
            try:
                code, out, err = cli("-v", "extract", "acmedb", "--provider", provider)
            except DecomposerError as exc:  # debug mode re-raises instead of one line
                code, out, err = 1, "", "".join(traceback.format_exception(exc))
        assert route.call_count >= 1
    finally:
        logging.getLogger().removeHandler(stderr)
    captured = capsys.readouterr()
    assert code == 1
    assert caplog.records, "debug logging recorded nothing: the test would prove nothing"
    everything = caplog.text + out + err + captured.out + captured.err
    assert "API call failed" in everything  # Instructor's log line that used to echo the key
    assert key not in everything
    assert key[:16] not in everything


def test_a_record_is_redacted_whatever_its_logger_or_handler(caplog):
    protect("mistral-key-0123456789")
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("some.sdk")
    log.debug("headers %s", {"authorization": "Bearer mistral-key-0123456789"})
    log.warning("Incorrect API key provided: %s", "sk-proj-abcdefghijklmnop")
    try:
        raise ValueError("rejected key mistral-key-0123456789")
    except ValueError:
        log.exception("call failed")
    assert "mistral-key-0123456789" not in caplog.text
    assert "sk-proj-abcdefghijklmnop" not in caplog.text
    assert "rejected key ***" in caplog.text


def test_redaction_keeps_ordinary_text_and_filters_foreign_records():
    assert redact("Bearer tokens are sent as a header; see sk-1") == (
        "Bearer tokens are sent as a header; see sk-1"
    )
    assert redact('{"api_key": "abcdefgh1234"}') == '{"api_key": "***"}'
    record = logging.makeLogRecord({"msg": "key %s", "args": ("sk-abcdefghijklmnop",)})
    assert RedactingFilter().filter(record) and record.getMessage() == "key ***"
