"""Incremental regeneration of "A vs B" pages: a page is rewritten only when its inputs changed.

Each page's input hash is ``sha256(run digest | format | digest(A's side) | digest(B's side))``:

- a *side* is everything about one tool that appears on a page (records, evidence, profile,
  catalogue values, scores with their explanations), built and hashed **once per tool**;
- the *run digest* covers what every page shares: the templates and stylesheet, the code of the
  comparator, alignment and match modules, the package version, the JSON schema version, the
  options (weights, top K, ``--include-unreviewed``, the scoring month) and the newest match
  run's digest (the match graph).

Match data reaches a page twice: each side carries its Times Matched and Match Graph score
(so a changed count rewrites that tool's pages), and the run digest carries the match graph's
digest (so a new ``match run`` is never hidden). The "Shared capabilities" alignment is a pure
function of both sides' capability texts and the aligner (code and thresholds), all hashed.

Hashes live in a manifest, ``<out-dir>/.decomposer-pages.json`` (``{"schema": 1, "pages":
{"<file>": "<hash>"}}``). A page whose hash matches the manifest and whose file exists is not
opened, written or touched; changed pages are written atomically (temp file + rename). The
manifest itself is rewritten only when an entry changed, so a run with nothing to do writes
nothing. Entries for pages outside this run's pairs are kept.

``--all`` pairs every two tools that share a category: a tool's categories are the
``categories`` of its catalogue entry or, when it declares none, the categories of the
capabilities that would appear on its pages. Tools with nothing to show are skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

import decomposer
from decomposer.catalog.score import Weights, score_tool
from decomposer.catalog.snapshot import Snapshot, comparable, latest_run, load_snapshot
from decomposer.core.errors import DecomposerError, InputError, NotFoundError
from decomposer.matching.embed import LexicalEmbedder
from decomposer.pages.compare import build_comparison, build_side
from decomposer.pages.copy import Copywriter
from decomposer.pages.forked import cpu_workers, run_forked
from decomposer.pages.model import SCHEMA_VERSION, Comparison, Options, ToolSide
from decomposer.pages.render import FORMATS, Renderer

MANIFEST = ".decomposer-pages.json"
MANIFEST_SCHEMA = 1
MIN_FORKED_PAIRS = 64
"""Below this many pairs to render, ``workers=0`` stays in one process: forking costs more."""
STAGING = ".decomposer-staging-"
"""Prefix of forked workers' staging folders in the output folder (then the parent's pid)."""
PAGE_MODE = 0o644  # pages are published: readable by the web server, not only by us
CODE_MODULES = (
    "catalog/catalogue.py",
    "catalog/snapshot.py",
    "pages/compare.py",
    "pages/copy.py",
    "pages/model.py",
    "pages/render.py",
    "catalog/score.py",
    "pages/regenerate.py",
    "matching/align.py",
    "matching/embed.py",
    "matching/lexpair.py",
    "matching/match.py",
)

OnProgress = Callable[[int, int], None]
Job = tuple["Pair", ToolSide, ToolSide, list[tuple[str, str, str]]]
"""A pair to render: both sides and its stale pages as (format, file name, input hash)."""
Rewrite = Callable[[Comparison], Comparison]
"""A last step on a page about to be written, e.g. model-written copy (``pages.llm_copy``)."""


@dataclass(frozen=True, order=True)
class Pair:
    a: str
    b: str

    def filename(self, fmt: str) -> str:
        return f"{self.a}-vs-{self.b}.{fmt}"


@dataclass
class RegenReport:
    out_dir: Path
    pairs: int = 0
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    sides_seconds: float = 0.0  # building and hashing each tool's side, once per tool
    pages_seconds: float = 0.0  # per-pair hashing, comparing and (when changed) rendering

    @property
    def pages(self) -> int:
        return len(self.written) + self.unchanged


def code_version() -> str:
    """The package version plus a hash of the comparator's own source files."""
    digest = hashlib.sha256(decomposer.__version__.encode())
    root = Path(__file__).parents[1]
    for name in CODE_MODULES:
        digest.update((root / name).read_bytes())
    return digest.hexdigest()


