"""Who this replica is, as the domains that share work with other replicas see it."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from pluggably.ids import new_id


@dataclass(frozen=True)
class ReplicaIdentity:
    """This process as one replica. ``shared``: the database is PostgreSQL, so other
    replicas may be running beside it (leases and relays matter); on SQLite this
    process is the only one, and what it finds unfinished at startup is its own."""

    shared: bool
    lease_s: float = 10.0
    # Lower case: it names this replica's LISTEN channel too.
    replica_id: str = field(default_factory=lambda: new_id("rep"))
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)

    @property
    def heartbeat_s(self) -> float:
        """How often the replica says it is alive: several beats fit in one lease."""
        return self.lease_s / 4
