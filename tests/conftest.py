"""Shared test-run hooks: exclusive tests, and what the run covered (issue 16).

Tests run on every core (pytest-xdist). Tests marked ``exclusive`` (the attack suite and the
sandbox's limit tests: fork bombs, memory bombs, timings) run alone: one grade's process bomb
uses the sandbox user's process budget, which every concurrent grade shares. Each test holds
a file lock, shared by ordinary tests, exclusive for ``exclusive`` ones.

The summary after the results counts what ran of each kind of adversarial input the suite
feeds the grader: mutants (a realistic bug each), variants (correct code written another
way), attacks on the sandbox, bad inputs, and one-mistake-one-deduction cases. Mutants and variants are graded in groups
(``tests/support.independent_groups``): a test id ``[a+b+c]`` is three of them.
"""
from __future__ import annotations

import fcntl
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest

LOCK = Path(tempfile.gettempdir()) / "ag-tests-exclusive.lock"


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
