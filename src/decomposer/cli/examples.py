"""One or two example invocations per command, appended to its ``--help`` as an "Example:"
paragraph; tests/test_help.py parses each one against the command's real options."""

from __future__ import annotations

EXAMPLES: dict[str, tuple[str, ...]] = {
    "path": ("decomposer path",),
    "tools": ("decomposer tools --nl",),
    "ingest": (
        "decomposer ingest mistral-api fixtures/docs/mistral-api",
        "decomposer ingest mistral-api fixtures/docs/mistral-api --prune",
    ),
    "extract": (
        "decomposer extract mistral-api --replay fixtures/recordings",
        "decomposer extract llama-4 --provider openai-compatible --model llama3.2",
    ),
    "runs": ("decomposer runs --tool mistral-api --json",),
    "worker": ("decomposer worker --concurrency 4",),
    "jobs": ("decomposer jobs --run 12 --state failed",),
    "capabilities": ("decomposer capabilities mistral-api --status ungrounded",),
    "score": ("decomposer score mistral-api --explain",),
    "compare": (
        "decomposer compare mistral-api llama-4 --format html --out page.html",
        "decomposer compare mistral-api llama-4 --copy llm --out page.md",
    ),
    "regenerate": (
        "decomposer regenerate --out-dir pages --all",
        "decomposer regenerate --all --copy llm --replay fixtures/recordings",
    ),
    "review": ("decomposer review mistral-api --reviewer me",),
    "approve": (
        "decomposer approve cap_5cbd4bca0bd1fefe --reviewer me",
        "decomposer approve --tool mistral-api --where category=vision --dry-run",
    ),
    "reject": ("decomposer reject cap_052056cffb46e7dd --note 'not a capability'",),
    "edit": ("decomposer edit cap_6d8ddde37a2d07e5 --field unique --value 'Long context.'",),
    "history": ("decomposer history cap_6d8ddde37a2d07e5 --json",),
    "serve": ("decomposer serve --port 8000",),
    "export": (
        "decomposer export store.jsonl",
        "decomposer export --tool mistral-api --tool llama-4 two-tools.jsonl",
    ),
    "import": ("decomposer import store.jsonl",),
    "backup": ("decomposer backup decomposer-backup.db",),
    "tool add": ('decomposer tool add "Mistral API" --type API --vendor "Mistral AI"',),
    "tool import": ("decomposer tool import fixtures/catalogue.toml",),
    "tool show": ("decomposer tool show mistral-api --json",),
    "tool remove": ("decomposer tool remove llama-4 --json",),
    "doc list": ("decomposer doc list mistral-api --nl",),
    "doc remove": ("decomposer doc remove mistral-api mistral-api/embeddings.md",),
    "batch status": ("decomposer batch status --wait",),
    "batch collect": ("decomposer batch collect",),
    "batch cancel": ("decomposer batch cancel 12",),
    "batch list": ("decomposer batch list --json",),
    "match import-queries": ("decomposer match import-queries fixtures/queries.csv",),
    "match run": ("decomposer match run --embedder lexical --top-k 10",),
    "match explain": ("decomposer match explain llama-4 --json",),
    "match similar": ("decomposer match similar mistral-api --include-unreviewed",),
    "stale": ("decomposer stale --stale-after 90 --json",),
    "eval run": (
        "decomposer eval run fixtures/golden/demo.toml --replay fixtures/recordings",
        "decomposer eval run my-golden.toml --model mistral-large-latest",
    ),
    "eval list": ("decomposer eval list --golden demo",),
    "eval show": ("decomposer eval show latest --format html --out run.html",),
    "eval compare": ("decomposer eval compare 3 4 --format html --out 3-vs-4.html",),
    "eval report": ("decomposer eval report 3 4 5 --out evals.html",),
    "contrast": (
        "decomposer contrast --all --replay fixtures/recordings/contrast",
        "decomposer contrast mistral-api --provider openai --model gpt-4o-mini",
        "decomposer contrast --all --batch",
    ),
    "lines list": ("decomposer lines list mistral-api --status proposed",),
    "lines show": ("decomposer lines show 3",),
    "lines approve": ("decomposer lines approve 3 --reviewer me",),
    "lines reject": ("decomposer lines reject 3 --note 'names no difference' --reviewer me",),
    "lines edit": ("decomposer lines edit 3 --value 'Mistral API ...' --reviewer me",),
    "token create": ('decomposer token create --name "nightly script"',),
    "token list": ("decomposer token list --revoked",),
    "token revoke": ('decomposer token revoke "nightly script"',),
}
"""Command path (as typed after ``decomposer``) to its examples, one command line each."""


def paragraph(path: str) -> str:
    """The help paragraph for ``path``, one example a line."""
    lines = "\n".join(f"  {line}" for line in EXAMPLES.get(path, ()))
    return f"Example:\n{lines}" if lines else ""


def reflow(help_text: str) -> str:
    """Each prose paragraph of a docstring as one line, so the terminal wraps it at its own width
    instead of at the source's line breaks (Typer keeps those after the first paragraph)."""
    import inspect

    paragraphs = inspect.cleandoc(help_text).split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)
