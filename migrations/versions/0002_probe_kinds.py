"""Results of every probe kind: kind, target, peer port and TLS facts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-20
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("check_results") as batch:
        batch.add_column(sa.Column("kind", sa.String(), server_default="http", nullable=False))
        batch.add_column(sa.Column("target", sa.Text(), server_default="", nullable=False))
        batch.add_column(sa.Column("peer_port", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("tls_version", sa.String(), nullable=True))
        batch.add_column(sa.Column("cert_not_after", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("check_results") as batch:
        for column in ("cert_not_after", "tls_version", "peer_port", "target", "kind"):
            batch.drop_column(column)
