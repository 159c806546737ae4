"""One door at run time: its rules' state, its backend, and the thread that drives it.

Each door has its own worker so a slow relay never holds up another door; within a door
the jobs run in the order they were decided, so its decisions are announced in order.
Opening is decided (and the cooldown and journal claims taken) on the caller's thread;
the worker writes the journal intent, pulses and reports.

The cooldown is held by the door's latest attempt for what it really did: an attempt
under way or unconfirmed (the relay's answer was lost) keeps it, and the next person is
told that, not "opened"; an attempt that certainly did not open (refused, stale by its
turn, the relay said no) gives it back.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sophonfog_bridge import DecisionResult, DoorDecision, Event

from . import rules
from .backends import describe
from .journal import Journal, JournalError
from .pulse import Backend, BackendError, Pulse, RelayUnconfirmed

log = logging.getLogger(__name__)

# Decisions announced in one trip at most: a few milliseconds of spooling.
REPORT_BATCH = 64


@dataclass
class Claim:
    """One attempt's hold on the door's cooldown."""

    mono: float
    state: str = "pending"  # pending | opened | unconfirmed (a failed one is dropped)


@dataclass(slots=True)
class Job:
    """A decision waiting for the door's thread.

    It keeps what its turn needs, not the event: a burst behind a slow relay queues
    thousands of jobs, while their events wait in the spool on disk.
    """

    decision: DoorDecision
    pulse: Pulse | None = None
    seen_at: datetime | None = None  # the box's timestamp: freshness is re-checked from it
    received_at: datetime | None = None
    claim: Claim | None = None
    done: Future | None = None  # only a remote command waits for its decision
    queued_mono: float = field(default_factory=time.monotonic)
    journal_key: str | None = None  # set once the intent is in the journal

    @classmethod
    def for_event(
        cls, decision: DoorDecision, pulse: Pulse | None, event: Event, claim: Claim | None
    ) -> Job:
        return cls(decision, pulse, event.timestamp, event.received_at, claim)


class Door:
    def __init__(
        self,
        cfg: dict[str, Any],
        backend: Backend,
        journal: Journal,
        announce: Callable[[list[DoorDecision]], object],
        announce_every_s: float = 0.0,
    ):
        self.cfg = cfg
        self.name: str = cfg["name"]
        self.backend = backend
        self.journal = journal
        self.announce = announce
        self.announce_every_s = announce_every_s
        self.lock = threading.Lock()
        self._claims: list[Claim] = []  # attempts holding the cooldown, newest last
        self.stats: dict[str, Any] = {
            "opened": 0,
            "denied": 0,
            "errors": 0,
            "last_decision": None,
            "backend": {
                "type": getattr(backend, "kind", cfg["backend"]["type"]),
                "target": describe(backend),
                "state": "idle",
                "last_error": None,
                # Every key exists from the start: health() copies this while a worker updates.
                "last_ok_ms": None,
            },
        }
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._announced_at = -math.inf
        self._thread = threading.Thread(target=self._run, name=f"door-{self.name}", daemon=True)

    # ---- deciding (caller's thread) ----------------------------------------------------

    def claim_open(self, mono: float) -> tuple[Claim | None, str]:
        """Take the cooldown for a pulse, or (None, why not) if another attempt holds it."""
        cooldown = self.cfg["cooldown_s"]
        with self.lock:
            last = self._claims[-1] if self._claims else None
            if last is not None and mono - last.mono < cooldown:
                return None, rules.cooldown_reason(last.state, mono - last.mono, cooldown)
            claim = Claim(mono)
            self._claims = [c for c in self._claims if mono - c.mono < cooldown] + [claim]
            return claim, ""

    def settle(self, claim: Claim | None, state: str) -> None:
        """Record what the attempt did; a failed one gives the cooldown back."""
        if claim is None:
            return
        with self.lock:
            if state == "failed":
                self._claims = [c for c in self._claims if c is not claim]
            else:
                claim.state = state

    def state_for(self, event: Event) -> rules.DoorState:
        with self.lock:
            last = self._claims[-1] if self._claims else None
        seen = self.journal.seen(event.event_id, self.name)
        if last is None:
            return rules.DoorState(already_claimed=seen)
        return rules.DoorState(last.mono, last.state, seen)

    def submit(self, job: Job) -> None:
        self._jobs.put(job)

    # ---- acting (door's thread) --------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._jobs.put(None)
        self._thread.join(timeout)
        self.close_backend()

    def close_backend(self) -> None:
        close = getattr(self.backend, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                log.exception("door %s: backend close failed", self.name)

    def _run(self) -> None:
        upcoming: Job | None = None
        while True:
            job = upcoming if upcoming is not None else self._jobs.get()
            if job is None:
                return
            done: list[tuple[Job, DoorDecision]] = []
            self._add(done, job, self._decided(job))
            upcoming, stop = self._gather(done)
            self._report(done)
            if stop:
                return

    def _gather(self, done: list[tuple[Job, DoorDecision]]) -> tuple[Job | None, bool]:
        """Decide more jobs into `done`, to be announced in one trip; return the job that
        stopped it (a pulse once the batch was due) and whether stop() did.

        Each announcement waits for the receiver's process to spool it, and each spooled
        decision wakes every plugin process. One trip a decision kept a burst's audit
        seconds behind the faces (~550 decisions a second, measured), and at a steady 40
        events a second cost ~0.3 ms of CPU an event across the processes. So a batch is
        due at once when the last one went out `announce_every_s` ago, else that long
        after it; until then every job that comes is decided into it, a pulse at its turn
        (a person waits; its freshness is checked then). Once due, the queued decisions
        that need no pulse join it, and a pulse goes after it: a slow relay never holds
        more than one pulse's wait of the audit.
        """
        due = self._announced_at + self.announce_every_s
        while len(done) < REPORT_BATCH:
            wait = due - time.monotonic()
            try:
                job = self._jobs.get(timeout=wait) if wait > 0 else self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return None, True
            if wait > 0 or job.pulse is None:
                self._add(done, job, self._decided(job))
                continue
            late = self._denied_late(job)
            if late is None:
                return job, False
            self._add(done, job, late)
        return None, False

    def _decided(self, job: Job) -> DoorDecision:
        """The job's decision, after its pulse if it has one."""
        try:
            return self._act(job) if job.pulse else job.decision
        except Exception as err:  # never let one job kill the door
            log.exception("door %s: unexpected failure", self.name)
            # Past the journal intent the relay may have been reached.
            self.settle(job.claim, "unconfirmed" if job.journal_key else "failed")
            return _replace(job.decision, DecisionResult.ERROR, "internal", str(err))

    def _act(self, job: Job) -> DoorDecision:
        """Pulse if still in time; the claim on the cooldown is settled by what happened."""
        late = self._denied_late(job)
        if late is not None:
            return late
        pulse = job.pulse
        assert pulse is not None
        key = pulse.event_id or f"remote-{job.decision.decision_id}"
        try:
            self.journal.intent(
                key,
                self.name,
                decision_id=job.decision.decision_id,
                source=pulse.source,
                pulse_s=pulse.pulse_s,
            )
        except JournalError as err:
            self.settle(job.claim, "failed")
            return _replace(job.decision, DecisionResult.ERROR, "journal", str(err))
        job.journal_key = key
        if job.received_at is not None:
            log.debug(
                "door %s: pulsing %.1f ms after the event was received",
                self.name,
                (datetime.now(timezone.utc) - job.received_at).total_seconds() * 1000,
            )
        return self._pulse(job, key)

    def _denied_late(self, job: Job) -> DoorDecision | None:
        """The job's denial if its turn came too late to pulse, its claim given back."""
        late = self._too_late(job)
        if late is None:
            return None
        self.settle(job.claim, "failed")
        return _replace(job.decision, late.decision, late.rule, late.reason)

    def _too_late(self, job: Job) -> rules.Verdict | None:
        """A relay busy for long must not open for the past: re-checked at the job's turn."""
        if job.seen_at is not None:
            return rules.still_fresh(job.seen_at, self.cfg, datetime.now(timezone.utc))
        late = rules.remote_too_late(time.monotonic() - job.queued_mono, self.cfg)
        if late is None:
            return None
        return rules.Verdict(late.decision, late.rule, f"{job.decision.reason}: {late.reason}")

    def _pulse(self, job: Job, key: str) -> DoorDecision:
        assert job.pulse is not None
        started = time.perf_counter()
        try:
            confirmation = self.backend.pulse(job.pulse)
        except RelayUnconfirmed as err:
            return self._unconfirmed(job, key, err)
        except BackendError as err:
            reason = f"{job.decision.reason}; relay failed, door stays shut: {err}"
            self.journal.outcome(key, self.name, result="error", reason=str(err))
            self.stats["backend"].update(state="error", last_error=str(err))
            self.settle(job.claim, "failed")
            return _replace(job.decision, DecisionResult.ERROR, "backend", reason)
        except Exception as err:  # a user backend's own failure: it may have acted
            return self._unconfirmed(job, key, err)
        took_ms = (time.perf_counter() - started) * 1000
        self.journal.outcome(key, self.name, result="open", detail=str(confirmation))
        self.stats["backend"].update(state="ok", last_ok_ms=round(took_ms, 1))
        self.settle(job.claim, "opened")
        return _replace(
            job.decision,
            DecisionResult.OPEN,
            job.decision.rule,
            f"{job.decision.reason}; {confirmation} in {took_ms:.0f} ms",
        )

    def _unconfirmed(self, job: Job, key: str, err: Exception) -> DoorDecision:
        """The command may have reached the relay: say so, and keep the cooldown."""
        text = str(err) or type(err).__name__
        reason = f"{job.decision.reason}; relay did not confirm, the door may have opened: {text}"
        self.journal.outcome(key, self.name, result="unconfirmed", reason=text)
        self.stats["backend"].update(state="error", last_error=text)
        self.settle(job.claim, "unconfirmed")
        return _replace(job.decision, DecisionResult.ERROR, "unconfirmed", reason)

    def _add(self, done: list[tuple[Job, DoorDecision]], job: Job, decision: DoorDecision) -> None:
        """A decided job joins the batch. It is logged and counted now, and a remote press
        waiting for it has it now: not when the batch goes out."""
        done.append((job, decision))
        self._note(decision)
        if job.done is not None:
            job.done.set_result(decision)

    def _report(self, done: list[tuple[Job, DoorDecision]]) -> None:
        """Announce the decisions, in order; a pulse's journal entry is marked announced
        once its decision is in the spool for the other plugins."""
        try:
            self.announce([decision for _, decision in done])
            announced = True
        except Exception:
            log.exception("door %s: cannot announce %d decision(s)", self.name, len(done))
            announced = False
        self._announced_at = time.monotonic()
        for job, _ in done:
            if announced and job.journal_key is not None:
                self.journal.announced(job.journal_key, self.name)

    def _note(self, decision: DoorDecision) -> None:
        counter = {"open": "opened", "deny": "denied", "error": "errors"}[decision.decision.value]
        self.stats[counter] += 1
        # /healthz is open to anyone: no reason or event id here, they may name the person.
        # The status page (behind the token) and the audit trail carry the whole decision.
        self.stats["last_decision"] = {
            "decision": decision.decision.value,
            "rule": decision.rule,
            "source": decision.source,
            "decision_id": decision.decision_id,
            "at": decision.decided_at.isoformat(timespec="milliseconds"),
        }
        level = logging.ERROR if decision.decision is DecisionResult.ERROR else logging.INFO
        log.log(
            level,
            "door %s: %s (%s) %s [event %s, source %s, decision %s]",
            self.name,
            decision.decision.value.upper(),
            decision.rule,
            decision.reason,
            decision.event_id,
            decision.source,
            decision.decision_id,
        )

    def health(self) -> dict[str, Any]:
        return {
            **self.stats,
            "backend": dict(self.stats["backend"]),
            "queued": self._jobs.qsize(),
            "allow_remote_open": self.cfg["allow_remote_open"],
        }


def _replace(
    decision: DoorDecision, result: DecisionResult, rule: str, reason: str
) -> DoorDecision:
    """The same decision with another outcome, stamped now: when it was really decided."""
    return dataclasses.replace(
        decision, decision=result, rule=rule, reason=reason, decided_at=datetime.now(timezone.utc)
    )
