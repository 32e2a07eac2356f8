"""The public Python API: what a notebook or a script needs to open a store, add tools, ingest,
extract, review, compare, regenerate pages, match queries, write contrast lines and export or
back up a store, importable as ``decomposer.X``.

Names load on first use (PEP 562), so ``import decomposer`` costs nothing and the CLI, which
imports the package, does not pay for the SDKs behind extraction. Two names differ from where
they live because a subpackage of the same name would shadow them: ``ingest_sources`` is
``decomposer.ingest.documents.ingest`` and ``submit_review`` is
``decomposer.review.actions.submit``. See docs/python-api.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from decomposer.calls.runtime import RunSetup, limits_for
    from decomposer.catalog.catalogue import import_catalogue, load_catalogue
    from decomposer.contrast.lines import list_lines, review_line
    from decomposer.contrast.run import ContrastReport, run_contrast
    from decomposer.contrast.task import contrast_caller
    from decomposer.core.clock import utcnow
    from decomposer.core.config import Settings
    from decomposer.core.errors import DecomposerError
    from decomposer.core.vocab import CapabilityStatus, Category, ReviewAction, ToolType
    from decomposer.extraction.run import RunReport, run_extraction
    from decomposer.extraction.task import model_caller
    from decomposer.ingest.documents import IngestReport
    from decomposer.ingest.documents import ingest as ingest_sources
    from decomposer.matching.embed import make_embedder
    from decomposer.matching.match import run_match
    from decomposer.matching.queries import import_queries, parse_queries
    from decomposer.pages.model import Options
    from decomposer.pages.regenerate import regenerate
    from decomposer.pages.render import Renderer
    from decomposer.providers.base import api_key, resolve
    from decomposer.providers.replay import ReplayTransport
    from decomposer.review.actions import Outcome
    from decomposer.review.actions import submit as submit_review
    from decomposer.review.diff import vanish_missing
    from decomposer.store import Store, open_store
    from decomposer.store.backup import backup_sqlite
    from decomposer.store.summaries import list_tools
    from decomposer.store.tools import add_tool
    from decomposer.store.transfer import export_store, import_store
    from decomposer.views.capabilities import list_capabilities
    from decomposer.views.comparisons import load_comparison as compare

__version__ = "0.1.0"

_EXPORTS: dict[str, tuple[str, str]] = {
    "Settings": ("decomposer.core.config", "Settings"),
    "utcnow": ("decomposer.core.clock", "utcnow"),
    "DecomposerError": ("decomposer.core.errors", "DecomposerError"),
    "CapabilityStatus": ("decomposer.core.vocab", "CapabilityStatus"),
    "Category": ("decomposer.core.vocab", "Category"),
    "ReviewAction": ("decomposer.core.vocab", "ReviewAction"),
    "ToolType": ("decomposer.core.vocab", "ToolType"),
    "Store": ("decomposer.store", "Store"),
    "open_store": ("decomposer.store", "open_store"),
    "add_tool": ("decomposer.store.tools", "add_tool"),
    "list_tools": ("decomposer.store.summaries", "list_tools"),
    "resolve": ("decomposer.providers.base", "resolve"),
    "api_key": ("decomposer.providers.base", "api_key"),
    "ReplayTransport": ("decomposer.providers.replay", "ReplayTransport"),
    "RunSetup": ("decomposer.calls.runtime", "RunSetup"),
    "limits_for": ("decomposer.calls.runtime", "limits_for"),
    "model_caller": ("decomposer.extraction.task", "model_caller"),
    "ingest_sources": ("decomposer.ingest.documents", "ingest"),
    "IngestReport": ("decomposer.ingest.documents", "IngestReport"),
    "submit_review": ("decomposer.review.actions", "submit"),
    "Outcome": ("decomposer.review.actions", "Outcome"),
    "import_catalogue": ("decomposer.catalog.catalogue", "import_catalogue"),
    "load_catalogue": ("decomposer.catalog.catalogue", "load_catalogue"),
    "run_extraction": ("decomposer.extraction.run", "run_extraction"),
    "RunReport": ("decomposer.extraction.run", "RunReport"),
    "make_embedder": ("decomposer.matching.embed", "make_embedder"),
    "parse_queries": ("decomposer.matching.queries", "parse_queries"),
    "import_queries": ("decomposer.matching.queries", "import_queries"),
    "run_match": ("decomposer.matching.match", "run_match"),
    "Options": ("decomposer.pages.model", "Options"),
    "compare": ("decomposer.views.comparisons", "load_comparison"),
    "Renderer": ("decomposer.pages.render", "Renderer"),
    "regenerate": ("decomposer.pages.regenerate", "regenerate"),
    "list_capabilities": ("decomposer.views.capabilities", "list_capabilities"),
    "vanish_missing": ("decomposer.review.diff", "vanish_missing"),
    "export_store": ("decomposer.store.transfer", "export_store"),
    "import_store": ("decomposer.store.transfer", "import_store"),
    "backup_sqlite": ("decomposer.store.backup", "backup_sqlite"),
    "contrast_caller": ("decomposer.contrast.task", "contrast_caller"),
    "run_contrast": ("decomposer.contrast.run", "run_contrast"),
    "ContrastReport": ("decomposer.contrast.run", "ContrastReport"),
    "list_lines": ("decomposer.contrast.lines", "list_lines"),
    "review_line": ("decomposer.contrast.lines", "review_line"),
}

__all__ = [
    "CapabilityStatus",
    "Category",
    "ContrastReport",
    "DecomposerError",
    "IngestReport",
    "Options",
    "Outcome",
    "Renderer",
    "ReplayTransport",
    "ReviewAction",
    "RunReport",
    "RunSetup",
    "Settings",
    "Store",
    "ToolType",
    "__version__",
    "add_tool",
    "api_key",
    "backup_sqlite",
    "compare",
    "contrast_caller",
    "export_store",
    "import_catalogue",
    "import_queries",
    "import_store",
    "ingest_sources",
    "limits_for",
    "list_capabilities",
    "list_lines",
    "list_tools",
    "load_catalogue",
    "make_embedder",
    "model_caller",
    "open_store",
    "parse_queries",
    "regenerate",
    "resolve",
    "review_line",
    "run_contrast",
    "run_extraction",
    "run_match",
    "submit_review",
    "utcnow",
    "vanish_missing",
]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'decomposer' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), attr)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
