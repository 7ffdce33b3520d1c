"""One mistake, one deduction: a function's checks never pay for another function's bug.

For every graded function F (the ``@grades`` of the checks):

- the reference with F reverted to the handout's stub loses exactly F's checks, i.e. F's
  configured points, and nothing on any other function's checks;
- the handout with only F written earns exactly F's points (plus the part's policy check,
  which scores once any code of the part runs): F's checks need no other function;
- the reference with F returning NaN, and with F returning an extra leading dimension, loses
  points on F's checks and on no other check.

One grade carries a whole group of functions of which none calls another (the callee of a
graded function is a stand-in in its checks, so the groups' verdicts stay apart): 3 grades per
case instead of one per function; the accounting is per function. The written
cases run the whole profile, smoke trainings included: each smoke check passes with every
other function missing, so no smoke check depends on another function. The stubbed, NaN and
shape cases then need only the ``quick`` profile (CI time).

A hanging function (``KLD`` that never returns) costs its own checks and one timeout, and
nothing else (``test_hanging_function_times_out_once``).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from autograder import config
from autograder.registry import ALL
from tests.support import (Edit, config_copy, declared_checks, explain, grade, make_submission, mutate_output,
                           submission_with)

pytestmark = pytest.mark.slow

CFG = config.load()
DECLARED = declared_checks()
# This project's own handout (the default edition): part 4 belongs to the IFT6135 editions (test_ift6135.py).
GRADES = {cid: d["grades"] for cid, d in DECLARED.items() if cid.split(".", 1)[0] in CFG.parts}
FUNCTIONS = sorted({g for g in GRADES.values() if g != ALL})
PART1 = [f for f in FUNCTIONS if f.startswith("part1.")]
PART2 = [f for f in FUNCTIONS if f.startswith("part2.")]


def _points(function_id: str) -> float:
    return sum(CFG.checks[cid].weight for cid, g in GRADES.items() if g == function_id)


def _lost(results: dict) -> dict[str, float]:
    return {t["extra_data"]["check_id"]: t["max_score"] - t["score"] for t in results["tests"]
            if t["score"] < t["max_score"] - 1e-9}


def _only(pair: tuple[str, ...]) -> list[str]:
    """Grade the parts of the pair only (the other part's checks are not at stake)."""
    return [a for part in sorted({f.split(".")[0] for f in pair}) for a in ("--only", f"{part}.*")]


def _pair_id(pair: tuple[str, ...]) -> str:
    return "+".join(f.split(".", 2)[2] for f in pair)


def test_every_graded_function_has_checks_and_points():
    assert len(PART1) >= 14 and len(PART2) >= 5, FUNCTIONS
    for f in FUNCTIONS:
        assert _points(f) > 0, f
    assert abs(sum(_points(f) for f in FUNCTIONS) + sum(CFG.checks[c].weight for c, g in GRADES.items() if g == ALL)
               - sum(c.weight for c in CFG.checks.values() if c.id.split(".", 1)[0] in CFG.parts)) < 1e-9


def _related(a: str, b: str) -> bool:
    """Whether one of two graded functions calls the other (``depends``, transitively)."""
    from autograder.standins import StandIns

    if a.split(".")[0] != b.split(".")[0]:
        return False
    part = a.split(".")[0]
    s = StandIns(part, None, CFG.parts[part].depends)
    return s.key(b) in s.calls(s.key(a)) or s.key(a) in s.calls(s.key(b))


def _independent_groups(functions: list[str]) -> list[tuple[str, ...]]:
    """Functions grouped so that none in a group calls another in it: their checks never run each
    other's code (the ones they call are stand-ins), so one grade can mutate a whole group and
    still tell which function's checks paid."""
    groups: list[list[str]] = []
    for f in functions:
        home = next((g for g in groups if not any(_related(f, o) for o in g)), None)
        if home is None:
            groups.append([f])
        else:
            home.append(f)
    return [tuple(g) for g in groups]


# Stubbed / written: a whole independent group at once (one grade each): none of them calls
# another, so each one's checks still show exactly its own points.
GROUPS = _independent_groups(FUNCTIONS)


@pytest.mark.parametrize("pair", GROUPS, ids=_pair_id)
def test_a_stubbed_function_costs_exactly_its_own_points(tmp_path: Path, pair: tuple[str, ...]):
    results = grade(submission_with(tmp_path / "sub", stubbed=pair), tmp_path / "r.json", "--profile", "quick",
                    *_only(pair))
    lost = _lost(results)
    graded = {t["extra_data"]["check_id"] for t in results["tests"]}
    for f in pair:
        mine = {cid for cid in graded if GRADES[cid] == f}
        assert mine and mine <= set(lost), f"{f} stubbed: checks that still scored: {sorted(mine - set(lost))}"
        assert abs(sum(lost[c] for c in mine) - sum(CFG.checks[c].weight for c in mine)) < 1e-9
    collateral = [t for t in results["tests"] if t["extra_data"]["check_id"] in lost
                  and GRADES[t["extra_data"]["check_id"]] not in pair]
    assert not collateral, f"{pair} stubbed: other functions' checks lost points:\n{explain(collateral)}"


@pytest.mark.parametrize("pair", GROUPS, ids=_pair_id)
def test_the_handout_with_one_function_written_earns_exactly_its_points(tmp_path: Path, pair: tuple[str, ...]):
    results = grade(submission_with(tmp_path / "sub", written=pair), tmp_path / "r.json", *_only(pair))
    scored = {t["extra_data"]["check_id"]: t for t in results["tests"] if t["score"] > 0}
    for f in pair:
        mine = {cid for cid, g in GRADES.items() if g == f}
        missing = [t for t in results["tests"] if t["extra_data"]["check_id"] in mine and t["score"] < t["max_score"]]
        assert not missing, f"only {f} written: its own checks lost points:\n{explain(missing)}"
    parts = {f.split(".")[0] for f in pair}
    extra = [t for cid, t in scored.items() if GRADES[cid] not in pair
             and not (GRADES[cid] == ALL and cid.split(".")[0] in parts)]
    assert not extra, f"only {pair} written: other functions' checks scored:\n{explain(extra)}"


# train returns the model it trained: "NaN" is a model with NaN weights, judged only by the smoke
# training (so its grade runs the full profile); a "wrong shape" has no meaning for it.
RETURNS_MODEL = {"part2.utils.train"}
OUTPUT_CASES = [(group, how) for how in ("nan", "shape")
                for group in _independent_groups([f for f in FUNCTIONS if how == "nan" or f not in RETURNS_MODEL])]


@pytest.mark.parametrize("pair, how", OUTPUT_CASES, ids=[f"{_pair_id(p)}-{h}" for p, h in OUTPUT_CASES])
def test_a_wrong_output_costs_only_its_own_checks(tmp_path: Path, pair: tuple[str, ...], how: str):
    """Every function of an independent group returns NaN (or a wrong shape) at once: each loses
    points on its own checks, no other function's check loses any."""
    sub = make_submission(tmp_path / "sub")
    for f in pair:
        mutate_output(sub, f, how)
    profile = "full" if RETURNS_MODEL & set(pair) else "quick"
    results = grade(sub, tmp_path / "r.json", "--profile", profile, *_only(pair))
    lost = _lost(results)
    for f in pair:
        assert any(GRADES[c] == f for c in lost), f"{f} returning {how}: none of its checks lost points"
    collateral = [t for t in results["tests"] if t["extra_data"]["check_id"] in lost
                  and GRADES[t["extra_data"]["check_id"]] not in pair]
    assert not collateral, f"{pair} returning {how}: other functions' checks lost points:\n{explain(collateral)}"


def test_hanging_function_times_out_once(tmp_path: Path):
    """KLD never returns: its first check times out, its other checks fail at once saying so, and
    every other function keeps its points (the policy probe gives each function a few seconds)."""
    sub = make_submission(tmp_path / "sub", [Edit("part1", "utils.py", "    # BEGIN SOLUTION Q1.7\n    per_dim",
                                                  "    # BEGIN SOLUTION Q1.7\n    while True:\n        pass\n    per_dim")])
    kld = {cid for cid, g in GRADES.items() if g == "part1.utils.KLD"}
    # quick: the smoke trainings (~20 s) add nothing to what a hang in KLD shows; KLD's checks get
    # 6 s instead of 30 (the wait, with a core spinning, is the test's whole cost)
    config = config_copy(tmp_path / "config", {cid: {"budget_s": 6} for cid in kld})
    results = grade(sub, tmp_path / "r.json", "--profile", "quick", "--only", "part1.*", config=config)
    lost = _lost(results)
    assert set(lost) == kld, f"lost: {sorted(lost)}"
    outcomes = {t["extra_data"]["check_id"]: t for t in results["tests"]}
    assert all(outcomes[c]["extra_data"]["outcome"] == "timeout" for c in kld), [outcomes[c]["output"][:200] for c in kld]
    waited = [c for c in kld if "is not run again" not in outcomes[c]["output"]]
    assert len(waited) == 1, [outcomes[c]["output"][:200] for c in kld]  # one timeout, the others at once
    for c in kld - set(waited):
        assert outcomes[c]["extra_data"]["duration_s"] < 5, outcomes[c]["extra_data"]


@pytest.mark.slow
def test_memory_bomb_costs_only_its_function(tmp_path: Path):
    """sample_reparameterize allocates without end: its worker is killed at the memory limit in
    each of its checks, which fail saying so; the policy check, whose run-time probe calls it
    too, falls back to the static scan instead of charging the bug again."""
    bomb = "    hoard = []\n    while True:\n        hoard.append(torch.ones(16 << 20))  # 64 MB more each step\n"
    sub = make_submission(tmp_path / "sub", [Edit("part1", "utils.py", "    # BEGIN SOLUTION Q1.7\n    eps = torch.randn_like(std)",
                                                  "    # BEGIN SOLUTION Q1.7\n" + bomb + "    eps = torch.randn_like(std)")])
    results = grade(sub, tmp_path / "r.json", "--profile", "quick", "--only", "1.7.*", "--only", "1.9.9")
    lost = _lost(results)
    mine = {cid for cid, g in GRADES.items() if g == "part1.utils.sample_reparameterize"}
    assert set(lost) == mine, f"lost: {sorted(lost)}"
    for t in results["tests"]:
        if t["extra_data"]["check_id"] in mine:
            assert "memory" in t["output"].lower(), t["output"][:300]
