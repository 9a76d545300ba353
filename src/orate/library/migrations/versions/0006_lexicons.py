"""pronunciation dictionaries (lexicons), one row per version

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lexicon_versions",
        sa.Column("version_id", sa.String(length=64), nullable=False),
        sa.Column("dictionary_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version_id"),
    )
    op.create_index(
        "ix_lexicon_versions_dictionary", "lexicon_versions", ["dictionary_id", "version"]
    )
    op.create_index("ix_lexicon_versions_owner", "lexicon_versions", ["owner"])


def downgrade() -> None:
    op.drop_index("ix_lexicon_versions_owner", table_name="lexicon_versions")
    op.drop_index("ix_lexicon_versions_dictionary", table_name="lexicon_versions")
    op.drop_table("lexicon_versions")
