"""The SQL schema as SQLAlchemy Core tables: what migrations are compared against."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
)

from monitor.models import PHASES

EVIDENCE_BODY = 4096  # bytes of a failing probe's body kept in the store

# Named constraints keep migrations stable: unnamed ones get names each backend invents.
metadata = MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp, stored in UTC and always read back as UTC-aware.

    SQLite has no timezone type: SQLAlchemy drops the offset when writing and returns
    naive values, so values are converted to UTC before they are written.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()}: the store needs UTC-aware times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


monitors = Table(
    "monitors",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String, nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False, server_default=func.current_timestamp()),
)

check_results = Table(
    "check_results",
    metadata,
    # SQLite only auto-increments an INTEGER PRIMARY KEY, which is 64-bit there anyway.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("monitor_id", Integer, ForeignKey(monitors.c.id), nullable=False),
    Column("time", UtcDateTime, nullable=False),
    Column("role", String, nullable=False),
    Column("origin", String, nullable=True),
    Column("ok", Boolean, nullable=False),
    Column("cause", String, nullable=False),
    Column("detail", Text, nullable=False),
    Column("status", SmallInteger, nullable=True),
    # One column per phase, in seconds, named after models.PHASES; NULL = never reached.
    *(Column(f"{phase}_s", Float, nullable=True) for phase in PHASES),
    Column("total_s", Float, nullable=False),
    Column("peer_ip", String, nullable=True),
    # Added by migration 0002: what kind of probe, what it looked at, and TLS facts.
    Column("kind", String, nullable=False, server_default="http"),
    Column("target", Text, nullable=False, server_default=""),
    Column("peer_port", Integer, nullable=True),
    Column("tls_version", String, nullable=True),
    Column("cert_not_after", UtcDateTime, nullable=True),
    # Added by migration 0003: the evidence of a failing probe, kept so an incident can be
    # explained later; NULL for probes that passed, which keeps the table small.
    Column("signature", String, nullable=True),
    Column("headers", Text, nullable=True),  # JSON list of [name, value]
    Column("body", LargeBinary, nullable=True),  # the first EVIDENCE_BODY bytes
    # All results of one round share (monitor_id, time): the index finds a round at once.
    Index(None, "monitor_id", "time"),
)

# Added by migration 0004: each monitor's state, its incidents with their timelines, and
# the latency baselines, so a restart neither re-opens an incident nor forgets a baseline.
monitor_states = Table(
    "monitor_states",
    metadata,
    Column("monitor_id", Integer, ForeignKey(monitors.c.id), primary_key=True),
    Column("state", String, nullable=False),
    Column("since", UtcDateTime, nullable=True),
    Column("flapping", Boolean, nullable=False),
    Column("data", Text, nullable=False),  # JSON: monitor.judge.state.MonitorState.to_json()
    Column("updated_at", UtcDateTime, nullable=False),
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("monitor_id", Integer, ForeignKey(monitors.c.id), nullable=False),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("closed_at", UtcDateTime, nullable=True),
    Column("duration_s", Float, nullable=True),
    Column("state", String, nullable=False),  # down or degraded: what opened it
    Column("flapping", Boolean, nullable=False),
    Column("verdict", String, nullable=False),
    Column("cause", String, nullable=False),
    Column("layer", String, nullable=False),
    Column("summary", Text, nullable=False),
    Column("hint", Text, nullable=False),
    Column("evidence", Text, nullable=False),  # JSON list of lines
    # A monitor opens at most one incident at a time: a retried write cannot open two.
    UniqueConstraint("monitor_id", "opened_at"),
)

incident_events = Table(
    "incident_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column(
        "incident_id",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey(incidents.c.id),
        nullable=False,
    ),
    Column("seq", Integer, nullable=False),  # 1, 2, ... within the incident
    Column("time", UtcDateTime, nullable=False),
    Column("kind", String, nullable=False),  # opened, changed, flapping, calm, closed
    Column("state", String, nullable=False),
    Column("event", String, nullable=True),  # the alert it stands for: down, recovered, ...
    Column("verdict", String, nullable=False),
    Column("cause", String, nullable=False),
    Column("summary", Text, nullable=False),
    UniqueConstraint("incident_id", "seq"),
)

latency_baselines = Table(
    "latency_baselines",
    metadata,
    Column("monitor_id", Integer, ForeignKey(monitors.c.id), primary_key=True),
    Column("role", String, primary_key=True),
    Column("origin", String, primary_key=True),  # "" for the edge
    Column("phase", String, primary_key=True),
    Column("data", Text, nullable=False),  # JSON: monitor.judge.trends.TrendState.to_json()
    Column("updated_at", UtcDateTime, nullable=False),
)

# Added by migration 0005: the outbox. An alert is a row here, written in the transaction
# that stores the incident entry it is about; the delivery worker sends pending rows and
# settles each one (sent, failed, held, resolved), so a crash neither loses nor repeats it.
alert_outbox = Table(
    "alert_outbox",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column(
        "incident_id",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey(incidents.c.id),
        nullable=False,
    ),
    Column("notifier", String, nullable=False),
    Column("event", String, nullable=False),  # down, degraded, recovered, flapping, reminder
    Column("seq", Integer, nullable=False),  # the entry's seq; 1, 2, ... for reminders
    Column("due_at", UtcDateTime, nullable=False),  # later than created_at when escalated
    Column("created_at", UtcDateTime, nullable=False),
    Column("status", String, nullable=False),  # pending, sent, failed, held, resolved
    Column("attempts", Integer, nullable=False),
    Column("next_try_at", UtcDateTime, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("sent_at", UtcDateTime, nullable=True),
    Column("facts", Text, nullable=False),  # JSON: monitor.judge.facts.to_json()
    # The key of an alert: a retried write, or two nodes, cannot queue it twice.
    UniqueConstraint("incident_id", "event", "notifier", "seq"),
    Index(None, "status", "next_try_at"),
)
