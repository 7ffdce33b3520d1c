"""The pytest plugin that turns check runs into graded outcomes.

pytest runs the checks in the trusted process; this plugin (a handful of small
hooks) selects the checks of the active profile and ``--only`` patterns, opens
each check's time budget, stops starting checks when the run's budget is spent,
and classifies every way a check can end into an :class:`Outcome`.
"""
from __future__ import annotations

import fnmatch
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

from .config import CheckSpec, Config
from .registry import CheckFailed, Figures, Leaderboard, PartialCredit, check_id_of, grades_of, tags_of
from .session import Clock

if sys.version_info < (3, 11):  # hypothesis brings the backport on Python 3.10
    from exceptiongroup import BaseExceptionGroup


@dataclass
class Outcome:
    """How one configured check ended."""

    spec: CheckSpec
    tags: tuple[str, ...]
    status: str  # passed | failed | student_error | timeout | not_run | grader_error | skipped
    fraction: float
    message: str = ""
    detail: str = ""  # instructor-only (tracebacks of grader errors)
    duration_s: float = 0.0
    student_output: str = ""
    grades: str = ""  # the one function this check grades (registry.grades)

    @property
    def score(self) -> float:
        return round(self.spec.weight * self.fraction, 4)


@dataclass
class RunState:
    """What the plugin shares with the runner while pytest runs."""

    cfg: Config
    only: list[str]
    run_deadline: float
    clock: Clock
    on_outcome: Callable[[Outcome], None]
    student_output: Callable[[], str]
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    collection_errors: list[str] = field(default_factory=list)
    unknown_checks: list[str] = field(default_factory=list)
    leaderboard: Leaderboard = field(default_factory=Leaderboard)
    figures: Figures = field(default_factory=Figures)
    selected: list[str] = field(default_factory=list)
    deselected: set[str] = field(default_factory=set)
    # The parts each collected check reaches (its part fixtures, ``part1``...), whatever its id
    # is called: a part's worker is closed once no pending check reaches it.
    uses: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Called when a check starts (its spec and the function it grades) and just before its
    # outcome is built (notes for its output, e.g. which stand-ins replaced other functions).
    on_start: Callable[[CheckSpec, str], None] = lambda spec, grades: None
    check_notes: Callable[[], list[str]] = lambda: []
    # Graded functions the submission left as the handout has them: their checks score 0 at once.
    untouched: dict[str, str] = field(default_factory=dict)  # function id -> why
    # Run order: a check's tier is that of the function it grades (0: calls no graded function);
    # lower tiers first, so a function's own checks end before its stand-in reaches the worker.
    tier: Callable[[str], int] = lambda graded: 0

    def parts_of(self, cid: str) -> tuple[str, ...]:
        """The parts check ``cid`` reaches; one never collected: the part its id names."""
        return self.uses[cid] if cid in self.uses else (cid.split(".")[0],)

    def expected(self) -> list[str]:
        """Check ids this run owes a result for: those selected, plus configured ones whose
        code never got collected (a module that failed to load), so none is dropped silently."""
        missing = [cid for cid, spec in self.cfg.checks.items()
                   if cid not in self.selected and cid not in self.deselected and self.cfg.selected(spec)
                   and (not self.only or _matches(self.only, spec, ()))]
        return [*self.selected, *missing]


def _matches(patterns: list[str], spec: CheckSpec, tags: tuple[str, ...]) -> bool:
    keys = (spec.id, spec.number, *tags)
    return any(fnmatch.fnmatchcase(k, p) for p in patterns for k in keys)


def root_cause(exc: BaseException) -> BaseException:
    """The exception that explains a failure: hypothesis may wrap several in a group."""
    from .sandbox import WorkerFailure

    if isinstance(exc, BaseExceptionGroup):
        leaves = [root_cause(e) for e in exc.exceptions]
        for kind in (WorkerFailure, CheckFailed, AssertionError):
            for leaf in leaves:
                if isinstance(leaf, kind):
                    return leaf
        return leaves[0] if leaves else exc
    return exc


_FRAME = re.compile(r'File "([^"]+)", line (\d+)')


def _student_location(tb: str) -> str:
    """' (in estimators.py, line 12)': the innermost frame in a student's file, so that an error
    raised while importing a module (e.g. a missing import) names the file it came from."""
    for path, line in reversed(_FRAME.findall(tb or "")):
        name = path.replace("\\", "/").rsplit("/", 1)[-1]
        if ("/site-packages/" in path or "/lib/python" in path or "/_ag_worker/" in path or name == "worker_main.py"
                or name.startswith("drivers_") or name.startswith("<")):
            continue
        return f" (in {name}, line {line})"
    return ""


def classify(exc: BaseException) -> tuple[str, str]:
    """(status, message) for an exception that ended a check."""
    from .sandbox import StudentError, WorkerFailure, WorkerTimeout

    exc = root_cause(exc)
    if isinstance(exc, CheckFailed):
        return "failed", str(exc)
    if isinstance(exc, WorkerTimeout):
        return "timeout", f"Your code did not finish in time: {exc}"
    if isinstance(exc, StudentError):
        return "student_error", f"Your code raised an error: {exc}{_student_location(exc.traceback)}"
    if isinstance(exc, WorkerFailure):
        return "student_error", f"Your code stopped the worker process: {exc}"
    if isinstance(exc, AssertionError):
        return "failed", str(exc).split("\nassert ")[0] or "a check assertion failed"
    return "grader_error", (
        "The grader hit an internal error on this check (not your fault); "
        "this check scores 0 and the instructors can see the details."
    )


