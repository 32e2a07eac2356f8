"""The public API: ``decomposer.__all__`` resolves lazily, and docs/python-api.md's example runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import decomposer

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "python-api.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def example_code() -> str:
    return "\n".join(_BLOCK.findall(DOC.read_text("utf-8")))


def test_every_public_name_resolves():
    for name in decomposer.__all__:
        assert getattr(decomposer, name) is not None, name
    assert set(decomposer.__all__) <= set(dir(decomposer))


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = decomposer.no_such_thing


def test_import_is_cheap():
    """The names load on first use: importing the package loads none of the layers."""
    code = (
        "import sys, decomposer\n"
        "print(sorted(m for m in sys.modules if m.startswith('decomposer.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_the_documented_example_runs(tmp_path, monkeypatch, capsys):
    code = example_code()
    assert "dc.run_extraction" in code and "dc.regenerate" in code
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("DECOMPOSER_HOME", str(tmp_path / "home"))
    exec(compile(code, str(DOC), "exec"), {"__name__": "python_api_example"})
    out = capsys.readouterr().out
    assert "['llama-4', 'mistral-api']" in out
    assert "rejected version 2" in out
    assert (tmp_path / "home" / "pages").is_dir()
