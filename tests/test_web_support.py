"""Helpers for the web tests: extra capabilities straight in the store, for paging."""

from __future__ import annotations

from sqlalchemy import select

from decomposer.core.clock import utcnow
from decomposer.store import Store
from decomposer.store.models import Capability, Tool


def add_capabilities(store: Store, n: int, slug: str = "acmedb") -> list[str]:
    """``n`` proposed capabilities named ``Extra NN`` for ``slug``; their ids."""
    now = utcnow()
    ids = [f"cap_extra{i:02d}" for i in range(n)]
    with store.transaction() as s:
        tool = s.scalar(select(Tool).where(Tool.slug == slug))
        assert tool is not None
        for i, cid in enumerate(ids):
            s.add(
                Capability(
                    id=cid,
                    tool_id=tool.id,
                    key=f"extra-{i}",
                    name=f"Extra {i:02d}",
                    category="platform",
                    description=f"Extra capability number {i}.",
                    unique="u",
                    vs_alternatives="v",
                    status="approved",
                    version=1,
                    created_at=now,
                    updated_at=now,
                )
            )
    return ids
