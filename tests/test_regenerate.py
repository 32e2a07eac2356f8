"""Incremental regeneration: nothing written on a second run, only affected pages after a change."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import pytest

from decomposer.pages.model import Options
from decomposer.pages.regenerate import MANIFEST, Pair, read_pairs, regenerate
from decomposer.pages.render import Renderer
from decomposer.store import open_store
from pages_support import AS_OF, add_tool, run, set_status


@pytest.fixture
def catalogue(settings):
    """Four tools: three share 'llm', 'delta' is alone in 'vision'; 'gamma' has drafts only."""
    store = open_store(settings.database_url)
    add_tool(store, "alpha", [{"name": "A1"}, {"name": "A2"}], signals={"github_stars": 50})
    add_tool(store, "beta", [{"name": "B1"}], signals={"github_stars": 5})
    add_tool(store, "gamma", [{"name": "G1", "status": "proposed"}])
    add_tool(store, "epsilon", [{"name": "E1"}], signals={"integrations": 3})
    add_tool(store, "delta", [{"name": "D1"}], categories=["vision"])
    store.dispose()
    return settings


def state(folder: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime_ns) of every file, so 'not touched' is checked, not just 'same content'."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def regen(capsys, out_dir: Path, *extra: str) -> dict:
    code, out, err = run(
        capsys, "regenerate", "--out-dir", str(out_dir), "--as-of", AS_OF, "--json", *extra
    )
    assert code == 0, err
    return json.loads(out)


def test_all_pairs_share_a_category_and_second_run_writes_nothing(catalogue, capsys, tmp_path):
    out_dir = tmp_path / "pages"
    first = regen(capsys, out_dir)
    assert first["pairs"] == 3  # alpha-beta, alpha-epsilon, beta-epsilon; gamma has no approved
    assert first["written"] == 9 and first["unchanged"] == 0
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        [MANIFEST]
        + [
            f"{a}-vs-{b}.{f}"
            for a, b in (("alpha", "beta"), ("alpha", "epsilon"), ("beta", "epsilon"))
            for f in ("md", "html", "json")
        ]
    )
    before = state(out_dir)
    second = regen(capsys, out_dir)
    assert (second["written"], second["unchanged"]) == (0, 9)
    assert state(out_dir) == before  # no page and not even the manifest was rewritten


def test_one_capability_change_rewrites_only_that_tools_pages(catalogue, capsys, tmp_path):
    out_dir = tmp_path / "pages"
    regen(capsys, out_dir)
    before = state(out_dir)
    store = open_store(catalogue.database_url)
    set_status(store, "B1", "approved")  # no-op: already approved
    with store.transaction() as s:
        from decomposer.store.models import Capability

        cap = s.get(Capability, "cap_alpha_1")
        cap.description = "A2, now described differently."
    store.dispose()
    report = regen(capsys, out_dir)
    after = state(out_dir)
    changed = {name for name in after if after[name] != before.get(name)}
    assert changed == {MANIFEST} | {
        f"{p}.{f}" for p in ("alpha-vs-beta", "alpha-vs-epsilon") for f in ("md", "html", "json")
    }
    assert report["written"] == 6 and report["unchanged"] == 3
    assert "A2, now described differently." in (out_dir / "alpha-vs-beta.md").read_text()


def test_weights_templates_and_deleted_files_trigger_rewrites(catalogue, capsys, tmp_path):
    out_dir = tmp_path / "pages"
    regen(capsys, out_dir)
    assert regen(capsys, out_dir, "--weights", "quality=50")["written"] == 9
    (out_dir / "alpha-vs-beta.html").unlink()
    report = regen(capsys, out_dir, "--weights", "quality=50")
    assert report["written"] == 1 and (out_dir / "alpha-vs-beta.html").exists()

    # A template edit changes every page's hash (library call with a copied template folder).
    templates = tmp_path / "templates"
    import shutil

    from decomposer.pages.copy import TEMPLATES

    shutil.copytree(TEMPLATES, templates)
    store = open_store(catalogue.database_url)
    options = Options(as_of=date.fromisoformat(AS_OF))
    with store.transaction() as s:
        assert len(regenerate(s, out_dir, options=options).written) == 9  # weights back to default
        same = regenerate(s, out_dir, options=options, renderer=Renderer(templates))
        assert same.written == []  # identical templates, identical hashes
        (templates / "page.md.j2").write_text(
            (templates / "page.md.j2").read_text() + "\nFooter.\n"
        )
        report = regenerate(s, out_dir, options=options, renderer=Renderer(templates))
    store.dispose()
    assert len(report.written) == 9


def test_pairs_file_and_drafts(catalogue, capsys, tmp_path):
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("# wanted pages\nalpha vs delta\ngamma, beta\n")
    assert read_pairs(pairs) == [Pair("alpha", "delta"), Pair("gamma", "beta")]
    out_dir = tmp_path / "pages"
    report = regen(capsys, out_dir, "--pairs", str(pairs), "--format", "md")
    assert report["written"] == 1 and report["skipped"][0]["pair"] == "gamma vs beta"
    assert "gamma has no approved capabilities" in report["skipped"][0]["reason"]
    report = regen(capsys, out_dir, "--pairs", str(pairs), "--format", "md", "--include-unreviewed")
    assert report["written"] == 2 and not report["skipped"]
    text = (out_dir / "gamma-vs-beta.md").read_text()
    assert "### G1 *(draft)*" in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("alpha nosuch\n", "unknown tool 'nosuch'"),
        ("alpha alpha\n", "cannot compare alpha with itself"),
        ("alpha beta gamma\n", "expected two tool slugs"),
        ("# nothing\n", "no pairs listed"),
    ],
)
def test_bad_pairs_file_is_one_line_and_writes_nothing(
    catalogue, capsys, tmp_path, content, message
):
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(content)
    out_dir = tmp_path / "pages"
    code, _out, err = run(capsys, "regenerate", "--out-dir", str(out_dir), "--pairs", str(pairs))
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not out_dir.exists()


def test_all_and_pairs_together_is_an_error(catalogue, capsys, tmp_path):
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("alpha beta\n")
    code, _, err = run(capsys, "regenerate", "--all", "--pairs", str(pairs))
    assert code == 1 and "either --all or --pairs" in err


def test_pages_are_published_readable(catalogue, capsys, tmp_path):
    out_dir = tmp_path / "pages"
    regen(capsys, out_dir, "--format", "md")
    mode = (out_dir / "alpha-vs-beta.md").stat().st_mode & 0o777
    assert mode == 0o644
    assert not [p for p in os.listdir(out_dir) if p.endswith(".tmp")]


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_forked_workers_write_the_same_pages_and_manifest(catalogue, capsys, tmp_path):
    serial = regen(capsys, tmp_path / "one", "--workers", "1")
    forked = regen(capsys, tmp_path / "two", "--workers", "2")
    assert forked == {**serial, "out_dir": forked["out_dir"]}
    assert contents(tmp_path / "one") == contents(tmp_path / "two")
    again = regen(capsys, tmp_path / "two", "--workers", "3")
    assert (again["written"], again["unchanged"]) == (0, 9)


def children() -> set[int]:
    """This process's child processes, zombies included (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # ended meanwhile
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                found.add(int(entry.name))
    return found


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_page_that_cannot_be_written_is_one_line_and_no_manifest(
    catalogue, capsys, tmp_path, workers
):
    out_dir = tmp_path / "pages"
    (out_dir / "alpha-vs-epsilon.html").mkdir(parents=True)  # a page path taken by a folder
    args = ("regenerate", "--out-dir", str(out_dir), "--as-of", AS_OF, "--workers", workers)
    before = children()
    code, _, err = run(capsys, *args)
    assert code == 1 and err.count("\n") == 1, err
    assert err == f"error: cannot write page {out_dir / 'alpha-vs-epsilon.html'}: Is a directory\n"
    assert not (out_dir / MANIFEST).exists()  # the next run writes every page again
    assert not [p for p in os.listdir(out_dir) if p.startswith(".")]  # no temp file or staging
    assert children() == before  # the page workers were reaped


