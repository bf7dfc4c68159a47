"""Answer tokens: proof that an answer came from this server, for the audience and knowledge base it was asked for.

Feedback trains the nightly adapters, so `POST /v1/feedback` accepts a rating or comment only with the token of
the answer it rates: a caller cannot rate up a question and answer it made up and teach them to the model. The
token is an HMAC-SHA256 over (question, answer, model, kb, audience) with a server secret: `server.secret_key`
when set (every replica behind a load balancer needs the same), else a random key kept in LORAG_HOME.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from functools import lru_cache
from pathlib import Path

from app.keys import Principal
from core.errors import InvalidInput
from core.settings import Settings

SECRET_FILE = "answer-secret"


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


def sign(secret: bytes, *, question: str, answer: str, model: str | None, kb: str | None, audience: str) -> str:
    message = json.dumps([question, answer, model or "", kb or "", audience])  # ASCII: any text, even lone surrogates
    return hmac.new(secret, message.encode("ascii"), hashlib.sha256).hexdigest()


def check(secret: bytes, token: str, *, question: str, answer: str, model: str | None, kb: str | None,
          audience: str) -> None:
    expected = sign(secret, question=question, answer=answer, model=model, kb=kb, audience=audience)
    if not hmac.compare_digest(expected.encode("ascii"), token.encode("utf-8", "surrogatepass")):
        raise InvalidInput("answer_token does not match this question, answer, model and knowledge base: feedback "
                           "is taken only on answers this server gave, sent back as they were received",
                           param="answer_token")


def audience_of(principal: Principal) -> str:
    """The most restricted audience an answer to this caller may have drawn on: an internal caller's answer may
    quote internal documents, so its feedback must never train a model that answers the public."""
    return "internal" if "internal" in principal.audiences else "public"
