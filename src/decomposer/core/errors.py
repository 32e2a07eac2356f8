"""Exceptions raised by decomposer. The CLI turns each into one line (plus its hint) and exit 1.

    DecomposerError
    ├── ConfigError        settings, API keys, base URLs, unknown provider/mode
    ├── InputError         bad user input: paths, files, URLs, names
    │   └── NotFoundError  an unknown tool, capability or run
    ├── ProviderError      the model provider failed after retries, or answered unusably
    ├── ConflictError      a review action was based on a stale capability version
    └── StoreError         the database is unreachable or not migrated

Messages never contain API keys: providers' errors are summarised, not echoed.
"""

from __future__ import annotations


class DecomposerError(Exception):
    """Base class; ``hint`` says what the user can do about it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} — {self.hint}"


class ConfigError(DecomposerError):
    pass


class InputError(DecomposerError):
    pass


class NotFoundError(InputError):
    pass


class ProviderError(DecomposerError):
    pass


class StoreError(DecomposerError):
    pass


class ConflictError(DecomposerError):
    """A review action was based on a stale version of a capability; nothing was changed."""

    def __init__(self, message: str, hint: str | None = None, *, current: int = 0) -> None:
        super().__init__(message, hint)
        self.current = current
