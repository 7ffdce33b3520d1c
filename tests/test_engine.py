"""The grading engine on a tiny fake assignment: every failure costs only its own checks.

Each case is a real submission graded through ``python -m autograder grade`` with the
fake assignment's config (tests/fake_assignment): 2 parts, 4 graded functions, 5 checks.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.support import assert_full_marks, by_id, grade

FAKE = Path(__file__).parent / "fake_assignment"
CONFIG = FAKE / "grading.toml"
MATHOPS_OK = FAKE.joinpath("reference/part1/mathops.py").read_text()
SHAPES_OK = FAKE.joinpath("reference/part1/shapes.py").read_text()
WORDS_OK = FAKE.joinpath("reference/part2/words.py").read_text()
ALL = {"fake.add.values", "fake.scale.values", "fake.add.commutes", "fake.ones.shape", "fake.shout.values"}
ADD_CHECKS = {"fake.add.values", "fake.add.commutes"}
MATHOPS_CHECKS = ADD_CHECKS | {"fake.scale.values"}

HANG = MATHOPS_OK.replace("    return a + b", "    while True:\n        pass")
CASES = {
    # name: (files, {check id that must lose points: phrase in its output})
    "hanging function": (
        {"part1/mathops.py": HANG},
        # The call's own limit, or (on a loaded machine, where restarting the worker after
        # the first hang eats into the next check) the check's budget: both say "time".
        {c: ("did not finish in time", "used its whole time budget") for c in ADD_CHECKS}),
    "crashing import": (
        {"part1/mathops.py": "raise RuntimeError('boom at import')\n" + MATHOPS_OK},
        {c: "boom at import" for c in MATHOPS_CHECKS}),
    "os._exit at import": (
        {"part1/mathops.py": "import os\nos._exit(0)\n" + MATHOPS_OK},
        {c: "worker" for c in MATHOPS_CHECKS}),
    "sys.exit at import": (
        {"part1/mathops.py": "import sys\nsys.exit(3)\n" + MATHOPS_OK},
        {c: "" for c in MATHOPS_CHECKS}),
    "syntax error in one file": (
        {"part1/shapes.py": "def ones(n):\n    return torch.ones(n\n"},
        {"fake.ones.shape": "syntax error at line"}),
    "missing file": (
        {"part2/words.py": None},
        {"fake.shout.values": "was not found in your submission"}),
    "wrong answer": (
        {"part1/mathops.py": MATHOPS_OK.replace("return x * k", "return x * k + 1")},
        {"fake.scale.values": "expected [3, 3, 3, 3]"}),
}


def write_submission(root: Path, overrides: dict[str, str | None]) -> Path:
    files = {"part1/mathops.py": MATHOPS_OK, "part1/shapes.py": SHAPES_OK, "part2/words.py": WORDS_OK}
    for key, text in overrides.items():
        if text is None:
            files.pop(key)
        else:
            files[key] = text
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def run(tmp_path: Path, overrides: dict[str, str | None], *args: str, config: Path = CONFIG) -> dict:
    sub = write_submission(tmp_path / "submission", overrides)
    return grade(sub, tmp_path / "results.json", *args, config=config, timeout=180)


def test_correct_submission_gets_full_marks(tmp_path: Path):
    results = run(tmp_path, {})
    assert_full_marks(results, "fake reference")
    assert results["score"] == 6
    assert {t["extra_data"]["check_id"] for t in results["tests"]} == ALL
    vis = {t["extra_data"]["check_id"]: t["visibility"] for t in results["tests"]}
    assert vis["fake.shout.values"] == "hidden" and vis["fake.add.commutes"] == "after_due_date"
    assert by_id(results)["fake.add.values"]["tags"] == ["part1.mathops.add"]
    # Check ids here do not name their part (fake.add.values): the part a check reaches is its
    # part fixture, so each part's worker starts once and closes after that part's last check.
    assert results["extra_data"]["worker_starts"] == {"part1": 1, "part2": 1}


def test_empty_submission_scores_zero_with_clear_lines(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    results = grade(tmp_path / "empty", tmp_path / "r.json", config=CONFIG)
    assert results["score"] == 0 and len(results["tests"]) == 5
    for t in results["tests"]:
        assert "not implemented yet" in t["output"] and "grader error" not in t["output"].lower(), t["output"]
        assert "was not found in your submission" in t["output"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_failure_costs_only_its_own_checks(tmp_path: Path, case: str):
    overrides, expected = CASES[case]
    start = time.monotonic()
    results = run(tmp_path, overrides)
    elapsed = time.monotonic() - start
    tests = by_id(results)
    for cid in ALL:
        t = tests[cid]
        if cid in expected:
            assert t["score"] == 0, f"{case}: {cid} kept its points"
            wanted = expected[cid] if isinstance(expected[cid], tuple) else (expected[cid],)
            assert any(w.lower() in t["output"].lower() for w in wanted), f"{case}: {cid} output: {t['output']}"
        else:
            assert t["score"] == t["max_score"], f"{case}: untouched check {cid} lost points: {t['output']}"
    assert elapsed < 90, f"{case}: took {elapsed:.0f} s"


def test_only_pattern_and_profile_select_checks(tmp_path: Path):
    results = run(tmp_path, {}, "--only", "part2.*")
    assert [t["extra_data"]["check_id"] for t in results["tests"]] == ["fake.shout.values"]
    results = run(tmp_path, {}, "--only", "1.1.*")
    assert {t["extra_data"]["check_id"] for t in results["tests"]} == MATHOPS_CHECKS
    results = run(tmp_path, {}, "--profile", "only_part2")
    assert [t["extra_data"]["check_id"] for t in results["tests"]] == ["fake.shout.values"]


def test_results_are_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Two grades of one submission agree, one forked from the tests' warm interpreter and one a
    fresh ``python -m autograder`` (tests/warm_grader.py: the shortcut changes no result)."""
    # Right on the fixed example, wrong (not commutative) on most generated ones.
    overrides = {"part1/mathops.py": MATHOPS_OK.replace("return a + b", "return a + b if a.numel() == 6 else a + 2 * b")}
    first = run(tmp_path / "a", overrides)
    monkeypatch.setenv("AG_TESTS_COLD", "1")
    second = run(tmp_path / "b", overrides)
    strip = lambda r: [(t["number"], t["score"], t["output"]) for t in r["tests"]]  # noqa: E731
    assert strip(first) == strip(second)
    assert first["score"] < 6  # the property check finds the bug, the same way twice


