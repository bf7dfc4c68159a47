"""One small error hierarchy. Core code raises these; only the edges (HTTP, CLI) translate them.

Each error has an HTTP status and a stable `type` that ends up in the OpenAI error envelope
`{"error": {"message", "type", "code", "param"}}`.
"""

from __future__ import annotations


class LoragError(Exception):
    """Base of every error lorag raises on purpose."""

    status_code: int = 500
    type: str = "internal_error"
    retryable: bool = False

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param

    def envelope(self) -> dict[str, dict[str, str | None]]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}


class InvalidInput(LoragError):
    """The caller sent something we cannot use; the message says what and how to fix it."""

    status_code = 400
    type = "invalid_request_error"


class NotFound(LoragError):
    status_code = 404
    type = "not_found_error"


class Conflict(LoragError):
    status_code = 409
    type = "conflict_error"


class Unauthorized(LoragError):
    """No API key, or one that is unknown or revoked."""

    status_code = 401
    type = "authentication_error"


class Forbidden(LoragError):
    """The API key is valid but may not do this (scope, knowledge base, adapter or origin)."""

    status_code = 403
    type = "permission_error"


class RateLimited(LoragError):
    status_code = 429
    type = "rate_limit_error"
    retryable = True

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, code="rate_limit_exceeded")
        self.retry_after = retry_after


class PayloadTooLarge(InvalidInput):
    status_code = 413


class BackendUnavailable(LoragError):
    """A backing service (database, vector store, model server) is down; the caller may retry."""

    status_code = 503
    type = "service_unavailable"
    retryable = True

    def __init__(self, message: str, *, retry_after: int = 5, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class StorageFull(BackendUnavailable):
    """A write failed, or was refused, because the disk is full; nothing half-written remains."""

    status_code = 507

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after=60, code="disk_full")


class GateRejected(LoragError):
    status_code = 409
    type = "gate_rejected"


class ConfigError(LoragError):
    """Settings are invalid; the message lists every problem at once."""

    status_code = 500
    type = "config_error"


def shown(value: object, limit: int = 64) -> str:
    """A value as an error message may quote it: repr'd, and cut to a short prefix, so a caller's 30,000-character
    string is never echoed back whole.

    >>> shown("x" * 100, limit=8)
    "'xxxxxxxx…' (100 characters)"
    """
    text = str(value)
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}"[:-1] + f"…' ({len(text)} characters)"
