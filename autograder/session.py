"""What a check holds to reach one part of the student's code: a budgeted view of its worker.

``PartSession`` forwards calls to the part's sandboxed worker and bounds each call
by what is left of the running check's time budget, so a slow submission loses
that check, not the run. It also remembers whether a graded file was missing or
unusable, so a failure can say *why* the handout's ``NotImplementedError`` came up.

One mistake, one deduction: before a check's first call the session has the worker install
the grader's stand-ins for the graded functions the check's function calls
(``autograder.standins``), and a function that hung in one check fails at once in every
later check instead of waiting its timeout again.
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
    standins: Any = None  # autograder.standins.StandIns of this part (None: no stand-ins)
    part_dir: str = ""  # the part's staged folder as the worker sees it
    graded: str = ""  # the function the running check grades ("part1.utils.KLD", "*", "")
    check_number: str = ""
    # Functions that hung: function id -> the message every later check of it gets at once.
    hung: dict[str, str] = field(default_factory=dict)
    _installed: tuple | None = field(default=None)  # (worker pid, stand-in keys, hung) last sent
    # Packages the student's files import that are not installed here: name -> importing file.
    missing_packages: dict[str, str] = field(default_factory=dict)
    # (driver, conventions) each new worker runs first (``[parts.N] setup``); None: nothing.
    setup: tuple[str, Any] | None = None
    _set_up: int | None = field(default=None)  # pid of the worker that ran it

    def begin_check(self, number: str, graded: str) -> None:
        """The runner calls this when a check starts: which function it grades."""
        from .sandbox import WorkerTimeout

        self.graded, self.check_number = graded, number
        if graded in self.hung:
            self.fatal = WorkerTimeout(self.hung[graded], target=graded)

    def _graded_key(self) -> str | None:
        """The graded function as the worker names it (``utils.KLD``); None: run no stand-ins."""
        if not self.graded or self.graded == "*":
            return None
        prefix = self.part + "."
        return self.graded[len(prefix):] if self.graded.startswith(prefix) else self.graded

    def _hung_keys(self) -> dict[str, str]:
        prefix = self.part + "."
        return {fid[len(prefix):]: msg for fid, msg in self.hung.items()
                if fid.startswith(prefix) and fid.count(".") == 2}  # part.module.function: patchable

    def _standin_keys(self) -> list[str]:
        """The stand-ins the running check gets: the graded functions its function calls."""
        key = self._graded_key()
        if key is None or self.standins is None:
            return []
        return [k for k in self.standins.calls(key) if k in self.standins.available()]

    def _ensure_setup(self, timeout: float) -> None:
        if self.setup is None or (self._set_up == self.worker.pid and self.worker.alive):
            return
        driver, conventions = self.setup
        self.worker.call("@" + driver, conventions, seed=None, timeout=timeout)
        self._set_up = self.worker.pid

    def _ensure_standins(self, timeout: float) -> None:
        keys = self._standin_keys()
        want = (tuple(keys), tuple(sorted(self.hung.items())))
        if self._installed is not None and self._installed == (self.worker.pid, *want) and self.worker.alive:
            return
        if self._installed is None and not keys and not self.hung:
            return  # nothing installed, nothing to install
        source = self.standins.source_for(keys) if keys else None
        self.worker.call("@drivers_common.use_standins", source, self.part_dir, self._hung_keys(),
                         seed=None, timeout=timeout)
        self._installed = (self.worker.pid, *want)

    def check_notes(self) -> list[str]:
        """Notes for the running check's output (never starts a worker): which stand-ins its calls
        used. Also collects the packages the student's files import that are missing here (the
        run's summary lists them once)."""
        if not self.used or self.fatal is not None or not self.worker.alive:
            return []
        from .sandbox import WorkerFailure

        try:
            report = self.worker.call("@drivers_common.check_report", seed=None, timeout=5)
        except WorkerFailure:
            return []
        if not isinstance(report, dict):
            return []
        notes = []
        calls = report.get("standins")
        if isinstance(calls, dict) and calls:
            names = ", ".join(sorted(str(k) for k in calls))
            notes.append(f"Ran with the grader's own {names} in place of yours (this check grades "
                         f"{self.graded.split('.', 1)[-1]} only; your {names} {'is' if len(calls) == 1 else 'are'} "
                         "graded by their own checks).")
        missing = report.get("placeholders")
        if isinstance(missing, dict):  # said once, in the run's summary (a use fails with its own message)
            self.missing_packages.update({str(k): str(v) for k, v in missing.items()})
        return notes

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

    def _guarded(self, fn: Any, *args: Any, slow_ok: bool = False, **kwargs: Any) -> Any:
        """Run one request. ``slow_ok``: a timeout here means slow (a training), not hung."""
        from .sandbox import WorkerDied, WorkerMemoryExceeded, WorkerTimeout

        if self.fatal is not None:
            raise self.fatal
        self.used = True
        # The grader's freed temporaries go back to the system before the worker computes:
        # the run's memory peak is the two processes' transients at once (~80 us a call).
        release_free_memory()
        try:
            self._ensure_setup(self._timeout())
            self._ensure_standins(self._timeout())
            return fn(*args, **kwargs)
        except WorkerTimeout as exc:
            self.fatal = exc
            if not slow_ok and self.graded and self.graded != "*" and self.graded not in self.hung:
                name = self.graded.split(".", 1)[-1]
                self.hung[self.graded] = (
                    f"{name} already timed out in check {self.check_number} ({exc}), so it is not run again in "
                    "this grade and each of its other checks fails at once (look for an infinite loop or a very "
                    "slow step)")
            raise
        except (WorkerDied, WorkerMemoryExceeded) as exc:
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

    def call(self, target: str, *args: Any, seed: int | None = 0, slow_ok: bool = False, **kwargs: Any) -> Any:
        """Call ``module.function`` (or construct ``module.Class``) in the worker."""
        return self._guarded(lambda: self.worker.call(target, *args, seed=seed, timeout=self._timeout(), **kwargs),
                             slow_ok=slow_ok)

    def driver(self, name: str, *args: Any, seed: int | None = 0, slow_ok: bool = False, **kwargs: Any) -> Any:
        """Run an instructor helper inside the worker (``drivers_part1.train_vae``); ``slow_ok`` for
        trainings, whose timeout means a slow model rather than a function that never returns."""
        return self.call("@" + name, *args, seed=seed, slow_ok=slow_ok, **kwargs)

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
