"""hardening: sticky auth state, generations whose audio could not be stored

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_state",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("audio_error", sa.Text(), nullable=True))
    # a server that ever had a key had auth on: keep it on (revoking the last key must
    # not open the server); `orate keys open --yes` turns it off explicitly
    op.execute(
        "INSERT INTO server_state (key, value) SELECT 'auth', 'on' "
        "WHERE EXISTS (SELECT 1 FROM api_keys)"
    )


def downgrade() -> None:
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.drop_column("audio_error")
    op.drop_table("server_state")
