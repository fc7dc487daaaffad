"""This replica's part in a cluster on PostgreSQL: its row and heartbeat, the bus to
the other replicas, the request relay and the login throttle's shared facts over it.
Built only on PostgreSQL; on SQLite the process is alone and none of this runs."""

from __future__ import annotations

from pluggably.auth.throttle import LoginThrottle
from pluggably.cluster.bus import Bus
from pluggably.cluster.identity import ReplicaIdentity
from pluggably.cluster.relay import RequestRelay
from pluggably.cluster.replicas import Replicas
from pluggably.cluster.throttle_share import ThrottleShare
from pluggably.db import Database
from pluggably.generation.live import LiveRequests
from pluggably.generation.records import RequestRecords


class ClusterNode:
    def __init__(
        self,
        db: Database,
        database_url: str,
        me: ReplicaIdentity,
        records: RequestRecords,
        live: LiveRequests,
        throttle: LoginThrottle,
        *,
        local_models: bool,
    ) -> None:
        self.me = me
        self.bus = Bus(database_url, me.replica_id)
        self.replicas = Replicas(db, me, records, local_models=local_models)
        self.relay = RequestRelay(self.bus, live, me.replica_id, me.lease_s)
        self.throttle = ThrottleShare(self.bus, throttle)

    async def start(self) -> None:
        """Join before listening: a replica that can be named in a record answers."""
        await self.replicas.join()
        await self.bus.start()

    async def beat(self) -> None:
        await self.replicas.beat()

    async def close(self) -> None:
        await self.throttle.close()
        await self.relay.close()
        await self.bus.close()
        await self.replicas.leave()
