"""Which replicas are alive: each keeps its row in ``replicas`` fresh (a heartbeat
every quarter lease), and every replica, at each beat, looks for rows gone silent for
a whole lease. One survivor wins the row's deletion and marks that replica's queued
and running requests interrupted (its downloads are taken over by their leases,
downloads/). Clocks: heartbeats and the cutoff are the database server's time
(``now()``), so replicas' own clocks do not decide who is dead."""

from __future__ import annotations

from sqlalchemy import delete, func, insert, select, update

from pluggably.cluster.identity import ReplicaIdentity
from pluggably.cluster.models import Replica
from pluggably.db import Database
from pluggably.generation.records import RequestRecords
from pluggably.observability.logging import get_logger

log = get_logger("pluggably.cluster")


class Replicas:
    def __init__(
        self, db: Database, me: ReplicaIdentity, records: RequestRecords, *, local_models: bool
    ) -> None:
        self.db, self.me, self.records, self.local_models = db, me, records, local_models

    async def join(self) -> None:
        async with self.db.session() as session:
            await session.execute(insert(Replica).values(self._row()))
        log.info("replica_joined", replica=self.me.replica_id, lease_s=self.me.lease_s)

    async def leave(self) -> None:
        """A clean stop: nothing of ours is left running for a survivor to mark."""
        async with self.db.session() as session:
            await session.execute(delete(Replica).where(Replica.id == self.me.replica_id))

    async def beat(self) -> None:
        """Say this replica is alive, then look for those that are not."""
        async with self.db.session() as session:
            result = await session.execute(
                update(Replica)
                .where(Replica.id == self.me.replica_id)
                .values(heartbeat_at=func.now())
            )
            if not getattr(result, "rowcount", 1):
                # Declared dead (a pause longer than the lease): our requests were
                # marked interrupted; the ones still running will overwrite that.
                log.warning("replica_rejoined", replica=self.me.replica_id)
                await session.execute(insert(Replica).values(self._row()))
        await self.sweep()

    async def sweep(self) -> list[str]:
        """Mark the requests of replicas silent for a lease interrupted; the ids of the
        replicas this one took care of."""
        # The database's clock: one clock for every replica's heartbeat and cutoff.
        cutoff = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, self.me.lease_s)
        async with self.db.session() as session:
            dead = (
                (await session.execute(select(Replica.id).where(Replica.heartbeat_at < cutoff)))
                .scalars()
                .all()
            )
        handled = []
        for replica_id in dead:
            async with self.db.session() as session:
                # Only one survivor deletes the row: it alone marks the requests.
                won = await session.execute(
                    delete(Replica)
                    .where(Replica.id == replica_id, Replica.heartbeat_at < cutoff)
                    .returning(Replica.id)
                )
                if won.first() is None:
                    continue
                count = await self.records.interrupt(session, replica_id)
            handled.append(replica_id)
            log.warning("replica_dead", replica=replica_id, requests_interrupted=count)
        return handled

    def _row(self) -> dict[str, object]:
        me, now = self.me, func.now()
        return {
            "id": me.replica_id,
            "host": me.host[:255],
            "pid": me.pid,
            "local_models": self.local_models,
            "started_at": now,
            "heartbeat_at": now,
        }
