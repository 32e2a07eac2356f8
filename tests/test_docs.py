"""Generated docs stay in step with the code: docs/cli.md and the module table are not stale."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from types import ModuleType

import pytest

from conftest import REPO


def gen_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", REPO / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_docs_are_current():
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_cli_reference_has_every_command():
    text = (REPO / "docs" / "cli.md").read_text("utf-8")
    for title in (
        "decomposer",
        "decomposer tool add",
        "decomposer batch status",
        "decomposer match run",
    ):
        assert f"## `{title}`\n" in text


def test_first_sentence():
    first = gen_docs().first_sentence
    assert first("Opening the database: engines, sessions.\n\nMore.") == (
        "Opening the database: engines, sessions."
    )
    assert first("The ``decomposer`` command: a | b. Then more.") == (
        "The `decomposer` command: a \\| b."
    )
    assert (
        first("Wrapped over\n    two lines, e.g. this one")
        == "Wrapped over two lines, e.g. this one"
    )


def test_a_module_without_a_docstring_fails_with_its_path(tmp_path):
    docs = gen_docs()
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "__init__.py").write_text("")
    (tmp_path / "core" / "fine.py").write_text('"""Owns fine things."""\n')
    (tmp_path / "core" / "bare.py").write_text("x = 1\n")
    with pytest.raises(docs.DocsError, match=r"without a docstring.*src/decomposer/core/bare\.py"):
        docs.module_rows(tmp_path)


def test_a_package_without_a_layer_fails(tmp_path):
    docs = gen_docs()
    (tmp_path / "misc").mkdir()
    (tmp_path / "misc" / "thing.py").write_text('"""Owns a thing."""\n')
    with pytest.raises(docs.DocsError, match="has no layer"):
        docs.module_rows(tmp_path)


def test_module_table_rows_are_ordered_by_layer(tmp_path):
    docs = gen_docs()
    for package, text in (("cli", "Commands."), ("core", "Basics."), ("store", "Tables.")):
        (tmp_path / package).mkdir()
        (tmp_path / package / "m.py").write_text(f'"""{text}"""\n')
    table = docs.render_module_table(tmp_path)
    assert table.splitlines()[2:] == [
        "| `core/m.py` | core | Basics. |",
        "| `store/m.py` | store | Tables. |",
        "| `cli/m.py` | cli | Commands. |",
    ]
