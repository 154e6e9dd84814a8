"""Which worker checks which monitor: rendezvous hashing of monitor names (pure).

``monitor run --workers N`` starts N processes; worker ``i`` (``--shard i/N``) fires only
the monitors it owns. Each monitor goes to the member whose hash of (member, monitor name)
is highest, so the sharing is the same on every start and host, even over N, and changing
N moves only the monitors that must move (about 1/N of them), never the rest. The
multi-node mode will share monitors between nodes the same way, with node names as
members.

Worker 0 also sends the alerts of every worker (they all write to the one outbox) and
checks the canary, whose state decides whether pages are held.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

from monitor.config.load import Config


def owner(name: str, members: Sequence[str]) -> str:
    """The member that owns ``name``: the highest hash of (member, name) wins."""
    return max(members, key=lambda member: _score(member, name))


def _score(member: str, name: str) -> bytes:
    return hashlib.blake2b(f"{member}\0{name}".encode(), digest_size=8).digest()


@dataclass(frozen=True, slots=True)
class Shard:
    """Worker ``index`` of ``count`` (0-based)."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"i/N"`` with 0 <= i < N, e.g. ``"0/2"``; ValueError otherwise."""
        index, slash, count = text.partition("/")
        wrong = ValueError(f"{text!r}: expected I/N with 0 <= I < N, e.g. 0/2")
        if not (slash and index.isdigit() and count.isdigit()):
            raise wrong
        shard = cls(int(index), int(count))
        if shard.count < 1 or shard.index >= shard.count:
            raise wrong
        return shard

    @property
    def whole(self) -> bool:
        return self.count == 1

    @property
    def delivers(self) -> bool:
        """Whether this worker reads the outbox and sends the alerts."""
        return self.index == 0

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, name: str, pinned: frozenset[str] = frozenset()) -> bool:
        if self.whole:
            return True
        if name in pinned:
            return self.delivers
        members = [str(i) for i in range(self.count)]
        return owner(name, members) == str(self.index)


def narrow(config: Config, shard: Shard) -> Config:
    """``config`` as worker ``shard`` runs it: only the sites and checks it owns (the
    canary always on worker 0), listening on the configured port plus its index."""
    if shard.whole:
        return config
    canary = config.alerts.canary
    pinned = frozenset() if canary is None else frozenset({canary})
    server = config.server
    return replace(
        config,
        sites=tuple(s for s in config.sites if shard.owns(s.name, pinned)),
        checks=tuple(c for c in config.checks if shard.owns(c.name, pinned)),
        server=replace(server, port=server.port + shard.index),
    )
