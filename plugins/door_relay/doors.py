"""One door at run time: its rules' state, its backend, and the thread that drives it.

Each door has its own worker so a slow relay never holds up another door; within a door
the jobs run in the order they were decided, so its decisions are announced in order.
Opening is decided (and the cooldown and journal claims taken) on the caller's thread;
the worker writes the journal intent, pulses and reports.
"""

from __future__ import annotations

import dataclasses
import logging
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
from .pulse import Backend, Pulse

log = logging.getLogger(__name__)


@dataclass
class Job:
    decision: DoorDecision
    pulse: Pulse | None = None
    event: Event | None = None
    done: Future = field(default_factory=Future)
    journal_key: str | None = None  # set once the intent is in the journal


class Door:
    def __init__(
        self,
        cfg: dict[str, Any],
        backend: Backend,
        journal: Journal,
        announce: Callable[[DoorDecision], None],
        position: Callable[[], int] = lambda: 0,
    ):
        self.cfg = cfg
        self.name: str = cfg["name"]
        self.backend = backend
        self.journal = journal
        self.announce = announce
        self.position = position
        self.lock = threading.Lock()
        self.last_open_mono: float | None = None
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
        self._thread = threading.Thread(target=self._run, name=f"door-{self.name}", daemon=True)

    # ---- deciding (caller's thread) ----------------------------------------------------

    def claim_open(self, mono: float) -> bool:
        """Take the cooldown for a pulse; False if another opening got there first."""
        with self.lock:
            last = self.last_open_mono
            if last is not None and mono - last < self.cfg["cooldown_s"]:
                return False
            self.last_open_mono = mono
            return True

    def state_for(self, event: Event) -> rules.DoorState:
        with self.lock:
            last = self.last_open_mono
        return rules.DoorState(last, self.journal.seen(event.event_id, self.name))

    def submit(self, job: Job) -> Future:
        self._jobs.put(job)
        return job.done

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
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                decision = self._act(job) if job.pulse else job.decision
            except Exception as err:  # never let one job kill the door
                log.exception("door %s: unexpected failure", self.name)
                decision = _replace(job.decision, DecisionResult.ERROR, "internal", str(err))
            if self._report(decision) and job.journal_key is not None:
                self.journal.announced(job.journal_key, self.name)
            job.done.set_result(decision)

    def _act(self, job: Job) -> DoorDecision:
        pulse = job.pulse
        assert pulse is not None
        if job.event is not None:
            late = rules.still_fresh(job.event, self.cfg, datetime.now(timezone.utc))
            if late is not None:
                return _replace(job.decision, late.decision, late.rule, late.reason)
        key = pulse.event_id or f"remote-{time.time_ns()}"
        try:
            # The spool position lets the next start find whether this decision reached it.
            self.journal.intent(
                key, self.name, source=pulse.source, pulse_s=pulse.pulse_s, seq=self.position()
            )
        except JournalError as err:
            return _replace(job.decision, DecisionResult.ERROR, "journal", str(err))
        job.journal_key = key
        started = time.perf_counter()
        if job.event is not None:
            log.debug(
                "door %s: pulsing %.1f ms after the event was received",
                self.name,
                (datetime.now(timezone.utc) - job.event.received_at).total_seconds() * 1000,
            )
        try:
            confirmation = self.backend.pulse(pulse)
        except Exception as err:
            reason = f"{job.decision.reason}; relay failed, door stays shut: {err}"
            self.journal.outcome(key, self.name, result="error", reason=str(err))
            self.stats["backend"].update(state="error", last_error=str(err))
            return _replace(job.decision, DecisionResult.ERROR, "backend", reason)
        took_ms = (time.perf_counter() - started) * 1000
        self.journal.outcome(key, self.name, result="open", detail=str(confirmation))
        self.stats["backend"].update(state="ok", last_ok_ms=round(took_ms, 1))
        return _replace(
            job.decision,
            DecisionResult.OPEN,
            job.decision.rule,
            f"{job.decision.reason}; {confirmation} in {took_ms:.0f} ms",
        )

    def _report(self, decision: DoorDecision) -> bool:
        """Log and announce; True once the decision is in the spool for the other plugins."""
        counter = {"open": "opened", "deny": "denied", "error": "errors"}[decision.decision.value]
        self.stats[counter] += 1
        self.stats["last_decision"] = {
            "decision": decision.decision.value,
            "rule": decision.rule,
            "reason": decision.reason,
            "source": decision.source,
            "event_id": decision.event_id,
            "at": decision.decided_at.isoformat(timespec="milliseconds"),
        }
        level = logging.ERROR if decision.decision is DecisionResult.ERROR else logging.INFO
        log.log(
            level,
            "door %s: %s (%s) %s [event %s, source %s]",
            self.name,
            decision.decision.value.upper(),
            decision.rule,
            decision.reason,
            decision.event_id,
            decision.source,
        )
        try:
            self.announce(decision)
        except Exception:
            log.exception("door %s: cannot announce the decision", self.name)
            return False
        return True

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
