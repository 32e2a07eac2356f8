"""The README's Everyday use sequence runs as written, offline, in order, on an empty store."""

from __future__ import annotations

import re
import shlex

from conftest import CLI, REPO

README = REPO / "README.md"


def everyday_commands() -> list[list[str]]:
    """The argument lists of the first ``sh`` block under "Everyday use", comments dropped."""
    section = README.read_text("utf-8").split("## Everyday use", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    text = block.group(1).replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            assert words[0] == "decomposer", line
            commands.append(words[1:])
    return commands


def test_everyday_use_runs_as_written(capsys, tmp_path, monkeypatch):
    (tmp_path / "fixtures").symlink_to(REPO / "fixtures")
    monkeypatch.chdir(tmp_path)
    cli = CLI(capsys)
    commands = everyday_commands()
    assert len(commands) > 20
    for args in commands:
        code, _, err = cli(*args)
        assert code == 0, f"decomposer {shlex.join(args)}: {err}"
    assert "Llama 4" in (tmp_path / "page.html").read_text("utf-8")
    assert any((tmp_path / "pages").iterdir())