def _copy_assignment(tmp_path: Path) -> Path:
    dest = tmp_path / "assignment"
    shutil.copytree(FAKE, dest)
    return dest


def test_a_check_module_that_fails_to_load_is_reported_not_dropped(tmp_path: Path):
    fake = _copy_assignment(tmp_path)
    (fake / "checks/test_fake.py").write_text("this is not python\n")
    results = run(tmp_path, {}, config=fake / "grading.toml")
    assert len(results["tests"]) == 5 and results["score"] == 0
    assert all("did not run" in t["output"] for t in results["tests"])
    assert results["extra_data"]["collection_errors"]


def test_grader_crash_still_writes_valid_results(tmp_path: Path):
    fake = _copy_assignment(tmp_path)
    shutil.rmtree(fake / "handout")  # the instructor's copy is gone: the grader cannot stage
    results = run(tmp_path, {}, config=fake / "grading.toml")
    assert results["score"] == 0 and "internal error" in results["output"]
    assert "Traceback" in results["extra_data"]["grader_error"]


def test_run_budget_stops_starting_checks(tmp_path: Path):
    fake = _copy_assignment(tmp_path)
    text = (fake / "grading.toml").read_text().replace("run_budget_s = 60", "run_budget_s = 0")
    (fake / "grading.toml").write_text(text)
    results = run(tmp_path, {}, config=fake / "grading.toml")
    assert len(results["tests"]) == 5 and results["score"] == 0
    assert all("time budget" in t["output"] for t in results["tests"]), [t["output"] for t in results["tests"]]


def test_results_file_is_json_even_for_a_missing_submission_folder(tmp_path: Path):
    results = grade(tmp_path / "does-not-exist", tmp_path / "r.json", config=CONFIG)
    assert results["score"] == 0 and "does not exist" in results["output"]
    json.loads((tmp_path / "r.json").read_text())
