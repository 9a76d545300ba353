"""Alembic environment: runs on the connection orate hands over (library/db.py)."""

from alembic import context

from orate.library.tables import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
