"""The worker: claims due nodes, runs their executors, reports answers; heartbeats and reaps.

Durability rests on the database alone: a claim is a lease with a fencing token; the heartbeat
extends the leases of the nodes this worker has a live task for, and no others; the reaper (every
worker runs one) returns the work of a worker whose leases expired, or (PostgreSQL) whose liveness
lock stayed released, to the retry policy; an answer for a lease that is no longer ours is refused.

Database outages are ridden out (docs/engine.md, "Database outages"): every loop retries transient
failures with a bounded, jittered backoff; a task that cannot record its answer retries while its
lease lasts and then releases the lease (an answer refused for another reason fails the node once
instead). Any other error ends ``run`` with that error: a worker that
cannot carry on stops, so that its supervisor restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

from releaseflow.domain.errors import StaleLeaseError, describe_error
from releaseflow.domain.template import NodeKind
from releaseflow.engine.advance import Lease
from releaseflow.engine.clock import Clock
from releaseflow.engine.deliverer import BATCH as DELIVERY_BATCH
from releaseflow.engine.deliverer import Deliverer
from releaseflow.engine.dispatch import BatchCache, Claim, begin, ready_record
from releaseflow.engine.executors import PLATFORM_KINDS
from releaseflow.engine.executors.base import ExecutionContext, Failed, NodeExecutor, Outcome
from releaseflow.engine.outcomes import (
    DEFAULT_WAIT_TIMEOUT_SECONDS,
    Aborted,
    Answer,
)
from releaseflow.engine.reaper import LockWatch, reap_dead_workers, reap_expired_leases
from releaseflow.engine.run_events import NodeAnswered, apply_event, settle
from releaseflow.engine.scope import ActionScope, action_scope
from releaseflow.engine.templates import TemplateCache
from releaseflow.engine.worker_settings import WorkerSettings as WorkerSettings  # re-exported
from releaseflow.platform.driver import DriverRegistry
from releaseflow.store import queue
from releaseflow.store.database import Database, Transaction
from releaseflow.store.liveness import LivenessLock
from releaseflow.store.outages import FailureStreak, pause, retry_transient
from releaseflow.store.records import FlowRecord, NodeRecord

log = logging.getLogger(__name__)

NO_PLATFORM = ActionScope(resources={}, deployed={}, stage_resources=frozenset())

# How long the platform may take to stop an action when its run is aborted.
CANCEL_TIMEOUT_SECONDS = 60.0
# An action with no timeout of its own may not hold a worker slot longer than this.
ACTION_TIMEOUT_SECONDS = 3600.0


class Worker:
    def __init__(
        self,
        db: Database,
        executors: Mapping[NodeKind, NodeExecutor],
        clock: Clock,
        settings: WorkerSettings | None = None,
        *,
        templates: TemplateCache | None = None,
        worker_id: str | None = None,
        drivers: DriverRegistry | None = None,
    ) -> None:
        self.db = db
        self.executors = executors
        self.clock = clock
        self.settings = settings or WorkerSettings()
        self.templates = templates or TemplateCache()
        self.id = worker_id or f"worker-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # Started and stopped with the worker (adopt what runs, resume supervision).
        self.drivers = drivers or DriverRegistry()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._aborting: set[str] = set()
        # Until when each live task's lease is known to hold (its claim, then each heartbeat).
        self._lease_until: dict[str, datetime] = {}
        self._flows: dict[str, FlowRecord] = {}  # what begin needs of a flow never changes
        self.deliverer = Deliverer(db, clock, hold_seconds=self.settings.delivery_hold_seconds)
        # PostgreSQL: held while this worker lives, so that others see at once when it dies.
        self._liveness = LivenessLock.for_database(db, self.id, self.settings.heartbeat_seconds)
        self._holding: asyncio.Task[None] | None = None
        self._lock_watch = LockWatch(timedelta(seconds=self.settings.liveness_grace_seconds))

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set. Rides out database outages; raises on anything else (a bug)."""
        await self.db.start_listening()
        await self.drivers.start_all()
        loops: list[asyncio.Task[None]] = []
        try:
            if self._liveness is not None:
                self._holding = asyncio.create_task(self._liveness.hold(), name="liveness lock")
                loops.append(self._holding)
            await self._register(stop)
            loops += [
                asyncio.create_task(self._claim_loop(stop), name="claim loop"),
                asyncio.create_task(self._heartbeat_loop(stop), name="heartbeat loop"),
                asyncio.create_task(self._reaper_loop(stop), name="reaper loop"),
                asyncio.create_task(self._delivery_loop(stop), name="delivery loop"),
            ]
            listener = self.db.listener()
            watched = [*loops, listener] if listener is not None else loops
            # Each loop runs until stop; one that ends before (a bug) ends the worker, never half of it.
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = None if task.cancelled() else task.exception()
                if error is not None:
                    raise error
                if not stop.is_set():
                    raise RuntimeError(f"the {task.get_name()} of worker {self.id} ended unexpectedly")
        finally:
            # The liveness lock goes last (closing its connection releases it): until the tasks have
            # released their leases, the reapers must not take this worker for dead.
            others = [task for task in loops if task is not self._holding]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            await self._stop_tasks()
            await self.deliverer.close()
            if self._holding is not None:
                self._holding.cancel()
                await asyncio.gather(self._holding, return_exceptions=True)
                self._holding = None
            await self.drivers.stop_all()
            with contextlib.suppress(Exception):
                async with self.db.transaction() as tx:
                    await queue.forget_worker(tx, self.id)

    async def _register(self, stop: asyncio.Event) -> None:
        async def register() -> None:
            async with self.db.transaction() as tx:
                await queue.register_worker(tx, self.id, os.getpid(), self.clock.now())

        await retry_transient(self.db, register, what=f"registering worker {self.id}", stop=stop)
        if self.db.dialect == "sqlite":
            # SQLite serves one process: any lease still held belongs to a process that is gone.
            async def reclaim() -> None:
                now = self.clock.now()
                await reap_expired_leases(
                    self.db, now, self.templates, expired_before=now + timedelta(days=3650)
                )
                # And any notification it was sending: sent again now (at least once).
                await self.deliverer.release_held()

            await retry_transient(self.db, reclaim, what="reclaiming leases left behind", stop=stop)

    async def _claim_loop(self, stop: asyncio.Event) -> None:
        streak = FailureStreak(self.db, f"claiming work for worker {self.id}")
        while not stop.is_set():
            if not self._proven_alive():
                await self._await_liveness_lock()
                continue
            capacity = self.settings.max_concurrency - len(self._tasks)
            try:
                claimed, next_due = await self._claim(capacity)
            except Exception as error:  # transient: wait and look again; else re-raised (a bug)
                await pause(streak.failed(error), stop)
                continue
            streak.succeeded()
            if capacity > 0 and claimed == capacity:
                continue  # a full batch: there may be more due right now
            wait = self.settings.idle_poll_seconds
            if next_due is not None and capacity > claimed:
                wait = min(wait, max((next_due - self.clock.now()).total_seconds(), 0.0))
            if wait > 0:
                # Woken early by a commit that made work due, or by one of our actions finishing.
                await self.db.wait_for_wakeup(wait)

    def _proven_alive(self) -> bool:
        """Whether this worker may take more work: it holds its liveness lock, or has none to hold
        (SQLite; a worker used without ``run``, in tests). Work taken without the lock would look like
        the work of a dead worker."""
        return self._holding is None or self._liveness is None or self._liveness.held.is_set()

    async def _await_liveness_lock(self) -> None:
        assert self._liveness is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._liveness.held.wait(), timeout=self.settings.idle_poll_seconds)

    async def claim_once(self) -> int:
        """Claim what is due (up to free capacity) and start executing it; returns how many."""
        claimed, _ = await self._claim(self.settings.max_concurrency - len(self._tasks))
        return claimed

    async def _claim(self, capacity: int) -> tuple[int, datetime | None]:
        """Claim up to ``capacity`` due nodes; also says when the next unclaimed node falls due."""
        if capacity <= 0:
            return 0, None
        now = self.clock.now()
        lease_until = now + timedelta(seconds=self.settings.lease_seconds)
        async with self.db.transaction() as tx:
            nodes = await queue.claim_due_nodes(tx, self.id, now, lease_until, capacity)
            began = await self._begin(tx, nodes, now)
            next_due = await queue.next_due_at(tx)
        self._launch(began)
        return len(nodes), next_due

    async def _begin(
        self,
        tx: Transaction,
        nodes: list[NodeRecord],
        now: datetime,
        batch: BatchCache | None = None,
        *,
        take_until: datetime | None = None,
    ) -> list[tuple[Claim, ExecutionContext]]:
        """Begin freshly leased nodes (or, with ``take_until``, ready leaves this worker takes):
        the claims to act on, each with what its action needs."""
        claims: list[Claim] = []
        batch = batch or BatchCache(flows=self._flows)
        ended_runs = set()
        for node in nodes:
            claim = await begin(tx, node, self.id, now, self.templates, batch, take_until=take_until)
            if claim is None:
                ended_runs.add(node.run_id)
            else:
                claims.append(claim)
        for run_id in ended_runs:
            await settle(tx, run_id, now, self.templates)
        scopes: dict[tuple[str, str, str], ActionScope] = {}
        began = []
        for claim in claims:
            stage_key = (claim.project_id, claim.pipeline_id, claim.stage)
            if claim.kind not in PLATFORM_KINDS:
                scope = NO_PLATFORM  # messages touch no resource
            elif stage_key in scopes:
                scope = scopes[stage_key]
            else:
                scope = scopes[stage_key] = await action_scope(tx, *stage_key)
            began.append((claim, self._context(claim, scope)))
        return began

    def _launch(self, began: list[tuple[Claim, ExecutionContext]]) -> None:
        for claim, context in began:
            self._tasks[claim.node_id] = asyncio.create_task(self._execute(claim, context))

    def _context(self, claim: Claim, scope: ActionScope) -> ExecutionContext:
        return ExecutionContext(
            run_id=claim.run_id,
            node_path=claim.path,
            kind=claim.kind,
            ref=claim.ref,
            code=claim.code,
            attempt=claim.attempt,
            max_attempts=claim.max_attempts,
            idempotency_key=claim.idempotency_key,
            now=self.clock.now(),
            wait_state=claim.wait_state,
            project_id=claim.project_id,
            stage=claim.stage,
            resources=scope.resources,
            deployed=scope.deployed,
            stage_resources=scope.stage_resources,
            resumed=claim.resumed,
        )

    async def _execute(self, claim: Claim, context: ExecutionContext) -> None:
        try:
            await self._run_chain(claim, context)
        finally:
            # A slot is free: the claim loop may take more work at once.
            self.db.wake_local()

    async def _record(
        self, claim: Claim, answer: Answer, *, instead: bool = False
    ) -> list[tuple[Claim, ExecutionContext]] | None:
        """Record the answer, retrying through an outage while the lease lasts (the answer may be a
        finished deploy: worth keeping). Returns the nodes it let begin (see ``_write_answer``);
        ``[]`` when the node is someone else's now; None when it could not be recorded.

        An answer refused for another reason (a bug, data the database cannot hold) would be refused
        again on every reclaim: the node is failed instead, once, with that reason (``instead``: this
        is that failure being recorded)."""

        def lease_lasts(delay: float) -> bool:
            until = self._lease_until.get(claim.node_id)
            return until is not None and self.clock.now() + timedelta(seconds=delay) < until

        async def write() -> list[tuple[Claim, ExecutionContext]]:
            return await self._write_answer(claim, answer)

        try:
            return await retry_transient(
                self.db,
                write,
                what=f"recording the answer for {claim.path} of run {claim.run_id}",
                keep_trying=lease_lasts,
            )
        except StaleLeaseError as error:
            log.warning("%s", error)  # the node is someone else's now: nothing of ours to release
            return []
        except Exception as error:
            if self.db.is_transient(error) or instead:
                # An outage that outlasted the lease is expected and already logged by the retries.
                log.log(
                    logging.ERROR if instead else logging.WARNING,
                    "worker %s could not record the answer for %s of run %s; releasing its lease",
                    self.id,
                    claim.path,
                    claim.run_id,
                    exc_info=instead,
                )
                return None
            log.exception(
                "worker %s could not record the answer for %s of run %s; failing the node instead",
                self.id,
                claim.path,
                claim.run_id,
            )
            unrecordable = Failed(
                f"its answer could not be recorded: {describe_error(error)}", retryable=False
            )
            return await self._record(claim, unrecordable, instead=True)

    async def _release(self, claim: Claim) -> None:
        try:
            async with self.db.transaction() as tx:
                await queue.release_lease(tx, claim.node_id, self.id, claim.lease_token, self.clock.now())
        except Exception as error:  # the lease expires by itself: it is no longer extended
            log.warning("could not release the lease on %s of run %s: %s", claim.path, claim.run_id, error)

    async def _act(self, claim: Claim, context: ExecutionContext) -> Answer:
        executor = self.executors.get(claim.kind)
        if executor is None:
            return Failed(f"no executor for node kind {claim.kind}", retryable=False)
        if claim.cancel:
            return await self._stop_action(executor, context)
        limit = claim.node.timeout_seconds or (
            DEFAULT_WAIT_TIMEOUT_SECONDS if claim.poll else ACTION_TIMEOUT_SECONDS
        )
        call = executor.poll(context) if claim.poll else executor.start(context)
        try:
            outcome: Outcome = await asyncio.wait_for(call, timeout=limit)
        except TimeoutError:
            return Failed(f"timed out: the action did not answer within {limit:g}s")
        except asyncio.CancelledError:
            if claim.node_id in self._aborting:
                return Aborted()
            raise
        except Exception as error:  # an executor bug must fail the node visibly, not kill the worker
            log.exception("executor for %s crashed", claim.kind)
            return Failed(f"the {claim.kind} executor crashed: {describe_error(error)}")
        return outcome

    @staticmethod
    async def _stop_action(executor: NodeExecutor, context: ExecutionContext) -> Aborted:
        """The run was aborted while the node waited on the platform: ask it to stop the action."""
        try:
            stopped = await asyncio.wait_for(executor.cancel(context), timeout=CANCEL_TIMEOUT_SECONDS)
        except Exception as error:  # the node ends aborted either way; say what happened
            log.exception("stopping %s of run %s failed", context.node_path, context.run_id)
            stopped = f"could not ask the platform to stop it: {describe_error(error)}"
        return Aborted(f"stopped: the run was aborted; {stopped}" if stopped else Aborted.message)

    async def _run_chain(self, claim: Claim, context: ExecutionContext) -> None:
        """Act on a claim and record its answer. When recording it let the run's next nodes begin
        (in that same transaction), act on the first of them here at once — a chain of steps runs
        without a round through the claim loop — and hand the others to tasks of their own.

        A node whose answer could not be recorded has its lease released at once: no live task
        works on it any more, so it is reclaimed as a lost attempt."""
        task = asyncio.current_task()
        assert task is not None
        while True:
            self._tasks[claim.node_id] = task
            self._lease_until[claim.node_id] = self.clock.now() + timedelta(
                seconds=self.settings.lease_seconds
            )
            successors: list[tuple[Claim, ExecutionContext]] | None = None
            try:
                answer = await self._act(claim, context)
                successors = await self._record(claim, answer)
            finally:
                self._tasks.pop(claim.node_id, None)
                self._aborting.discard(claim.node_id)
                self._lease_until.pop(claim.node_id, None)
                if successors is None:
                    await self._release(claim)
            if not successors:
                return
            (claim, context), others = successors[0], successors[1:]
            self._launch(others)

    async def complete(self, claim: Claim, answer: Answer) -> None:
        """Record an answer, if this worker still holds the node's lease (else StaleLeaseError);
        the nodes that the answer let begin are acted on by tasks of their own."""
        self._launch(await self._write_answer(claim, answer))

    async def _write_answer(self, claim: Claim, answer: Answer) -> list[tuple[Claim, ExecutionContext]]:
        """Record an answer, if this worker still holds the node's lease (else StaleLeaseError).

        In the same transaction, the leaves the answer made ready are leased to this worker and
        begun (as many as it has room for): returns them, and the caller MUST act on every one
        (they are leased to this worker). Every write is committed before any of them acts.
        """
        now = self.clock.now()
        # This task's own slot is free again, so one more than the free capacity.
        room = max(self.settings.max_concurrency - len(self._tasks) + 1, 0) if self._proven_alive() else 0
        lease = Lease(self.id, now + timedelta(seconds=self.settings.lease_seconds), room)
        async with self.db.transaction() as tx:
            # Written fenced by the lease: refused (StaleLeaseError) if the node was reaped or taken over.
            answered = NodeAnswered(claim.node, answer)
            advanced = await apply_event(tx, claim.run_id, answered, now, self.templates, lease=lease)
            if not lease.taken:
                return []
            batch = BatchCache(runs={advanced.run.id: advanced.run}, flows=self._flows)
            ready = [
                ready_record(node_id, (await batch.run_and_flow(tx, run_id))[0], path, self.templates)
                for node_id, run_id, path in lease.taken
            ]
            return await self._begin(tx, ready, now, batch, take_until=lease.until)

    async def _heartbeat_loop(self, stop: asyncio.Event) -> None:
        streak = FailureStreak(self.db, f"the heartbeat of worker {self.id}")
        interval = self.settings.heartbeat_seconds
        while not stop.is_set():
            await asyncio.sleep(interval)
            try:
                await self.heartbeat()
            except Exception as error:  # transient: beat again soon, to save the leases; else re-raised
                interval = min(streak.failed(error), self.settings.heartbeat_seconds)
                continue
            streak.succeeded()
            interval = self.settings.heartbeat_seconds

    async def heartbeat(self) -> None:
        now = self.clock.now()
        until = now + timedelta(seconds=self.settings.lease_seconds)
        # Only the leases of nodes a live task works on; any other lease of ours is left to expire.
        live = list(self._tasks)
        async with self.db.transaction() as tx:
            await queue.heartbeat(tx, self.id, now)
            await queue.extend_leases(tx, self.id, live, until)
            aborting = await queue.leased_nodes_of_aborting_runs(tx, self.id)
        for node_id in live:
            if node_id in self._lease_until:
                self._lease_until[node_id] = until
        for node_id, _token in aborting:
            task = self._tasks.get(node_id)
            if task is not None and node_id not in self._aborting:
                self._aborting.add(node_id)
                task.cancel()

    async def _reaper_loop(self, stop: asyncio.Event) -> None:
        async def reap() -> bool:
            try:
                await reap_expired_leases(self.db, self.clock.now(), self.templates)
                if self._liveness is not None:
                    await reap_dead_workers(self.db, self.clock.now(), self.templates, self._lock_watch)
            except Exception:
                self._lock_watch.forget()  # the database was away: nobody is reaped on what came before
                raise
            return False

        await self._every(self.settings.reap_seconds, f"the reaper of worker {self.id}", reap, stop)

    async def _delivery_loop(self, stop: asyncio.Event) -> None:
        """Send the notifications that are due; a full batch is followed at once by the next."""

        async def deliver() -> bool:
            return await self.deliverer.deliver_due() >= DELIVERY_BATCH

        await self._every(self.settings.deliver_seconds, f"the deliverer of worker {self.id}", deliver, stop)

    async def _every(
        self, seconds: float, what: str, step: Callable[[], Awaitable[bool]], stop: asyncio.Event
    ) -> None:
        """Run ``step`` every ``seconds`` until stop (at once again when it says there is more), riding
        out database outages with the outage backoff."""
        streak = FailureStreak(self.db, what)
        interval = seconds
        while not stop.is_set():
            await asyncio.sleep(interval)
            try:
                more = await step()
            except Exception as error:  # transient: look again later; else re-raised (a bug)
                interval = max(streak.failed(error), seconds)
                continue
            streak.succeeded()
            interval = 0 if more else seconds

    async def _stop_tasks(self) -> None:
        # Each cancelled task releases its lease: the reaper hands the node back at once.
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
