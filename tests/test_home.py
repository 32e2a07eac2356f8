"""Where the data lives: the per-user dir by default, ``DECOMPOSER_HOME`` and ``--home`` to
override it, an old ``./.decomposer`` still used (said once), ``decomposer path`` to print it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO


@pytest.fixture
def nowhere(tmp_path, monkeypatch) -> Path:
    """No DECOMPOSER_HOME, the per-user dir under tmp_path, and an empty current folder."""
    monkeypatch.delenv("DECOMPOSER_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def test_default_is_the_per_user_dir_whatever_the_current_folder(cli, nowhere, monkeypatch):
    code, out, _ = cli("path")
    assert code == 0 and out == f"{nowhere / 'xdg' / 'decomposer'}\n"
    assert cli("tool", "add", "Acme")[0] == 0
    elsewhere = nowhere / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert [t["slug"] for t in cli.json("tools")] == ["acme"]  # the same store, not a new one
    assert not (elsewhere / ".decomposer").exists()
    assert (nowhere / "xdg" / "decomposer" / "decomposer.db").is_file()


def test_env_and_option_override(cli, nowhere, monkeypatch):
    monkeypatch.setenv("DECOMPOSER_HOME", str(nowhere / "env"))
    assert cli("path")[1] == f"{nowhere / 'env'}\n"
    assert cli("--home", str(nowhere / "opt"), "path")[1] == f"{nowhere / 'opt'}\n"
    assert cli("--home", str(nowhere / "opt"), "tool", "add", "Acme")[0] == 0
    assert (nowhere / "opt" / "decomposer.db").is_file()
    assert cli.json("tools") == []  # DECOMPOSER_HOME's store is another one


def test_an_old_dot_decomposer_keeps_working_and_is_explained_once(cli, nowhere):
    legacy = Path(".decomposer")
    legacy.mkdir()
    code, _, err = cli("tool", "add", "Acme")
    assert code == 0
    assert err.startswith("note: using .decomposer/ in this folder, the old default data dir")
    assert f"mv .decomposer '{nowhere / 'xdg' / 'decomposer'}'" in err
    assert err.count("\n") == 1
    assert (legacy / "decomposer.db").is_file()
    code, out, err = cli("tools")
    assert code == 0 and "acme" in out and err == ""  # said once
    assert cli("path")[1] == f"{legacy.resolve()}\n"


def test_help_creates_no_data_dir(nowhere):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DECOMPOSER_")}
    done = subprocess.run(
        [sys.executable, "-m", "decomposer", "--help"],
        env=env,
        cwd=nowhere / "work",
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert not (nowhere / "xdg").exists()


def test_makefile_demo_finds_pages_through_decomposer_path():
    makefile = (REPO / "Makefile").read_text("utf-8")
    assert "$(DECOMPOSER) path)/pages" in makefile
    assert ".decomposer" not in makefile
