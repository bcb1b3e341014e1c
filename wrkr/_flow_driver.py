"""`FlowDriver`: every change to a flow, carried out by the core inside a store's
`FlowTransaction`: start, an item settled, cancel.

After each change the driver moves the flow as far as it goes at once: while the step
under way has no open item it starts the next (a job reaching no queue is done at once,
with result None), a flow that ended has its pending items removed, and a flow ending
now publishes `<name>.completed` or `<name>.failed` in the same transaction.
"""

from __future__ import annotations

import logging
from typing import Any, Generic, TypeVar

import orjson

from wrkr._errors import ItemNotFound
from wrkr._flow_record import CANCELLED, COMPLETED, RUNNING, FlowRecord
from wrkr._flow_store import FlowTransaction
from wrkr._store import Settle, Settlement, Store

__all__ = ["FlowDriver"]

logger = logging.getLogger("wrkr")
R = TypeVar("R")


class FlowDriver(Generic[R]):
    """Changes flows in `store`, one transaction each.

    Args:
        store: where the flows and their items live (FLOWS).
    """

    def __init__(self, store: Store[R]) -> None:
        self.store = store

    async def create(self, record: FlowRecord) -> None:
        """Store a new flow and start its first step, in one transaction."""
        encoded = record.encode()  # each try starts from the record as given

        async def work(tx: FlowTransaction[R]) -> None:
            await self._move_on(tx, FlowRecord.decode(encoded), was_running=True)

        await self.store.flow_transaction(record.id, work)

    async def read(self, flow_id: str) -> FlowRecord:
        """Return the stored record.

        Raises:
            ItemNotFound: no flow has that id.
        """
        document = await self.store.flow_document(flow_id)
        if document is None:
            raise ItemNotFound(f"no flow has id {flow_id!r}")
        return FlowRecord.decode(document)

    async def cancel(self, flow_id: str) -> FlowRecord:
        """Cancel a running flow (pending items removed); return the record as it ends.

        Raises:
            ItemNotFound: no flow has that id.
        """

        async def work(tx: FlowTransaction[R]) -> FlowRecord:
            if tx.document is None:
                raise ItemNotFound(f"no flow has id {flow_id!r}")
            record = FlowRecord.decode(tx.document)
            if record.state == RUNNING:
                record.end(CANCELLED, self.store.clock.now())
                await self._move_on(tx, record, was_running=True)
            return record

        return await self.store.flow_transaction(flow_id, work)

    async def settle(self, settlement: Settlement[R]) -> bool:
        """Ack, fail or nack one of a flow's items and move the flow on; tell if it held.

        A nack of an item whose flow has ended removes the item instead: the job ran
        when the flow failed or was cancelled, and it is not tried again.
        """
        flow_id = settlement.delivery.item.flow
        assert flow_id is not None

        async def work(tx: FlowTransaction[R]) -> bool:
            if not await tx.settle(settlement):
                return False
            if tx.document is not None:  # else the flow was removed: the item settles alone
                await self._settled(tx, FlowRecord.decode(tx.document), settlement)
            return True

        return await self.store.flow_transaction(flow_id, work)

    async def _settled(self, tx: FlowTransaction[R], record: FlowRecord,
                       settlement: Settlement[R]) -> None:
        item, now = settlement.delivery.item, self.store.clock.now()
        was_running = record.state == RUNNING
        errors = [*item.errors, *filter(None, [settlement.error])]
        if settlement.how is Settle.NACK:
            if not was_running:
                record.settle(item.id, queue=item.queue, done=False, attempts=item.attempts,
                              errors=errors, result=None, now=now)
                await tx.cancel([item.id])
                record.cancel_item(item.id)
                await tx.save(record.encode(), state=record.state)
            return
        result = None if settlement.result is None else orjson.loads(settlement.result)
        record.settle(item.id, queue=item.queue, done=settlement.how is Settle.ACK,
                      attempts=item.attempts, errors=errors, result=result, now=now)
        await self._move_on(tx, record, was_running=was_running)

    async def _move_on(self, tx: FlowTransaction[Any], record: FlowRecord, *,
                       was_running: bool) -> None:
        now = self.store.clock.now()
        while record.state == RUNNING and record.step_over():
            record.step += 1
            if record.step == len(record.steps):
                record.end(COMPLETED, now)
                break
            for job in record.steps[record.step]:
                job.place(await tx.put([job.message(now)], tagged=True))
                if not job.items:
                    logger.warning("flow %s (%s): job %r of step %d reached no queue; it "
                                   "completes at once with result None", record.id,
                                   record.name, job.name, record.step)
        if record.state != RUNNING:
            pending = record.open_items()
            if pending:
                record.cancelled(await tx.cancel(pending))
            if was_running:
                await tx.put([record.ended_message(now)], tagged=False)
        await tx.save(record.encode(), state=record.state)

