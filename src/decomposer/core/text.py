"""Text helpers shared by every layer: identifiers made from names."""

from __future__ import annotations

import re
import unicodedata

from decomposer.core.errors import InputError

_MAX_SLUG = 64


def slugify(name: str) -> str:
    """Lower-case, hyphen-separated identifier for a tool name ("Mistral API" -> "mistral-api").

    Accents are dropped ("Café" -> "cafe"); letters of other scripts are kept.
    """
    folded = unicodedata.normalize("NFKD", name.casefold())
    letters = "".join(char for char in folded if not unicodedata.combining(char))
    slug = re.sub(r"[\W_]+", "-", letters).strip("-")
    if not slug:
        raise InputError(f"cannot make a slug from {name!r}: it has no letters or digits")
    return slug[:_MAX_SLUG].rstrip("-")
