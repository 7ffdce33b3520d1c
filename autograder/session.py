"""What a check holds to reach one part of the student's code: a budgeted view of its worker.

``PartSession`` forwards calls to the part's sandboxed worker and bounds each call
by what is left of the running check's time budget, so a slow submission loses
that check, not the run. It also remembers whether a graded file was missing or
unusable, so a failure can say *why* the handout's ``NotImplementedError`` came up.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .discovery import Discovery
from .registry import CheckFailed
from .sandbox.worker_main import release_free_memory


class BudgetSpent(CheckFailed):
    """The running check used up its configured time budget."""


@dataclass
class Clock:
    """Deadlines of the running check and of the whole run (``time.monotonic`` seconds)."""

    check_deadline: float = float("inf")
    check_budget_s: float = 0.0

    def remaining(self) -> float:
        return self.check_deadline - time.monotonic()


@dataclass
class PartSession:
    """One part (``part1``) of the submission as seen from a check."""

    part: str
    worker: Any  # autograder.sandbox.Worker
    discovery: Discovery
    clock: Clock
    call_timeout_s: float
    used: bool = field(default=False)
    # The worker died, hung or blew its memory during the running check: later calls of the
    # same check get the same verdict at once instead of restarting the worker each time
    # (hypothesis would otherwise replay and shrink examples until the budget is gone).
    fatal: Exception | None = field(default=None)

    def new_check(self) -> None:
        """Forget the previous check's state (the runner calls this between checks), including
        the objects it made in the worker (a check's models stay ~MBs each, for the worker's life)."""
        from .sandbox import WorkerFailure

        if self.used:
            try:
                self.worker.release_all()
            except WorkerFailure:
                pass  # the worker was stopped; the next check's first call starts a fresh one
        self.used = False
        self.fatal = None

    def _guarded(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from .sandbox import WorkerDied, WorkerMemoryExceeded, WorkerTimeout

        if self.fatal is not None:
            raise self.fatal
        self.used = True
        # The grader's freed temporaries go back to the system before the worker computes:
        # the run's memory peak is the two processes' transients at once (~80 us a call).
        release_free_memory()
        try:
            return fn(*args, **kwargs)
        except (WorkerDied, WorkerMemoryExceeded, WorkerTimeout) as exc:
            self.fatal = exc
            raise

    def _timeout(self) -> float:
        left = self.clock.remaining()
        if left <= 0:
            raise BudgetSpent(
                f"This check used its whole time budget ({self.clock.check_budget_s:g} s) before finishing; "
                "your code is probably too slow (e.g. Python loops over pixels) or stuck."
            )
        return max(0.05, min(self.call_timeout_s, left))

    def call(self, target: str, *args: Any, seed: int | None = 0, **kwargs: Any) -> Any:
        """Call ``module.function`` (or construct ``module.Class``) in the worker."""
        return self._guarded(lambda: self.worker.call(target, *args, seed=seed, timeout=self._timeout(), **kwargs))

    def driver(self, name: str, *args: Any, seed: int | None = 0, **kwargs: Any) -> Any:
        """Run an instructor helper inside the worker (``drivers_part1.train_vae``)."""
        return self.call("@" + name, *args, seed=seed, **kwargs)

    def method(self, handle: Any, name: str, *args: Any, seed: int | None = 0, **kwargs: Any) -> Any:
        """Call a method of an object that lives in the worker."""
        return self._guarded(lambda: self.worker.method(handle, name, *args, seed=seed, timeout=self._timeout(), **kwargs))

    def getattr(self, handle: Any, name: str) -> Any:
        return self._guarded(lambda: self.worker.getattr(handle, name, timeout=self._timeout()))

    def file_note(self, filename: str) -> str:
        """Why ``part/filename`` was not taken from the submission ('' when it was)."""
        return self.discovery.file_note(f"{self.part}/{filename}")

    def has(self, filename: str) -> bool:
        """Whether the submission's own ``filename`` is being graded."""
        f = self.discovery.files.get(f"{self.part}/{filename}")
        return bool(f and f.usable)

    def output(self) -> str:
        return self.worker.output()
