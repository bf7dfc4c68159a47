"""API keys: created, listed, revoked, and turned into the `Principal` a request acts as.

A key reads `lorag_<id>_<secret>`. The id is public (lists, logs); only the SHA-256 of the secret is stored and
it is compared in constant time. What a key may do is fixed when it is created:

- scopes: `chat:public` (answers from public documents), `chat:internal` (public and internal documents),
  `ingest`, `tag`, `admin` (everything, including other audiences' documents and jobs);
- the knowledge bases and adapters it may use (any when not restricted);
- the web origins its browser widget may call from (CORS), and its rate limit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lorag.core.audience import Audience
from lorag.core.db import transaction
from lorag.core.errors import Forbidden, InvalidInput, NotFound, Unauthorized, shown
from lorag.core.tables import ApiKey

SCOPES = ("chat:public", "chat:internal", "ingest", "tag", "admin")
KEY = re.compile(r"^lorag_([a-z0-9]{12})_([A-Za-z0-9_-]{20,})$")
ORIGIN = re.compile(r"^https?://[^/\s]+$")


@dataclass(frozen=True)
class Principal:
    """Who a request acts as. `key_id` None: anonymous access, allowed only while keys are not required."""

    key_id: str | None
    name: str
    scopes: frozenset[str]
    kbs: frozenset[str] | None = None
    adapters: frozenset[str] | None = None
    origins: tuple[str, ...] = ()
    rate_per_minute: int | None = None

    def has(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    @property
    def audiences(self) -> tuple[str, ...]:
        """The audiences whose documents this caller may read: from the key, never from the request."""
        return (Audience.INTERNAL if self.has("chat:internal") else Audience.PUBLIC).visible

    def check_kb(self, kb: str | None) -> None:
        if self.kbs is None:
            return
        if kb is None:
            raise Forbidden(f"this API key may only use the knowledge bases {', '.join(sorted(self.kbs))}; "
                            "name one in `kb`", param="kb")
        if kb not in self.kbs:
            raise Forbidden(f"this API key may not use the knowledge base {shown(kb)}", param="kb")

    def check_model(self, model: str | None, base: str | None = None) -> None:
        """An adapter is allowed by its task name or its exact version; the base model (`base`) always is."""
        if self.adapters is None or model is None or model == base:
            return
        if model not in self.adapters and model.split("@", 1)[0] not in self.adapters:
            raise Forbidden(f"this API key may not use the model {shown(model)}", param="model")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create(sessions: sessionmaker[Session], *, name: str, scopes: Sequence[str], kbs: Sequence[str] | None = None,
           adapters: Sequence[str] | None = None, origins: Sequence[str] = (),
           rate_per_minute: int | None = None) -> tuple[str, ApiKeyInfo]:
    """A new key; the full key is returned once and never stored."""
    check_grant(name, scopes, origins, rate_per_minute)
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    row = ApiKey(id=key_id, name=name, secret_hash=hash_secret(secret), scopes=json.dumps(sorted(set(scopes))),
                 kbs=json.dumps(sorted(set(kbs))) if kbs else None,
                 adapters=json.dumps(sorted(set(adapters))) if adapters else None,
                 origins=json.dumps(list(dict.fromkeys(origins))), rate_per_minute=rate_per_minute)
    with transaction(sessions) as session:
        session.add(row)
        session.flush()
        info = ApiKeyInfo.of(row)
    return f"lorag_{key_id}_{secret}", info


def check_grant(name: str, scopes: Sequence[str], origins: Sequence[str], rate_per_minute: int | None) -> None:
    problems = []
    if not name.strip():
        problems.append("a key needs a name (who or what uses it)")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        problems.append(f"scopes must be some of {', '.join(SCOPES)}" + (f"; unknown: {unknown}" if unknown else ""))
    bad = [origin for origin in origins if not ORIGIN.match(origin)]
    if bad:
        problems.append(f"origins must look like https://shop.example.com (scheme and host only): {bad}")
    if rate_per_minute is not None and rate_per_minute < 1:
        problems.append("rate_per_minute must be at least 1")
    if problems:
        raise InvalidInput("; ".join(problems))


@dataclass(frozen=True)
class ApiKeyInfo:
    id: str
    name: str
    scopes: tuple[str, ...]
    kbs: tuple[str, ...] | None
    adapters: tuple[str, ...] | None
    origins: tuple[str, ...]
    rate_per_minute: int | None
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ApiKey) -> ApiKeyInfo:
        def listed(text: str | None) -> tuple[str, ...] | None:
            return tuple(json.loads(text)) if text else None

        return cls(row.id, row.name, tuple(json.loads(row.scopes)), listed(row.kbs), listed(row.adapters),
                   tuple(json.loads(row.origins or "[]")), row.rate_per_minute, row.created_at, row.revoked_at)

    def principal(self) -> Principal:
        return Principal(self.id, self.name, frozenset(self.scopes), frozenset(self.kbs) if self.kbs else None,
                         frozenset(self.adapters) if self.adapters else None, self.origins, self.rate_per_minute)


def listing(sessions: sessionmaker[Session]) -> list[ApiKeyInfo]:
    with sessions() as session:
        return [ApiKeyInfo.of(row) for row in session.scalars(select(ApiKey).order_by(ApiKey.created_at))]


def revoke(sessions: sessionmaker[Session], key_id: str) -> ApiKeyInfo:
    with transaction(sessions) as session:
        row = session.get(ApiKey, key_id)
        if row is None:
            raise NotFound(f"no API key with id {shown(key_id)}; `lorag keys list` shows them", param="id")
        row.revoked_at = row.revoked_at or datetime.now(UTC)
        session.flush()
        return ApiKeyInfo.of(row)


def authenticate(sessions: sessionmaker[Session], presented: str) -> Principal:
    """The principal of a presented key; Unauthorized for anything but a live key."""
    match = KEY.match(presented.strip())
    if match is None:
        raise Unauthorized("the API key is malformed: expected lorag_<id>_<secret> in 'Authorization: Bearer ...'")
    key_id, secret = match.groups()
    with sessions() as session:
        row = session.get(ApiKey, key_id)
        info = ApiKeyInfo.of(row) if row is not None else None
        stored = row.secret_hash if row is not None else hash_secret("")
    # Compared even for an unknown id, so timing does not tell which ids exist.
    if not hmac.compare_digest(stored, hash_secret(secret)) or info is None:
        raise Unauthorized("the API key is not valid")
    if info.revoked_at is not None:
        raise Unauthorized(f"the API key {key_id} was revoked")
    return info.principal()


def allowed_origins(sessions: sessionmaker[Session]) -> set[str]:
    """Every origin some live key allows: a CORS preflight carries no key, so it is answered for these."""
    with sessions() as session:
        rows = session.scalars(select(ApiKey.origins).where(ApiKey.revoked_at.is_(None)))
        return {origin for text in rows for origin in json.loads(text or "[]")}
