"""Monitor states, incidents with their timelines, and latency baselines.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-20
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "monitor_states",
        sa.Column("monitor_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("since", _TIME, nullable=True),
        sa.Column("flapping", sa.Boolean(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        _fk("monitor_states", "monitor_id", "monitors"),
        sa.PrimaryKeyConstraint("monitor_id", name=op.f("pk_monitor_states")),
    )
    op.create_table(
        "incidents",
        sa.Column("id", _ID, nullable=False),
        sa.Column("monitor_id", sa.Integer(), nullable=False),
        sa.Column("opened_at", _TIME, nullable=False),
        sa.Column("closed_at", _TIME, nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("flapping", sa.Boolean(), nullable=False),
        sa.Column("verdict", sa.String(), nullable=False),
        sa.Column("cause", sa.String(), nullable=False),
        sa.Column("layer", sa.String(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("hint", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        _fk("incidents", "monitor_id", "monitors"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
        sa.UniqueConstraint(
            "monitor_id", "opened_at", name=op.f("uq_incidents_monitor_id_opened_at")
        ),
    )
    op.create_table(
        "incident_events",
        sa.Column("id", _ID, nullable=False),
        sa.Column("incident_id", _ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("time", _TIME, nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("event", sa.String(), nullable=True),
        sa.Column("verdict", sa.String(), nullable=False),
        sa.Column("cause", sa.String(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        _fk("incident_events", "incident_id", "incidents"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_events")),
        sa.UniqueConstraint("incident_id", "seq", name=op.f("uq_incident_events_incident_id_seq")),
    )
    op.create_table(
        "latency_baselines",
        sa.Column("monitor_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("origin", sa.String(), nullable=False),
        sa.Column("phase", sa.String(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        _fk("latency_baselines", "monitor_id", "monitors"),
        sa.PrimaryKeyConstraint(
            "monitor_id", "role", "origin", "phase", name=op.f("pk_latency_baselines")
        ),
    )


def _fk(table: str, column: str, referred: str) -> sa.ForeignKeyConstraint:
    name = op.f(f"fk_{table}_{column}_{referred}")
    return sa.ForeignKeyConstraint([column], [f"{referred}.id"], name=name)


def downgrade() -> None:
    for table in ("latency_baselines", "incident_events", "incidents", "monitor_states"):
        op.drop_table(table)