class GradingPlugin:
    """pytest hooks; one instance per grading run."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self._started: dict[str, float] = {}
        self._partial: dict[str, PartialCredit] = {}

    # -- selection -------------------------------------------------------
    def pytest_configure(self, config: Any) -> None:
        # Failure messages come from the check's exception (classify), never from pytest's
        # report; pytest's default long form re-parses every frame's source (measured: 9 s of
        # a 22 s handout grade). "native" is plain traceback formatting, still complete for
        # collection errors.
        config.option.tbstyle = "native"

    def pytest_collection_modifyitems(self, session: pytest.Session, config: Any, items: list) -> None:
        keep, drop = [], []
        for item in items:
            fn = getattr(item, "function", None)
            cid = check_id_of(fn) if fn else None
            spec = self.state.cfg.checks.get(cid or "")
            if spec is None:
                self.state.unknown_checks.append(f"{item.nodeid}: check id {cid!r} is not in {self.state.cfg.path.name}")
                drop.append(item)
                continue
            tags = tags_of(fn)
            if not self.state.cfg.selected(spec, tags) or (self.state.only and not _matches(self.state.only, spec, tags)):
                self.state.deselected.add(spec.id)
                drop.append(item)
                continue
            item.stash[_SPEC] = spec
            item.stash[_TAGS] = tags
            item.stash[_GRADES] = grades_of(fn)
            self.state.uses[spec.id] = tuple(p for p in self.state.cfg.parts if p in item.fixturenames)
            keep.append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
        # One part after the other (a part's worker is closed after its last check: one worker's
        # memory at a time), and within a part tier by tier; stable: file order within a tier.
        keep.sort(key=lambda item: ((self.state.uses[item.stash[_SPEC].id] or ("",))[0],
                                    self.state.tier(item.stash[_GRADES])))
        items[:] = keep
        self.state.selected = [i.stash[_SPEC].id for i in keep]

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.state.collection_errors.append(f"{report.nodeid}: {report.longreprtext[-3000:]}")

    # -- budgets ---------------------------------------------------------
    def pytest_runtest_setup(self, item: Any) -> None:
        spec: CheckSpec = item.stash[_SPEC]
        now = time.monotonic()
        self._started[item.nodeid] = now
        if now >= self.state.run_deadline:
            pytest.skip("not run: the grading run's time budget was spent before this check started")
        budget = spec.budget_s or float(self.state.cfg.grader.get("default_check_budget_s", 60))
        self.state.clock.check_budget_s = budget
        self.state.clock.check_deadline = min(now + budget, self.state.run_deadline)
        self._partial[item.nodeid] = PartialCredit()
        graded = item.stash[_GRADES]
        self.state.figures.check = spec.number
        self.state.on_start(spec, graded)
        if graded in self.state.untouched:
            name = graded.split(".", 2)[-1]
            raise CheckFailed(f"{name} is not implemented yet: {self.state.untouched[graded]}, so this check "
                              "does not run")

    # -- fixtures provided to checks -------------------------------------
    def partial_for(self, nodeid: str) -> PartialCredit:
        return self._partial.setdefault(nodeid, PartialCredit())

    # -- outcomes --------------------------------------------------------
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: Any, call: Any):  # type: ignore[no-untyped-def]
        outcome = yield
        report = outcome.get_result()
        spec: CheckSpec = item.stash[_SPEC]
        if spec.id in self.state.outcomes:
            return  # the first phase that decided the check wins (setup error, or call)
        if call.when == "setup" and report.passed:
            return
        if call.when == "teardown" and report.passed:
            return
        duration = time.monotonic() - self._started.get(item.nodeid, time.monotonic())
        partial = self._partial.get(item.nodeid, PartialCredit())
        tags = partial.tags or item.stash[_TAGS]
        if report.passed:
            fraction = 1.0 if partial.fraction is None else partial.fraction
            status, message = ("passed" if fraction >= 1.0 else "failed"), "\n".join(partial.notes)
            detail = ""
        elif report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            reason = reason.removeprefix("Skipped: ")
            status = "not_run" if reason.startswith("not run") else "skipped"
            fraction, message, detail = 0.0, reason, ""
        else:
            exc = call.excinfo.value if call.excinfo else RuntimeError("unknown failure")
            status, message = classify(exc)
            fraction = partial.fraction or 0.0
            detail = ""
            if status == "grader_error":
                detail = "".join(traceback.format_exception(exc))[-6000:]
            if partial.notes:
                message = "\n".join([*partial.notes, message])
        try:
            notes = self.state.check_notes()
        except Exception:  # noqa: BLE001 - a note must never cost the check its outcome
            notes = []
        if notes and status not in ("not_run", "skipped"):
            message = "\n".join([message, *notes]) if message else "\n".join(notes)
        result = Outcome(spec, tags, status, fraction, message, detail, round(duration, 3), self.state.student_output(),
                         item.stash[_GRADES])
        self.state.outcomes[spec.id] = result
        self.state.on_outcome(result)


_SPEC = pytest.StashKey[CheckSpec]()
_TAGS = pytest.StashKey[tuple]()
_GRADES = pytest.StashKey[str]()
