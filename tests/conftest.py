"""Shared test-run hooks: users of its own for each test process, exclusive tests, and what the
run covered (issue 16).

Tests run on every core (pytest-xdist). As root, each test process grades with a sandbox user
of its own (``agsandbox-gw0``...; ``$AG_SANDBOX_USER``) and runs the attack suite's user leg as a
student user of its own (``agstudent-gw0``...; ``$AG_TESTS_STUDENT_USER``): a process bomb spends
the process budget of its own user only, and "no process of the sandbox user outlived the
grade" sees that test process's grades only. So the attack suite runs beside the other tests.
Tests marked ``exclusive`` (the sandbox's limit tests, which time restarts to the tenth of a
second) run alone: each test holds a file lock, shared by ordinary tests, exclusive for
``exclusive`` ones.

The summary after the results counts what ran of each kind of adversarial input the suite
feeds the grader: mutants (a realistic bug each), variants (correct code written another
way), attacks on the sandbox, bad inputs, and one-mistake-one-deduction cases. Mutants and
variants are graded in groups (``tests/support.independent_groups``): a test id ``[a+b+c]`` is
three of them.
"""
from __future__ import annotations

import fcntl
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest

LOCK = Path(tempfile.gettempdir()) / "ag-tests-exclusive.lock"
USERS_LOCK = Path(tempfile.gettempdir()) / "ag-tests-users.lock"


def _ensure_user(name: str) -> None:
    """A system user without a home or a login shell (useradd locks /etc/passwd: one at a time)."""
    from autograder.sandbox.policy import ensure_interpreter_access

    with open(USERS_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        ensure_interpreter_access(name)  # creates the user when missing, like setup.sh


def pytest_configure(config: pytest.Config) -> None:
    """As root under xdist: this test process's own sandbox and student users (see above)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None or os.geteuid() != 0:
        return
    for variable, prefix in (("AG_SANDBOX_USER", "agsandbox"), ("AG_TESTS_STUDENT_USER", "agstudent")):
        _ensure_user(f"{prefix}-{worker}")
        os.environ[variable] = f"{prefix}-{worker}"


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one test process per core, plus one. A test spends some of its time waiting
    (a hang running into its time limit, the attack suite's settling before it looks for
    survivors, the grader waiting on its worker's start-up), and the extra process fills those
    gaps (issue 16: measured on 2 cores, 89% of the CPU busy with two processes)."""
    return (os.cpu_count() or 1) + 1


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests that grade (``slow``) first, so no long test starts last while the other cores
    are idle; the order within each class stays the collection's."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """The lock is held over the whole test, its fixtures' setup (module fixtures that grade) included."""
    exclusive = item.get_closest_marker("exclusive") is not None
    with open(LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# kind -> test function names whose parameters are the items (None: one item per test)
KINDS: dict[str, tuple[str, ...]] = {
    "mutants": ("test_mutants_lose_points_on_their_functions_only", "test_template_style_part2_bugs_cost_only_their_function",
                "test_ift6135_bugs_cost_only_their_function", "test_part3_bugs_cost_only_their_function"),
    "variants": ("test_variants_get_full_marks", "test_template_style_part2_variants_keep_full_marks",
                 "test_ift6135_variants_keep_full_marks", "test_part3_variants_keep_full_marks"),
    "attacks": ("test_attack_as_root", "test_attack_as_user"),
    "bad inputs": ("test_bad_inputs.py::",),
    "isolation cases": ("test_isolation.py::",),
}
WIDTH = 30


def _kind(nodeid: str) -> str | None:
    for kind, names in KINDS.items():
        if any(n in nodeid if n.endswith("::") else re.search(rf"::{n}(\[|$)", nodeid) for n in names):
            return kind
    return None


def _items(nodeid: str, kind: str) -> int:
    params = nodeid.rsplit("[", 1)[1].rstrip("]") if nodeid.endswith("]") else ""
    return params.count("+") + 1 if kind in ("mutants", "variants") and params else 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            if getattr(report, "when", "call") != "call" and outcome == "passed":
                continue
            kind = _kind(nodeid)
            if kind is None:
                continue
            row = counts.setdefault(kind, {"passed": 0, "failed": 0, "skipped": 0, "tests": 0})
            key = "failed" if outcome == "error" else outcome
            row[key] += _items(nodeid, kind)
            row["tests"] += 1
    if not counts:
        return
    terminalreporter.section("coverage of the grader by the test run")
    most = max(sum(r[k] for k in ("passed", "failed", "skipped")) for r in counts.values())
    for kind in KINDS:
        if kind not in counts:
            continue
        r = counts[kind]
        total = r["passed"] + r["failed"] + r["skipped"]
        bar = "#" * round(WIDTH * r["passed"] / most) + "x" * round(WIDTH * r["failed"] / most) + \
            "." * round(WIDTH * r["skipped"] / most)
        terminalreporter.write_line(f"{kind:<16} {bar:<{WIDTH}} {r['passed']:>4} passed, {r['failed']} failed, "
                                    f"{r['skipped']} skipped ({total} in {r['tests']} tests)")
