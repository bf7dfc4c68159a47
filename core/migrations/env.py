"""Alembic environment: runs against the engine lorag passes in `config.attributes["engine"]`."""

from alembic import context

from lorag.core.tables import Base

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