def test_a_page_worker_that_fails_to_render_is_one_line_and_no_manifest(catalogue, tmp_path):
    """A child's error comes back to the parent, which raises once every child has ended."""
    import shutil

    from decomposer.core.errors import DecomposerError
    from decomposer.pages.copy import TEMPLATES

    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    (templates / "page.md.j2").write_text("{{ c.no_such_field }}\n")
    out_dir = tmp_path / "pages"
    store = open_store(catalogue.database_url)
    options = Options(as_of=date.fromisoformat(AS_OF))
    before = children()
    with store.transaction() as s, pytest.raises(DecomposerError) as raised:
        regenerate(s, out_dir, options=options, renderer=Renderer(templates), workers=2)
    store.dispose()
    assert str(raised.value).startswith("a page worker failed: UndefinedError: "), raised.value
    assert "\n" not in str(raised.value)
    assert not (out_dir / MANIFEST).exists()
    assert os.listdir(out_dir) == []  # the staging folder is gone
    assert children() == before


def test_a_killed_runs_staging_folder_is_removed_and_a_live_ones_kept(catalogue, capsys, tmp_path):
    import subprocess
    import sys

    out_dir = tmp_path / "pages"
    code = "import os; print(os.getpid())"
    ended = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    dead = out_dir / f".decomposer-staging-{int(ended.stdout)}-abc123"
    live = out_dir / f".decomposer-staging-{os.getpid()}-def456"
    for folder in (dead, live):
        (folder / "7").mkdir(parents=True)
        (folder / "7" / "alpha-vs-beta.md").write_text("half a page")
    regen(capsys, out_dir, "--workers", "2")
    assert not dead.exists()
    assert (live / "7" / "alpha-vs-beta.md").exists()  # another run may still be using it
