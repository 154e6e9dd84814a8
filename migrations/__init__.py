"""Alembic migrations: the only way the schema changes. Shipped as ``monitor.migrations``."""
