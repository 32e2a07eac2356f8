"""CLI start-up: what ``--help`` and ``tools`` import, values shown in help, missing extras."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

HEAVY = ("instructor", "openai", "mistralai", "scipy", "numpy", "fastapi", "celery")

PROBE = """
import json, sys
from decomposer.cli.app import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def imported_by(home: Path, *args: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``decomposer ARGS``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DECOMPOSER_")}
    env["DECOMPOSER_HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] == 0, done.stderr
    return {name.split(".")[0] for name in report["modules"]}


@pytest.mark.fresh_home
def test_help_and_tools_do_not_import_the_heavy_stack(tmp_path):
    home = tmp_path / "home"
    assert not set(HEAVY) & imported_by(home, "--help")
    first = imported_by(home, "tools")
    assert not set(HEAVY) & first
    assert "alembic" in first  # a new database is migrated on first use
    again = imported_by(home, "tools")
    assert not set(HEAVY) & again
    # A current SQLite store is listed through the stdlib driver: no Alembic, no SQLAlchemy.
    assert not {"alembic", "sqlalchemy"} & again


def test_head_revision_is_alembics_head():
    from alembic.script import ScriptDirectory

    from decomposer.store.engine import alembic_config
    from decomposer.store.lite import head_revision

    expected = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head_revision() == expected


def test_head_revision_gives_up_on_branches(tmp_path):
    from decomposer.store.lite import head_revision

    for name, down in (("a", None), ("b", "a"), ("c", "a")):
        parent = f'"{down}"' if down else "None"
        (tmp_path / f"{name}.py").write_text(f'revision = "{name}"\ndown_revision = {parent}\n')
    assert head_revision(tmp_path) is None


def test_help_values_match_their_owners():
    from decomposer.calls.caller import RetryPolicy
    from decomposer.cli import choices
    from decomposer.extraction.batch import Backoff
    from decomposer.extraction.concurrency import DEFAULT_MAX_CONCURRENCY
    from decomposer.extraction.jobs import STATES
    from decomposer.matching.embed import EMBEDDERS, LEXICAL_THRESHOLDS
    from decomposer.matching.match import run_match
    from decomposer.pages.compare import Options
    from decomposer.pages.llm_copy import COPY_MODES
    from decomposer.pages.render import FORMATS
    from decomposer.providers.base import PROVIDERS
    from decomposer.review.actions import FIELDS
    from decomposer.store.tools import TOOL_TYPES
    from decomposer.views.capabilities import STATUSES

    assert tuple(TOOL_TYPES) == choices.TOOL_TYPES
    assert tuple(STATUSES) == choices.STATUSES
    assert tuple(STATES) == choices.JOB_STATES
    assert tuple(PROVIDERS) == choices.PROVIDERS
    assert RetryPolicy.attempts == choices.RETRY_ATTEMPTS
    assert Backoff.deadline_s == choices.BATCH_WAIT_S
    assert DEFAULT_MAX_CONCURRENCY == choices.MAX_CONCURRENCY
    assert tuple(EMBEDDERS) == choices.EMBEDDERS
    assert (LEXICAL_THRESHOLDS.align, LEXICAL_THRESHOLDS.match) == (
        choices.LEXICAL_ALIGN,
        choices.LEXICAL_MATCH,
    )
    assert inspect.signature(run_match).parameters["k"].default == choices.MATCHES_PER_QUERY
    assert Options.model_fields["top_k"].default == choices.CAPABILITIES_PER_SIDE
    assert tuple(FORMATS) == choices.FORMATS
    assert tuple(FIELDS) == choices.REVIEW_FIELDS
    assert tuple(COPY_MODES) == choices.COPY_MODES


@pytest.mark.parametrize(
    ("missing", "args", "command", "extra"),
    [
        ("fastapi", ["serve"], "decomposer serve", "web"),
        ("uvicorn", ["serve"], "decomposer serve", "web"),
        ("celery", ["worker"], "decomposer worker", "queue"),
        ("celery", ["extract", "acme", "--queue"], "decomposer extract --queue", "queue"),
        ("numpy", ["match", "run"], "decomposer match run", "match"),
        ("scipy", ["compare", "a", "b"], "decomposer compare", "match"),
        ("numpy", ["regenerate"], "decomposer regenerate", "match"),
    ],
)
def test_a_missing_extra_is_named_in_one_line(cli, monkeypatch, missing, args, command, extra):
    monkeypatch.setitem(sys.modules, missing, None)
    code, _, err = cli(*args)
    assert code == 1
    assert err == (
        f"error: {command} needs the '{extra}' extra: pip install 'decomposer[{extra}]'\n"
    )


def test_needs_names_the_extra_only_for_the_extras_modules(monkeypatch):
    from decomposer.cli.common import needs
    from decomposer.core.errors import ConfigError

    monkeypatch.setitem(sys.modules, "snowballstemmer", None)
    with pytest.raises(ConfigError) as caught, needs("match", "decomposer score"):
        import snowballstemmer  # noqa: F401
    assert str(caught.value) == (
        "decomposer score needs the 'match' extra: pip install 'decomposer[match]'"
    )
    monkeypatch.setitem(sys.modules, "not_an_extra", None)
    with pytest.raises(ImportError), needs("match", "decomposer score"):
        import not_an_extra  # noqa: F401


def test_postgres_url_without_the_driver_names_the_extra(cli, monkeypatch):
    monkeypatch.setenv("DECOMPOSER_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    monkeypatch.setitem(sys.modules, "psycopg", None)
    code, _, err = cli("tools")
    assert code == 1
    assert err == (
        "error: a PostgreSQL database needs the 'postgres' extra: "
        "pip install 'decomposer[postgres]'\n"
    )


def test_usage_errors_print_one_line_and_exit_2(cli):
    code, out, err = cli("tools", "--bogus")
    assert code == 2 and out == ""
    assert err == "error: No such option: --bogus (see 'decomposer tools --help')\n"
    code, _, err = cli("nope")
    assert code == 2 and "No such command 'nope'" in err


def test_a_group_without_a_command_prints_its_help(cli):
    code, out, err = cli()
    assert code == 2 and err == ""
    assert "Usage: decomposer [OPTIONS] COMMAND [ARGS]..." in out
    code, out, err = cli("tool")
    assert code == 2 and err == "" and "Usage: decomposer tool [OPTIONS] COMMAND" in out
