"""Fixtures every check can ask for, and the derandomised hypothesis profile.

- ``part1`` / ``part2``: :class:`autograder.session.PartSession` for that part's worker
- ``cfg``: the loaded configuration; ``threshold("part1.smoke.max_bpd")`` reads one value
- ``part3``: the same for part 3 (attacks on the VAE, HMC)
- ``part4``: the same for part 4 (IFT6135 HW3 problems 2 and 3, the ift6135 editions)
- ``ref1(module)`` ... ``ref4(module)``: the reference solution's module, trusted process only
- ``partial_credit``, ``leaderboard``: gradescope-utils' vocabulary
- ``figures``: pictures of the student's models for the local report (never a score)
"""
from __future__ import annotations

from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, settings

from autograder.checks import reference
from autograder.runner import current_context

# Same examples on every run: a submission's score must not depend on luck.
settings.register_profile(
    "grading",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=int(current_context().cfg.grader.get("hypothesis_max_examples", 20)),
    print_blob=False,
    report_multiple_bugs=False,  # one failure per check: the student reads one clear message
    suppress_health_check=list(HealthCheck),
)
settings.load_profile("grading")


@pytest.fixture(scope="session")
def cfg() -> Any:
    return current_context().cfg


@pytest.fixture(scope="session", autouse=True)
def part_setup(cfg: Any) -> None:
    """Each part's setup driver (``[parts.N] setup``) runs here too, with the part's conventions:
    the grader computes its expectations in the conventions the workers use."""
    reference.setup_parts(cfg)


@pytest.fixture(scope="session")
def threshold(cfg: Any) -> Callable[[str], Any]:
    return cfg.threshold


@pytest.fixture(scope="session")
def part1() -> Any:
    return current_context().sessions["part1"]


@pytest.fixture(scope="session")
def part2() -> Any:
    return current_context().sessions["part2"]


@pytest.fixture(scope="session")
def part3() -> Any:
    return current_context().sessions["part3"]


@pytest.fixture(scope="session")
def part4() -> Any:
    return current_context().sessions["part4"]


@pytest.fixture(scope="session")
def ref1(cfg: Any) -> Callable[[str], Any]:
    return lambda module: reference.module(cfg.reference_dir, "part1", module)


@pytest.fixture(scope="session")
def ref2(cfg: Any) -> Callable[[str], Any]:
    return lambda module: reference.module(cfg.reference_dir, "part2", module)


@pytest.fixture(scope="session")
def ref3(cfg: Any) -> Callable[[str], Any]:
    return lambda module: reference.module(cfg.reference_dir, "part3", module)


@pytest.fixture(scope="session")
def ref4(cfg: Any) -> Callable[[str], Any]:
    return lambda module: reference.module(cfg.reference_dir, "part4", module)


@pytest.fixture()
def partial_credit(request: pytest.FixtureRequest) -> Any:
    return current_context().plugin.partial_for(request.node.nodeid)


@pytest.fixture()
def leaderboard() -> Any:
    return current_context().state.leaderboard


@pytest.fixture()
def figures() -> Any:
    return current_context().state.figures
