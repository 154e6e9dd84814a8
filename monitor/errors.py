"""The one error tree of the daemon.

    MonitorError
    ├── ConfigError      a bad config: carries file, line and field
    ├── StoreError       the database refused or could not be reached
    └── NotifyError      an alert channel failed; ``permanent`` decides retries

A target's failure is never an exception: probes return it as a value.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Root of every error the daemon raises on purpose."""


class ConfigError(MonitorError):
    """A config that cannot be used, located as ``file:line: field: message``."""

    def __init__(self, message: str, *, file: str, line: int | None, field: str = "") -> None:
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class StoreError(MonitorError):
    """The store could not write or read; ``permanent`` when retrying the same rows cannot help
    (the database rejects the data itself), else the database is away and a retry may work."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        self.permanent = permanent
        super().__init__(message)


class NotifyError(MonitorError):
    """An alert could not be delivered; permanent errors are not retried."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        self.permanent = permanent
        super().__init__(message)
