"""The alert outbox: one row per alert and notifier, settled by the delivery worker.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_outbox",
        sa.Column("id", _ID, nullable=False),
        sa.Column("incident_id", _ID, nullable=False),
        sa.Column("notifier", sa.String(), nullable=False),
        sa.Column("event", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("due_at", _TIME, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_try_at", _TIME, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", _TIME, nullable=True),
        sa.Column("facts", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_alert_outbox_incident_id_incidents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_outbox")),
        sa.UniqueConstraint(
            "incident_id",
            "event",
            "notifier",
            "seq",
            name=op.f("uq_alert_outbox_incident_id_event_notifier_seq"),
        ),
    )
    op.create_index(
        op.f("ix_alert_outbox_status_next_try_at"), "alert_outbox", ["status", "next_try_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_alert_outbox_status_next_try_at"), table_name="alert_outbox")
    op.drop_table("alert_outbox")
