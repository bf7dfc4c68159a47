"""Infrastructure faults as lorag errors: a database that is restarting, a disk that is full.

Drivers raise their own exceptions (SQLAlchemy's `OperationalError`, `OSError` with ENOSPC, the embedded
vector store's bare `Exception`); the edges (HTTP handler, CLI, ingestion worker) pass them through
`as_lorag_error` so a caller gets a clear, retryable error instead of a traceback or a bare 500.
"""

from __future__ import annotations

import errno

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from lorag.core.errors import BackendUnavailable, LoragError, StorageFull

DISK_FULL_MARKERS = ("no space left on device", "database or disk is full", "disk full", "could not extend file",
                     "could not write to file", "os error 28")
# A lost or refused connection, a server shutting down (Postgres 57P01/57P03), a pool with no free connection,
# SQLite still locked after busy_timeout: the same request can succeed later.
UNREACHABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)


def disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    return any(marker in str(exc).lower() for marker in DISK_FULL_MARKERS)


def as_lorag_error(exc: BaseException, what: str = "") -> LoragError | None:
    """The lorag error for a known infrastructure fault; None for anything else (a bug: let it surface)."""
    if isinstance(exc, LoragError):
        return exc
    where = f" while {what}" if what else ""
    if disk_full(exc):
        return StorageFull(f"The server's disk is full{where}: nothing was written. Free disk space (or move "
                           "LORAG_HOME) and retry.")
    if "disk i/o error" in str(exc).lower():  # SQLite, when it cannot even create its -wal/-shm files
        return StorageFull(f"A disk write failed{where} (SQLite: disk I/O error; a full disk is the usual cause): "
                           "nothing was written. Check free space under LORAG_HOME and retry.")
    if isinstance(exc, UNREACHABLE) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        detail = _first_line(getattr(exc, "orig", None) or exc)
        return BackendUnavailable(f"The database is unreachable or restarting{where}: {detail}. Nothing was "
                                  "changed; retry shortly.", code="database_unavailable")
    return None


def _first_line(exc: BaseException | None) -> str:
    text = str(exc or "").strip().splitlines()
    return text[0][:300] if text else "no detail"
