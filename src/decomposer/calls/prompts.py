"""Versioned prompt templates from ``prompts/<name>/<version>/{system,user}.j2``.

Templates are rendered by Instructor (sandboxed Jinja2) with the call's context; ``render`` does
the same locally so token counts and benchmarks see exactly what is sent.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from textwrap import dedent
from typing import Any

from jinja2.sandbox import SandboxedEnvironment

from decomposer.core.errors import ConfigError

EXTRACT = "extract"
_VERSION = re.compile(r"^v(\d+)$")
_DOCUMENT_TAG = re.compile(r"<(?=\s*/?\s*document\b)", re.IGNORECASE)


def untrusted(text: str) -> str:
    """Text to place between ``<document …>`` and ``</document>``: the ``<`` of any
    ``<document`` or ``</document`` tag in it (any case, spaced or not) is written ``&lt;``, so
    no document text can close the untrusted block or open another. Nothing else changes:
    evidence is quoted from this text, and grounding compares quotes with the stored text."""
    return _DOCUMENT_TAG.sub("&lt;", text)


@dataclass(frozen=True)
class Prompt:
    name: str
    version: str
    system: str
    user: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(f"{self.system}\0{self.user}".encode()).hexdigest()

    def messages(self) -> list[dict[str, str]]:
        """Unrendered messages; Instructor renders them with the validation context."""
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]

    def render(self, context: dict[str, Any]) -> list[dict[str, str]]:
        env = SandboxedEnvironment()
        return [
            {"role": m["role"], "content": dedent(env.from_string(m["content"]).render(**context))}
            for m in self.messages()
        ]


def default_prompts_dir() -> Path:
    """The checkout's ``prompts/`` when running from source, else the copy inside the wheel."""
    source_tree = Path(__file__).resolve().parents[3] / "prompts"
    if source_tree.is_dir():
        return source_tree
    return Path(__file__).resolve().parent / "_prompts"


def load_prompt(
    name: str = EXTRACT, version: str | None = None, root: Path | None = None
) -> Prompt:
    base = (root or default_prompts_dir()) / name
    versions = sorted(
        (int(m.group(1)), p.name)
        for p in (base.iterdir() if base.is_dir() else [])
        if (m := _VERSION.match(p.name)) and p.is_dir()
    )
    if not versions:
        raise ConfigError(f"no prompt versions found in {base}")
    chosen = version or versions[-1][1]
    folder = base / chosen
    try:
        system = (folder / "system.j2").read_text(encoding="utf-8")
        user = (folder / "user.j2").read_text(encoding="utf-8")
    except FileNotFoundError:
        known = ", ".join(v for _, v in versions)
        raise ConfigError(
            f"unknown prompt version {name}/{chosen}", hint=f"known: {known}"
        ) from None
    return Prompt(name=name, version=chosen, system=system, user=user)
