"""Answer tokens: proof that an answer came from this server, for the audience and knowledge base it was asked for.

Feedback trains the nightly adapters, so `POST /v1/feedback` accepts a rating or comment only with the token of
the answer it rates: a caller cannot rate up a question and answer it made up and teach them to the model. The
token is an HMAC-SHA256 over (question, answer, model, kb, audience, caller, expiry) with a server secret:
`server.secret_key` when set (every replica behind a load balancer needs the same), else a random key kept in
LORAG_HOME. The caller is the API key (or the anonymous caller), so another key cannot replay a token; the
expiry is `server.answer_token_ttl_s`; one token gives one feedback row, whose last rating wins.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
import uuid
from functools import lru_cache
from pathlib import Path

from lorag.core.audience import Audience
from lorag.core.errors import InvalidInput
from lorag.core.keys import Principal
from lorag.core.settings import Settings

SECRET_FILE = "answer-secret"
ANONYMOUS_CALLER = "anonymous"
DEFAULT_TTL_S = 7 * 24 * 3600
FEEDBACK_NAMESPACE = uuid.UUID("6f1d7c2e-0d7e-4a51-9a43-3c1f3b0f5a77")  # one feedback row per answer token


def secret_of(settings: Settings) -> bytes:
    configured = settings.server.secret_key
    if configured is not None:
        return configured.get_secret_value().encode("utf-8")
    return _home_secret(settings.home.resolve())


@lru_cache(maxsize=8)
def _home_secret(home: Path) -> bytes:
    path = home / SECRET_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        partial = home / f"{SECRET_FILE}.{os.getpid()}.partial"
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_hex(32))
        try:
            os.link(partial, path)  # the first process to get here wins; the others read its key
        except FileExistsError:
            pass
        finally:
            partial.unlink()
    return path.read_text().strip().encode("utf-8")


def sign(secret: bytes, *, question: str, answer: str, model: str | None, kb: str | None, audience: str,
         caller: str = ANONYMOUS_CALLER, expires: int | None = None) -> str:
    """`<expiry, unix seconds>.<hex HMAC>`; the expiry is inside the HMAC, so it cannot be moved."""
    expires = int(time.time()) + DEFAULT_TTL_S if expires is None else expires
    return f"{expires}.{_mac(secret, [question, answer, model or '', kb or '', audience, caller, expires])}"


def _mac(secret: bytes, fields: list[object]) -> str:
    message = json.dumps(fields)  # ASCII: any text, even lone surrogates
    return hmac.new(secret, message.encode("ascii"), hashlib.sha256).hexdigest()


def check(secret: bytes, token: str, *, question: str, answer: str, model: str | None, kb: str | None,
          audience: str, caller: str = ANONYMOUS_CALLER) -> str:
    """The answer's id (stable for one answer token) if `token` is this server's, for this caller, unexpired."""
    stamp, _, mac = token.partition(".")
    expires = int(stamp) if stamp.isascii() and stamp.isdigit() and len(stamp) <= 12 else -1
    expected = _mac(secret, [question, answer, model or "", kb or "", audience, caller, expires])
    if expires < 0 or not hmac.compare_digest(expected.encode("ascii"), mac.encode("utf-8", "surrogatepass")):
        raise InvalidInput("answer_token does not match this question, answer, model, knowledge base and API key: "
                           "feedback is taken only on answers this server gave this caller, sent back as they "
                           "were received", param="answer_token")
    if expires < time.time():
        raise InvalidInput("answer_token has expired: feedback is taken only for a while after an answer "
                           "(LORAG_SERVER__ANSWER_TOKEN_TTL_S)", param="answer_token")
    return str(uuid.uuid5(FEEDBACK_NAMESPACE, mac))


def caller_of(principal: Principal) -> str:
    """Who a token is bound to: the key, or the one anonymous caller of a keyless server."""
    return principal.key_id or ANONYMOUS_CALLER


def audience_of(principal: Principal) -> str:
    """The most restricted audience an answer to this caller may have drawn on: an internal caller's answer may
    quote internal documents, so its feedback must never train a model that answers the public."""
    return max(principal.audiences, key=list(Audience).index)
