"""The worker: claims due nodes, runs their executors, reports answers; heartbeats and reaps.

Durability rests on the database alone: a claim is a lease with a fencing token; the heartbeat
extends the leases this worker holds; the reaper (every worker runs one) returns the work of a worker
whose leases expired to the retry policy; an answer for a lease that is no longer ours is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from releaseflow.domain.errors import StaleLeaseError
from releaseflow.engine.admission import settle
from releaseflow.engine.clock import Clock
from releaseflow.engine.dispatch import BatchCache, Claim, begin
from releaseflow.engine.executors import PLATFORM_KINDS
from releaseflow.engine.executors.base import ExecutionContext, Failed, NodeExecutor, Outcome
from releaseflow.engine.outcomes import (
    DEFAULT_WAIT_TIMEOUT_SECONDS,
    Aborted,
    Answer,
    apply_answer,
    timeout_seconds,
)
from releaseflow.engine.reaper import reap_expired_leases
from releaseflow.engine.scope import ActionScope, action_scope
from releaseflow.engine.templates import TemplateCache
from releaseflow.platform.driver import DriverRegistry
from releaseflow.store import queue
from releaseflow.store import runs as run_store
from releaseflow.store.database import Database

log = logging.getLogger(__name__)

NO_PLATFORM = ActionScope(resources={}, deployed={}, stage_resources=frozenset())

# How long the platform may take to stop an action when its run is aborted.
CANCEL_TIMEOUT_SECONDS = 60.0
# An action with no timeout of its own may not hold a worker slot longer than this.
ACTION_TIMEOUT_SECONDS = 3600.0


@dataclass(frozen=True)
class WorkerSettings:
    lease_seconds: float = 15.0
    heartbeat_seconds: float = 2.0
    reap_seconds: float = 1.0
    # Actions are mostly waits on I/O, so many fit in one process.
    max_concurrency: int = 256
    # Sleep between looks for due work when no wake-up arrives (work made due by another
    # process on SQLite, or a missed notification).
    idle_poll_seconds: float = 0.5


class Worker:
    def __init__(
        self,
        db: Database,
        executors: Mapping[str, NodeExecutor],
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

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set."""
        await self.db.start_listening()
        await self.drivers.start_all()
        async with self.db.transaction() as tx:
            await queue.register_worker(tx, self.id, os.getpid(), self.clock.now())
        if self.db.dialect == "sqlite":
            # SQLite serves one process: any lease still held belongs to a process that is gone.
            now = self.clock.now()
            await reap_expired_leases(self.db, now, self.templates, expired_before=now + timedelta(days=3650))
        loops = [
            asyncio.create_task(self._heartbeat_loop(stop)),
            asyncio.create_task(self._reaper_loop(stop)),
        ]
        try:
            await self._claim_loop(stop)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self._stop_tasks()
            await self.drivers.stop_all()
            with contextlib.suppress(Exception):
                async with self.db.transaction() as tx:
                    await queue.forget_worker(tx, self.id)

    async def _claim_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            capacity = self.settings.max_concurrency - len(self._tasks)
            claimed, next_due = await self._claim(capacity)
            if capacity > 0 and claimed == capacity:
                continue  # a full batch: there may be more due right now
            wait = self.settings.idle_poll_seconds
            if next_due is not None and capacity > claimed:
                wait = min(wait, max((next_due - self.clock.now()).total_seconds(), 0.0))
            if wait > 0:
                # Woken early by a commit that made work due, or by one of our actions finishing.
                await self.db.wait_for_wakeup(wait)

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
        claims: list[Claim] = []
        contexts: list[ExecutionContext] = []
        async with self.db.transaction() as tx:
            nodes = await queue.claim_due_nodes(tx, self.id, now, lease_until, capacity)
            batch = BatchCache()
            ended_runs = set()
            for node in nodes:
                claim = await begin(tx, node, self.id, now, self.templates, batch)
                if claim is None:
                    ended_runs.add(node.run_id)
                else:
                    claims.append(claim)
            for run_id in ended_runs:
                await settle(tx, run_id, now, self.templates)
            scopes: dict[tuple[str, str, str], ActionScope] = {}
            for claim in claims:
                stage_key = (claim.project_id, claim.pipeline_id, claim.stage)
                if claim.kind not in PLATFORM_KINDS:
                    scope = NO_PLATFORM  # messages and approvals touch no resource
                elif stage_key in scopes:
                    scope = scopes[stage_key]
                else:
                    scope = scopes[stage_key] = await action_scope(tx, *stage_key)
                contexts.append(self._context(claim, scope))
            next_due = await queue.next_due_at(tx)
        for claim, context in zip(claims, contexts, strict=True):
            self._tasks[claim.node_id] = asyncio.create_task(self._execute(claim, context))
        return len(nodes), next_due

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
        )

    async def _execute(self, claim: Claim, context: ExecutionContext) -> None:
        try:
            answer = await self._act(claim, context)
            await self.complete(claim, answer)
        except StaleLeaseError as error:
            log.warning("%s", error)
        except Exception:
            log.exception(
                "worker %s could not record the answer for %s %s", self.id, claim.run_id, claim.path
            )
        finally:
            self._tasks.pop(claim.node_id, None)
            self._aborting.discard(claim.node_id)
            # A slot is free: the claim loop may take more work at once.
            self.db.wake_local()

    async def _act(self, claim: Claim, context: ExecutionContext) -> Answer:
        executor = self.executors.get(claim.kind)
        if executor is None:
            return Failed(f"no executor for node kind {claim.kind}", retryable=False)
        if claim.cancel:
            return await self._stop_action(executor, context)
        limit = timeout_seconds(claim.code) or (
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
            return Failed(f"the {claim.kind} executor crashed: {error!r}")
        return outcome

    @staticmethod
    async def _stop_action(executor: NodeExecutor, context: ExecutionContext) -> Aborted:
        """The run was aborted while the node waited on the platform: ask it to stop the action."""
        try:
            stopped = await asyncio.wait_for(executor.cancel(context), timeout=CANCEL_TIMEOUT_SECONDS)
        except Exception as error:  # the node ends aborted either way; say what happened
            log.exception("stopping %s of run %s failed", context.node_path, context.run_id)
            stopped = f"could not ask the platform to stop it: {error!r}"
        return Aborted(f"stopped: the run was aborted; {stopped}" if stopped else Aborted.message)

    async def complete(self, claim: Claim, answer: Answer) -> None:
        """Record an answer, if this worker still holds the node's lease (else StaleLeaseError)."""
        now = self.clock.now()
        async with self.db.transaction() as tx:
            await tx.lock_row("runs", "id", claim.run_id)
            node = await run_store.get_node(tx, claim.node_id)
            if node is None or node.lease_owner != self.id or node.lease_token != claim.lease_token:
                raise StaleLeaseError(
                    f"answer for {claim.path} of run {claim.run_id} refused: lease {claim.lease_token} "
                    f"of worker {self.id} is no longer valid"
                )
            await apply_answer(tx, node, answer, now)
            await settle(tx, claim.run_id, now, self.templates)

    async def _heartbeat_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.settings.heartbeat_seconds)
            try:
                await self.heartbeat()
            except Exception:
                log.exception("heartbeat of worker %s failed", self.id)

    async def heartbeat(self) -> None:
        now = self.clock.now()
        async with self.db.transaction() as tx:
            await queue.heartbeat(tx, self.id, now)
            await queue.extend_leases(tx, self.id, now + timedelta(seconds=self.settings.lease_seconds))
            aborting = await queue.leased_nodes_of_aborting_runs(tx, self.id)
        for node_id, _token in aborting:
            task = self._tasks.get(node_id)
            if task is not None and node_id not in self._aborting:
                self._aborting.add(node_id)
                task.cancel()

    async def _reaper_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.settings.reap_seconds)
            try:
                await reap_expired_leases(self.db, self.clock.now(), self.templates)
            except Exception:
                log.exception("reaper of worker %s failed", self.id)

    async def _stop_tasks(self) -> None:
        # Leases of unfinished actions are left to expire: the reaper hands them to the retry policy.
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
