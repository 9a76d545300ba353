"""cache counters

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COUNTERS = ("hits", "misses", "shared")


def upgrade() -> None:
    table = op.create_table(
        "cache_counters",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    # the rows exist from the start, so every writer only ever adds (UPDATE value + n)
    op.bulk_insert(table, [{"name": name, "value": 0} for name in COUNTERS])


def downgrade() -> None:
    op.drop_table("cache_counters")
