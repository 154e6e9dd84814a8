"""Where results are kept: the Store protocol, its SQL implementation, a batching writer."""

from __future__ import annotations

from monitor.store.protocol import Store
from monitor.store.sql import SqlStore
from monitor.store.writer import BatchWriter

__all__ = ["BatchWriter", "SqlStore", "Store"]
