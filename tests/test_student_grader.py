"""The student edition of the grader (issue 14): visible checks, Gradescope's scores, no solution.

``tools/make_handout.py --grader`` adds the engine, the visible checks and the reference values
they use (recorded by grading solutions/) to the handout. Built here from a copy of the
configuration in which three checks are hidden (one whose expectations come from a graded
reference function, one smoke training, one property check):

- nothing of the reference ships: no line of a solution block, no hidden check's id or code;
- inside the handout, ``python -m autograder grade`` gives every visible check the same score as
  the instructor's grader, for the reference, three mutants and the untouched handout, and says
  how many points are hidden; the one allowed difference is a check of a function that calls a
  function with a mistake (no stand-ins ship): it may lose more locally, and says why.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.mutants_part1_functions import MUTANTS as P1
from tests.mutants_part2 import MUTANTS as P2
from tests.support import SOLUTIONS, STUDENT, by_id, config_copy, made_once, make_submission, validate
from tests.warm_grader import run_grader
from tools import student_grader

HIDDEN = ["part1.utils.elbo_to_bpd.reference", "part2.adversarial_attack.fgsm_attack.smoke.accuracy_drop",
          "part1.estimators.log_mean_exp.stability"]
GRADED = {"part1": ["utils.py", "cnn_encoder_decoder.py", "estimators.py", "train_torch.py", "train_pl.py"],
          "part2": ["adversarial_attack.py", "utils.py"]}


def _config(tmp: Path) -> Path:
    """grading.toml with absolute paths and the HIDDEN checks hidden."""
    return config_copy(tmp, {cid: {"visibility": "hidden"} for cid in HIDDEN})


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(handout with the student grader, the instructor's config, the instructor's results for the
    reference: the grade that recorded the expectations, visible checks only). Built once per test
    run, whichever test process asks first."""
    def make(tmp: Path) -> None:
        config = _config(tmp)
        handout = tmp / "handout"
        shutil.copytree(STUDENT, handout, ignore=shutil.ignore_patterns("autograder", "grading.toml",
                                                                        "requirements.txt", "__pycache__"))
        points = student_grader.build(handout, config, results=tmp / "recording.json")
        (tmp / "points.json").write_text(json.dumps(points))

    tmp = made_once(tmp_path_factory, "student_grader", make)
    points = json.loads((tmp / "points.json").read_text())
    assert points["hidden"] == pytest.approx(1.25 + 0.5 + 0.75) and points["visible"] > 40
    return tmp / "handout", tmp / "grading.toml", tmp / "recording.json"


def _solution_lines() -> set[str]:
    """Distinctive lines of the reference's solution blocks (what the handout replaces by a raise)."""
    lines: set[str] = set()
    for path in SOLUTIONS.rglob("*.py"):
        inside = False
        for line in path.read_text(encoding="utf-8").splitlines():
            if "# BEGIN SOLUTION" in line:
                inside = True
            elif "# END SOLUTION" in line:
                inside = False
            elif inside and len(line.strip()) >= 45 and not line.strip().startswith("#"):
                lines.add(line.strip())
    return lines


@pytest.mark.slow
def test_no_solution_and_no_hidden_check_ships(built: tuple[Path, Path, Path]):
    handout, _, _ = built
    shipped = {p: p.read_bytes() for p in (handout / "autograder").rglob("*") if p.is_file() and p.suffix != ".pt"}
    shipped[handout / "grading.toml"] = (handout / "grading.toml").read_bytes()
    solution = _solution_lines()
    assert len(solution) > 30
    for path, data in shipped.items():
        text = data.decode("utf-8", errors="replace")
        leaked = [line for line in solution if line in text]
        assert not leaked, f"{path}: solution lines {leaked[:3]}"
        for cid in HIDDEN:
            assert cid not in text, f"{path}: hidden check {cid}"
    # The recording holds values of graded functions only, for the visible checks' inputs.
    import torch

    recorded = torch.load(handout / "autograder" / "recorded.pt", weights_only=True)
    assert recorded and all(k.split(".")[0] in ("part1", "part2") for k in recorded)
    assert "part1.utils.elbo_to_bpd" not in recorded  # only the hidden 1.7.8 compares with the reference


def _student_grade(handout: Path, submission: Path, results: Path, *args: str) -> dict:
    # cwd: the handout, so ``python -m autograder`` is the student edition shipped there
    proc = run_grader(["grade", str(submission), "--results", str(results), "--quiet", *args], cwd=handout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(results.read_text())
    validate(out)
    return out


def _instructor_grade(config: Path, submission: Path, results: Path, *args: str) -> dict:
    proc = run_grader(["grade", str(submission), "--config", str(config), "--results", str(results), "--quiet", *args])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(results.read_text())


def _same_visible_scores(student: dict, instructor: dict) -> None:
    mine, theirs = by_id(student), by_id(instructor)
    visible = {cid for cid, t in theirs.items() if cid not in HIDDEN}
    assert set(mine) == visible, (set(mine) ^ visible)
    for cid in visible:
        if "graded here with your own" in mine[cid]["output"]:
            # No stand-ins ship: a function calling one with a mistake may lose more here, and says so.
            assert mine[cid]["score"] <= theirs[cid]["score"] + 1e-9, cid
            continue
        assert mine[cid]["score"] == pytest.approx(theirs[cid]["score"]), (cid, mine[cid]["output"][:300],
                                                                           theirs[cid]["output"][:300])


@pytest.mark.slow
@pytest.mark.parametrize("what", ["reference", "untouched", "mutants"])
def test_the_student_edition_scores_like_gradescope(built: tuple[Path, Path, Path], tmp_path: Path, what: str):
    handout, config, recording = built
    if what == "reference":
        sub, args = make_submission(tmp_path / "sub", base=SOLUTIONS), ()
    elif what == "untouched":
        sub, args = make_submission(tmp_path / "sub", base=STUDENT), ("--profile", "quick")
    else:  # three realistic mistakes in three functions, graded together
        picks = [P1[0], P1[len(P1) // 2], P2[0]]
        assert len({m.function for m in picks}) == 3
        sub, args = make_submission(tmp_path / "sub", [e for m in picks for e in m.edits]), ("--profile", "quick")
    student = _student_grade(handout, sub, tmp_path / "s.json", *args)
    if what == "reference":  # the instructor's grade of the reference is the one that recorded the expectations
        instructor = json.loads(recording.read_text())
    else:
        instructor = _instructor_grade(config, sub, tmp_path / "i.json", *args)
    _same_visible_scores(student, instructor)
    assert "student edition" in student["output"] and "2.5 more points" in student["output"]
    if what == "reference":
        assert all(t["score"] == t["max_score"] for t in student["tests"])
    if what == "untouched":
        assert student["score"] == 0


@pytest.mark.slow
def test_make_handout_check_notices_a_stale_student_grader(built: tuple[Path, Path, Path], tmp_path: Path):
    """``tools/make_handout.py --check`` keeps the student grader current: a check module changed
    after the build shows up (the recording itself is remade by every build)."""
    shared, config, _ = built
    assert student_grader.stale(shared, config) == []
    # Edited in a copy: other test processes may be grading in the shared handout meanwhile.
    handout = tmp_path / "handout"
    shutil.copytree(shared, handout, ignore=shutil.ignore_patterns("__pycache__"))
    shipped = handout / "autograder" / "checks" / "part1" / "helpers_funcs.py"
    shipped.write_bytes(shipped.read_bytes() + b"\n# edited after the build\n")
    assert student_grader.stale(handout, config) == ["autograder/checks/part1/helpers_funcs.py"]
