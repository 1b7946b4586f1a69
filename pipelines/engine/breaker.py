"""A circuit breaker for the engine: closed, open, half-open with exactly one probe.

One *request* is one outcome, however many attempts the transport made for it:

* **closed**: requests pass; ``threshold`` consecutive failed requests open the circuit.
* **open**: requests are refused at once (:class:`~pipelines.engine.errors.CircuitOpen`) for ``reset_s``.
* **half-open**: after ``reset_s`` exactly one request goes through as a probe, every other caller is
  still refused; the probe's success closes the circuit, its failure opens it for another ``reset_s``.
  A probe that ends neither way (timed out, cancelled) frees the slot for the next caller.

A failure is the engine being away (no connection after the retries, or a 502/503 answer); a
timeout is not one (slow is not down: under a burst the engine answers late, and an open circuit
would turn every other waiting client's request into a 503).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import Enum


class State(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Count failed requests; refuse while open; let one probe through when half-open.

    Thread-safe (the sync transport may be shared by worker threads); the async transport
    calls it from the event loop only, where nothing in it blocks.
    """

    def __init__(self, threshold: int = 5, reset_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.threshold = threshold
        self.reset_s = reset_s
        self._clock = clock
        self._lock = threading.Lock()
        self.failures = 0
        self.opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> State:
        if self.opened_at is None:
            return State.CLOSED
        if self._probing or self._clock() - self.opened_at >= self.reset_s:
            return State.HALF_OPEN
        return State.OPEN

    def acquire(self) -> bool:
        """Whether a request may go now; in half-open, True for the one caller that becomes the probe."""
        with self._lock:
            if self.opened_at is None:
                return True
            if self._probing or self._clock() - self.opened_at < self.reset_s:
                return False
            self._probing = True
            return True

    def success(self) -> None:
        """The request reached a working engine: close the circuit."""
        with self._lock:
            self.failures = 0
            self.opened_at = None
            self._probing = False

    def failure(self) -> None:
        """The request found the engine away: one more failure; a failed probe re-opens at once."""
        with self._lock:
            self.failures += 1
            if self._probing or self.failures >= self.threshold:
                self.opened_at = self._clock()
            self._probing = False

    def release(self) -> None:
        """The request ended without telling whether the engine works (timeout, cancel): free the probe."""
        with self._lock:
            self._probing = False
