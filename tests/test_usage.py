"""Usage errors on every command: one line naming the problem and the command's ``--help``,
exit 2, no traceback. The command tree is walked, so a new command is covered automatically."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer

from decomposer.cli.app import USAGE, app


def leaves(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every runnable command below ``command`` with the words that reach it."""
    subs = getattr(command, "commands", None)
    if subs is None:
        yield path, command
        return
    for name, sub in sorted(subs.items()):
        yield from leaves(sub, (*path, name))


ROOT = typer.main.get_command(app)
COMMANDS = list(leaves(ROOT))
IDS = [" ".join(path) for path, _ in COMMANDS]


def assert_usage_error(result: tuple[int, str, str], path: tuple[str, ...]) -> None:
    code, _, err = result
    assert code == USAGE, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert lines[0].endswith(f"(see '{' '.join(('decomposer', *path))} --help')"), err


def test_the_sweep_sees_every_command():
    assert len(COMMANDS) > 25
    assert ("match", "run") in [p for p, _ in COMMANDS] and ("tool", "add") in [
        p for p, _ in COMMANDS
    ]


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_bad_option(cli, path, command):
    assert_usage_error(cli(*path, "--no-such-option"), path)


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_missing_argument(cli, path, command):
    """A required argument left out, else an option's value left out."""
    required = [p for p in command.params if p.required]
    if required:
        assert_usage_error(cli(*path), path)
        return
    valued = [
        p
        for p in command.params
        if p.param_type_name == "option" and not getattr(p, "is_flag", False) and p.nargs == 1
    ]
    if not valued:
        pytest.skip("takes no argument and no option with a value")
    assert_usage_error(cli(*path, valued[0].opts[0]), path)


def test_unknown_command_and_bad_value(cli):
    assert_usage_error(cli("bogus"), ())
    assert_usage_error(cli("serve", "--port", "abc"), ("serve",))
    assert_usage_error(cli("-v", "match", "run", "--top-k"), ("match", "run"))
    assert_usage_error(cli("--home", "/tmp/x", "tool", "add"), ("tool", "add"))


def test_runtime_error_exits_1(cli):
    code, _, err = cli("capabilities", "no-such-tool")
    assert code == 1 and err.count("\n") == 1 and err.startswith("error: ")


def test_version(cli):
    from importlib.metadata import version

    code, out, _ = cli("--version")
    assert code == 0 and out == f"decomposer {version('decomposer')}\n"
