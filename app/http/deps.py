"""The dependencies of the HTTP routes, each under one name (as in the FastAPI full-stack template's `deps.py`).

A route says what it needs by type alone (`resources: ResourcesDep, caller: ChatCaller`); the scope a caller
must hold is in the alias's name, so a reader sees who may call an endpoint from its signature.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from lorag.app.http.auth import CHAT, requires
from lorag.app.resources import Resources, get_resources
from lorag.core.keys import Principal

ResourcesDep = Annotated[Resources, Depends(get_resources)]
ChatCaller = Annotated[Principal, Depends(requires(*CHAT))]  # public or internal chat
ModelsCaller = Annotated[Principal, Depends(requires(*CHAT, "tag"))]  # anyone who may name a model
IngestCaller = Annotated[Principal, Depends(requires("ingest"))]
TagCaller = Annotated[Principal, Depends(requires("tag"))]