def run_digest(
    options: Options, renderer: Renderer, match_digest: str = "", copy_digest: str = ""
) -> str:
    """``copy_digest`` names model-written copy (endpoint, model, prompt); template copy adds
    nothing, so its pages keep their hashes."""
    material = {
        "schema": SCHEMA_VERSION,
        "code": code_version(),
        "templates": renderer.fingerprint(),
        "options": options.model_dump(mode="json"),
        "match": match_digest,
    }
    if copy_digest:
        material["copy"] = copy_digest
    return _sha(json.dumps(material, sort_keys=True))


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def read_pairs(path: Path) -> list[Pair]:
    """One pair per line: ``a b``, ``a,b`` or ``a vs b``; blank lines and ``#`` comments skipped."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise InputError(f"cannot read pairs file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    pairs: list[Pair] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [p for p in line.replace(",", " ").split() if p.lower() != "vs"]
        if len(parts) != 2:
            raise InputError(f"{path}:{number}: expected two tool slugs, got {line!r}")
        pairs.append(Pair(parts[0], parts[1]))
    if not pairs:
        raise InputError(f"{path}: no pairs listed")
    return pairs


def tool_categories(snapshot: Snapshot, slug: str, include_unreviewed: bool) -> set[str]:
    tool = snapshot.tools[slug]
    if tool.categories:
        return set(tool.categories)
    return {c.category for c in comparable(tool.capabilities, include_unreviewed)}


def all_pairs(snapshot: Snapshot, include_unreviewed: bool) -> list[Pair]:
    """Every two tools (slug order) with something to show that share a category."""
    by_category: dict[str, list[str]] = {}
    for slug in sorted(snapshot.tools):
        if not comparable(snapshot.tools[slug].capabilities, include_unreviewed):
            continue
        for category in tool_categories(snapshot, slug, include_unreviewed):
            by_category.setdefault(category, []).append(slug)
    pairs: set[Pair] = set()
    for members in by_category.values():
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                pairs.add(Pair(a, b))
    return sorted(pairs)


def _check_pairs(pairs: Iterable[Pair], snapshot: Snapshot) -> None:
    known = set(snapshot.tools)
    for pair in pairs:
        for slug in (pair.a, pair.b):
            if slug not in known:
                raise NotFoundError(f"unknown tool {slug!r} in the pairs")
        if pair.a == pair.b:
            raise InputError(f"cannot compare {pair.a} with itself", hint="fix the pairs file")


def load_manifest(out_dir: Path) -> dict[str, str]:
    path = out_dir / MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}  # unreadable manifest: every page is rebuilt and the manifest rewritten
    pages = data.get("pages") if isinstance(data, dict) else None
    if data.get("schema") != MANIFEST_SCHEMA or not isinstance(pages, dict):
        return {}
    return {str(k): str(v) for k, v in pages.items()}


_temp_names = itertools.count()


def _fill(fd: int, text: str) -> None:
    """Write ``text`` (UTF-8) to the new file ``fd``, mode 0644 whatever the umask, and close it."""
    data = memoryview(text.encode("utf-8"))
    try:
        os.fchmod(fd, PAGE_MODE)
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)


def write_new(path: Path, text: str) -> None:
    """Create ``path`` (it must not exist) holding ``text``."""
    _fill(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PAGE_MODE), text)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path``: a temp file in the same folder, then rename.

    The temp name is fixed per process and call (``mkstemp`` draws random names and retries);
    ``mkstemp`` only when that name is taken, by a stale file of a dead process."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{next(_temp_names)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PAGE_MODE)
    except FileExistsError:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        tmp = Path(name)
    try:
        _fill(fd, text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _page_errors(path: Path) -> Iterator[None]:
    """A page that cannot be written (e.g. a folder in its place) is one line."""
    try:
        yield
    except OSError as exc:
        raise InputError(f"cannot write page {path}: {exc.strerror or exc}") from None


def stage_page(folder: Path, name: str, content: str) -> str:
    """A page written by a forked worker into its own staging folder, for the parent to
    publish: workers never create files in the output folder, whose lock they would fight
    over in the kernel."""
    folder.mkdir(exist_ok=True)
    path = folder / name
    write_new(path, content)
    return str(path)


def _remove_dead_staging(out_dir: Path, names: Iterable[str]) -> None:
    """Staging folders left by a run that was killed (its process is gone)."""
    for name in names:
        if not name.startswith(STAGING):
            continue
        pid = name[len(STAGING) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(out_dir / name, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def publish_page(staged: Path, path: Path) -> None:
    """Move a staged page into place (one rename within the output folder's file system)."""
    with _page_errors(path):
        os.replace(staged, path)


class Sides:
    """Per-tool sides and their digests, built lazily, once per tool per run. A digest hashes
    the side's JSON as the renderer keeps it for the pages, so it is serialised once."""

    def __init__(self, snapshot: Snapshot, options: Options, renderer: Renderer) -> None:
        self.snapshot = snapshot
        self.options = options
        self.renderer = renderer
        self.weights = Weights(**options.weights)
        self._sides: dict[str, ToolSide | DecomposerError] = {}
        self._digests: dict[str, str] = {}

    def get(self, slug: str) -> ToolSide | DecomposerError:
        if slug not in self._sides:
            tool = self.snapshot.tools[slug]
            card = score_tool(
                tool.inputs(), self.snapshot.context, self.weights, self.options.as_of
            )
            try:
                side = build_side(tool, card, self.options)
            except DecomposerError as exc:
                self._sides[slug] = exc
            else:
                self._sides[slug] = side
                self._digests[slug] = _sha(self.renderer.section(side, "json"))
        return self._sides[slug]

    def digest(self, slug: str) -> str:
        self.get(slug)
        return self._digests[slug]


def regenerate(
    session: Session,
    out_dir: Path,
    *,
    options: Options,
    pairs: list[Pair] | None = None,
    formats: Iterable[str] = FORMATS,
    renderer: Renderer | None = None,
    copy: Copywriter | None = None,
    times_matched: Mapping[str, int] | None = None,
    on_progress: OnProgress | None = None,
    rewrite: Rewrite | None = None,
    copy_digest: str = "",
    workers: int = 0,
) -> RegenReport:
    """Write the pages of ``pairs`` (every pair sharing a category when None) to ``out_dir``."""
    formats = list(formats)
    for fmt in formats:
        if fmt not in FORMATS:
            raise InputError(f"unknown format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    snapshot = load_snapshot(session, None, times_matched)
    run = latest_run(session) if times_matched is None else None
    if pairs is None:
        pairs = all_pairs(snapshot, options.include_unreviewed)
    else:
        _check_pairs(pairs, snapshot)
    return write_pages(
        snapshot,
        out_dir,
        pairs,
        options=options,
        formats=formats,
        renderer=renderer,
        copy=copy,
        on_progress=on_progress,
        match_digest=run.digest if run is not None else "",
        rewrite=rewrite,
        copy_digest=copy_digest,
        workers=workers,
    )


def write_pages(
    snapshot: Snapshot,
    out_dir: Path,
    pairs: list[Pair],
    *,
    options: Options,
    formats: list[str],
    renderer: Renderer | None = None,
    copy: Copywriter | None = None,
    on_progress: OnProgress | None = None,
    match_digest: str = "",
    rewrite: Rewrite | None = None,
    copy_digest: str = "",
    workers: int = 0,
) -> RegenReport:
    """Phase 1 builds each tool's side once; phase 2 compares every page's input hash with the
    manifest; phase 3 renders and writes the stale pages in ``workers`` forked processes (0: one
    per core, up to 4, once there are ``MIN_FORKED_PAIRS`` pairs to render), unless a model is
    asked for copy (``rewrite``), which stays in this process."""
    renderer = renderer or Renderer()
    copy = copy or Copywriter()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder {out_dir}: {exc.strerror}") from None
    manifest = load_manifest(out_dir)
    before = dict(manifest)
    existing = {entry.name for entry in os.scandir(out_dir)}
    _remove_dead_staging(out_dir, existing)
    run = run_digest(options, renderer, match_digest, copy_digest)
    sides = Sides(snapshot, options, renderer)
    embedder = LexicalEmbedder()  # one per run: its stems are memoised across every pair
    report = RegenReport(out_dir=out_dir, pairs=len(pairs))
    started = time.perf_counter()
    for slug in sorted({s for pair in pairs for s in (pair.a, pair.b)}):
        sides.get(slug)  # phase 1: each tool's side and digest, once
    checked = time.perf_counter()
    report.sides_seconds = checked - started
    todo: list[Job] = []
    for pair in pairs:  # phase 2: per pair, hash and compare with the manifest
        side_a, side_b = sides.get(pair.a), sides.get(pair.b)
        if isinstance(side_a, DecomposerError) or isinstance(side_b, DecomposerError):
            reason = side_a if isinstance(side_a, DecomposerError) else side_b
            report.skipped.append((f"{pair.a} vs {pair.b}", str(reason)))
            continue
        pair_key = f"{run}|{sides.digest(pair.a)}|{sides.digest(pair.b)}"
        stale = []
        for fmt in formats:
            name = pair.filename(fmt)
            page_hash = _sha(f"{pair_key}|{fmt}")
            if manifest.get(name) == page_hash and name in existing:
                report.unchanged += 1
            else:
                stale.append((fmt, name, page_hash))
        if stale:
            todo.append((pair, side_a, side_b, stale))

    def build(job: Job) -> list[tuple[str, str]]:
        """Phase 3: build the pair's comparison once and render its stale pages."""
        _, side_a, side_b, stale = job
        comparison = build_comparison(side_a, side_b, options, copy, embedder)
        if rewrite is not None:
            comparison = rewrite(comparison)
        return [(name, renderer.render(comparison, fmt)) for fmt, name, _ in stale]

    def written_here() -> Generator[list[str], None, None]:
        for job in todo:
            names = []
            for name, text in build(job):
                with _page_errors(out_dir / name):
                    write_atomic(out_dir / name, text)
                names.append(name)
            yield names

    def published(forks: int) -> Generator[list[str], None, None]:
        """Children render and write into their own staging folders; this process alone
        renames the pages into the output folder."""
        staging = Path(tempfile.mkdtemp(prefix=f"{STAGING}{os.getpid()}-", dir=out_dir))

        def render_staged(job: Job) -> list[tuple[str, str]]:
            folder = staging / str(os.getpid())
            return [(name, stage_page(folder, name, text)) for name, text in build(job)]

        results = run_forked(todo, render_staged, forks)
        try:
            with contextlib.closing(results):
                for pages in results:
                    for name, staged in pages:
                        publish_page(Path(staged), out_dir / name)
                    yield [name for name, _ in pages]
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    hashes = {name: page_hash for *_, stale in todo for _, name, page_hash in stale}
    finished = len(pairs) - len(todo)
    if on_progress and finished:
        on_progress(finished, len(pairs))
    forks = workers or (cpu_workers() if len(todo) >= MIN_FORKED_PAIRS else 1)
    parallel = forks > 1 and rewrite is None and len(todo) > 1
    results = published(forks) if parallel else written_here()
    with contextlib.closing(results):
        for names in results:
            for name in names:
                manifest[name] = hashes[name]
            finished += 1
            if on_progress:
                on_progress(finished, len(pairs))
    report.written = [name for *_, stale in todo for _, name, _ in stale]  # pair order
    report.pages_seconds = time.perf_counter() - checked
    if manifest != before:
        data = {"schema": MANIFEST_SCHEMA, "pages": dict(sorted(manifest.items()))}
        write_atomic(out_dir / MANIFEST, json.dumps(data, indent=0) + "\n")
    return report


def pair_summary(report: RegenReport) -> dict[str, Any]:
    return {
        "out_dir": str(report.out_dir),
        "pairs": report.pairs,
        "written": len(report.written),
        "unchanged": report.unchanged,
        "skipped": [{"pair": p, "reason": r} for p, r in report.skipped],
    }
