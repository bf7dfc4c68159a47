"""`lorag keys create|list|revoke`: API keys with their scopes, knowledge bases, adapters and origins."""

from __future__ import annotations

from typing import Annotated

import typer

from lorag.app.cli.base import cli_settings, edge

app = typer.Typer(no_args_is_help=True, help="API keys: scopes, knowledge bases, adapters, origins.")


@app.command("create")
@edge
def keys_create(
    name: Annotated[str, typer.Option(help="Who or what uses the key, e.g. 'support widget'.")],
    scope: Annotated[list[str], typer.Option(help="chat:public, chat:internal, ingest, tag or admin (repeatable).")],
    kb: Annotated[list[str] | None, typer.Option(help="Only these knowledge bases (repeatable); any if omitted.")]
    = None,
    adapter: Annotated[list[str] | None, typer.Option(help="Only these tasks or adapter versions (repeatable).")]
    = None,
    origin: Annotated[list[str] | None, typer.Option(help="Web origins a browser may call from (repeatable).")]
    = None,
    rate: Annotated[int | None, typer.Option(help="Requests a minute; default LORAG_SERVER__RATE_PER_MINUTE.")]
    = None,
) -> None:
    """Create a key. It is printed once: store it now, lorag keeps only its hash."""
    from lorag.app import wiring
    from lorag.core import keys

    with wiring.open_registry(cli_settings()) as sessions:
        key, info = keys.create(sessions, name=name, scopes=scope, kbs=kb, adapters=adapter, origins=origin or (),
                                rate_per_minute=rate)
    typer.echo(key)
    typer.echo(f"key {info.id} ({info.name}): scopes {', '.join(info.scopes)}", err=True)


@app.command("list")
@edge
def keys_list() -> None:
    """Every key: id, name, scopes, limits, and whether it is revoked (never the key itself)."""
    from lorag.app import wiring
    from lorag.core import keys

    with wiring.open_registry(cli_settings()) as sessions:
        for info in keys.listing(sessions):
            state = f"revoked {info.revoked_at:%Y-%m-%d}" if info.revoked_at else "live"
            typer.echo(f"{info.id}  {state:18} {info.name!r} scopes={','.join(info.scopes)} "
                       f"kbs={','.join(info.kbs or ('*',))} adapters={','.join(info.adapters or ('*',))} "
                       f"origins={','.join(info.origins) or '-'} rate={info.rate_per_minute or 'default'}")


@app.command("revoke")
@edge
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (the part after lorag_).")]) -> None:
    """Revoke a key at once; requests with it get 401 from then on."""
    from lorag.app import wiring
    from lorag.core import keys

    with wiring.open_registry(cli_settings()) as sessions:
        info = keys.revoke(sessions, key_id)
    typer.echo(f"key {info.id} ({info.name}) revoked")
