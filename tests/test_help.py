"""Help text: every command has an example that parses against its real options, flags show no
type, defaults shown are the code's, and prose is not broken at the source's line ends."""

from __future__ import annotations

import shlex

import pytest

from decomposer.cli.app import build
from decomposer.cli.examples import EXAMPLES
from decomposer.matching.embed import LEXICAL_THRESHOLDS


def leaves(command, path=()):
    subs = getattr(command, "commands", None)
    if subs is None:
        yield " ".join(path), command
        return
    for name, sub in sorted(subs.items()):
        yield from leaves(sub, (*path, name))


ROOT = build()
COMMANDS = dict(leaves(ROOT))


def test_every_command_has_an_example_and_no_stale_ones():
    assert set(EXAMPLES) == set(COMMANDS)


@pytest.mark.parametrize("path", sorted(EXAMPLES))
def test_examples_parse_and_fit_an_80_column_terminal(path):
    for line in EXAMPLES[path]:
        assert len(line) <= 76, line
        words = shlex.split(line)
        assert words[: 1 + len(path.split())] == ["decomposer", *path.split()]
        command = COMMANDS[path]
        args = words[1 + len(path.split()) :]
        command.make_context(path, args)  # raises on an unknown option or a bad value
    assert "Example:\n" in (COMMANDS[path].help or "")


def render(cli, *args: str) -> str:
    code, out, _ = cli(*args, "--help")
    assert code == 0
    return out


def test_flags_show_no_type_and_examples_are_shown(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    text = render(cli, "extract")
    assert "<bool>" not in text
    assert "Example:" in text and "decomposer extract mistral-api --replay" in text
    assert "<bool>" not in render(cli)


def test_thresholds_shown_are_the_codes(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert f"lexical {LEXICAL_THRESHOLDS.match:.2f}" in render(cli, "match", "run")
    assert f"lexical {LEXICAL_THRESHOLDS.align:.2f}" in render(cli, "match", "similar")


def test_prose_paragraphs_wrap_at_the_terminal_not_the_source(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    text = render(cli, "extract")
    assert (
        "Work is kept as durable jobs: running the same command again after a failure, Ctrl-C "
        "or a crash resumes the run without re-sending the requests that already finished."
    ) in text
