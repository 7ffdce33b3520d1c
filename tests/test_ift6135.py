"""The IFT6135 editions: Homework 3 graded as Montréal handed it out (issue 13).

- problems 2 and 3 (``q2_solution.py``, ``q3_solution.py``) exist only in the ``ift6135`` and
  ``ift6135_2020`` editions: this project's own handout selects none of their checks;
- the reference (problem 1 as q1_solution.py), a 2022 and a 2020 course student's files
  (tests/template_style/ift6135*) get full marks, smoke trainings included;
- every other correct way a course student writes a function keeps full marks, each realistic
  mistake (tests/mutants_ift6135.py) costs its own function only and is named; the smoke
  trainings catch the two mistakes that break training (no create_graph, no stop-gradient);
- the untouched handout and the untouched course template (``pass`` bodies) score 0.
"""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from autograder import config
from tests import mutants_ift6135 as I
from tools import make_handout
from tests.support import (ROOT, SOLUTIONS, STUDENT, assert_full_marks, assert_handout_zero, assert_mutants_caught,
                           by_id, explain, grade, group_id, independent_groups, make_submission)

PROBLEMS = ("q2_solution.py", "q3_solution.py")


def _flat(dest: Path, q1: Path, folder: Path, files: tuple[str, ...] = PROBLEMS) -> Path:
    """A flat upload as the course's students make it: q1_solution.py and the problems' files."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(q1, dest / "q1_solution.py")
    for name in files:
        shutil.copyfile(folder / name, dest / name)
    return dest


def _pass_stubs(path: Path, names: set[str]) -> None:
    """The course template's stubs: each named function's body is its docstring and ``pass``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    done = set()

    def visit(body: list, prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                visit(node.body, prefix + node.name + ".")
            elif isinstance(node, ast.FunctionDef) and prefix + node.name in names:
                doc = node.body[:1] if isinstance(node.body[0], ast.Expr) else []
                node.body = doc + [ast.Pass()]
                done.add(prefix + node.name)

    visit(tree.body, "")
    assert done == names, sorted(names - done)
    path.write_text(ast.unparse(ast.fix_missing_locations(tree)) + "\n", encoding="utf-8")


def test_problems_2_and_3_belong_to_the_ift6135_editions_only():
    own = config.load()
    assert "part4" in own.dropped_parts and not any(own.selected(c) for c in own.checks.values()
                                                      if c.id.startswith("part4."))
    ift = config.load(edition="ift6135")
    chosen = sorted(c.number for c in ift.checks.values() if ift.selected(c) and c.id.startswith("part4."))
    assert len(chosen) == 13 and not [n for n in chosen if n.startswith("2.3")]
    assert not any(c.id.startswith("part2.") for c in ift.checks.values() if ift.selected(c))
    old = config.load(edition="ift6135_2020")
    # extends: problem 1's file names and contract come from ift6135, the 2-D shapes are its own
    assert old.parts["part1"].file_names == ift.parts["part1"].file_names
    assert old.parts["part4"].graded_files == ("q2_solution.py",)
    assert old.convention("part4.lp_reg_shapes") == [[2]] and old.convention("part1.kl_mc_per_sample") is False
    assert {c.number for c in old.checks.values() if old.selected(c) and c.id.startswith("part4.")} == {
        "2.1.1", "2.1.2", "2.1.3", "2.1.4", "2.2.1", "2.2.2", "2.3.1", "2.3.2"}


def test_an_edition_that_extends_a_missing_or_circular_one_is_refused(tmp_path: Path):
    text = (ROOT / "grading.toml").read_text(encoding="utf-8")
    for extra, phrase in (('\n[editions.loop1]\nextends = "loop2"\n[editions.loop2]\nextends = "loop1"\n', "a cycle"),
                          ('\n[editions.orphan]\nextends = "nowhere"\n', "not defined")):
        path = tmp_path / "grading.toml"
        path.write_text(text + extra, encoding="utf-8")
        with pytest.raises(config.ConfigError, match=phrase):
            config.load(path, edition="loop1" if "loop" in extra else "orphan")


@pytest.mark.slow
def test_the_reference_and_course_students_get_full_marks(tmp_path: Path):
    reference = _flat(tmp_path / "ref", SOLUTIONS / "part1" / "estimators.py", SOLUTIONS / "part4")
    results = grade(reference, tmp_path / "ref.json", "--edition", "ift6135")
    assert_full_marks(results, "the reference")
    assert results["score"] == 36 and len(results["tests"]) == 21
    student = _flat(tmp_path / "s22", I.TEMPLATE / "q1_solution.py", I.TEMPLATE)
    assert_full_marks(grade(student, tmp_path / "s22.json", "--edition", "ift6135"), "a 2022 course student")
    old = _flat(tmp_path / "s20", I.TEMPLATE / "q1_solution.py", I.TEMPLATE_2020, ("q2_solution.py",))
    results = grade(old, tmp_path / "s20.json", "--edition", "ift6135_2020")
    assert_full_marks(results, "a 2020 course student")
    assert results["score"] == 26


VARIANT_GROUPS = independent_groups(I.VARIANTS, base=I.TEMPLATE, edition="ift6135")
MUTANT_GROUPS = independent_groups(I.MUTANTS, base=I.TEMPLATE, edition="ift6135")


def _graded(tmp_path: Path, group: list, base: Path, edition: str) -> dict:
    sub = make_submission(tmp_path / "sub", [e for item in group for e in item.edits], base=base, parts=(".",))
    return grade(sub, tmp_path / "r.json", "--edition", edition, "--profile", "quick", "--only", "part4.*")


@pytest.mark.slow
@pytest.mark.parametrize("group", VARIANT_GROUPS + [I.VARIANTS_2020], ids=group_id)
def test_ift6135_variants_keep_full_marks(tmp_path: Path, group: list):
    base, edition = (I.TEMPLATE_2020, "ift6135_2020") if group == I.VARIANTS_2020 else (I.TEMPLATE, "ift6135")
    results = _graded(tmp_path, group, base, edition)
    assert_full_marks(results, group_id(group))


@pytest.mark.slow
@pytest.mark.parametrize("group", MUTANT_GROUPS + [[mu] for mu in I.MUTANTS_2020], ids=group_id)
def test_ift6135_bugs_cost_only_their_function(tmp_path: Path, group: list):
    base, edition = (I.TEMPLATE_2020, "ift6135_2020") if group[0] in I.MUTANTS_2020 else (I.TEMPLATE, "ift6135")
    assert_mutants_caught(_graded(tmp_path, group, base, edition), group)


@pytest.mark.slow
def test_the_smoke_trainings_catch_what_breaks_training(tmp_path: Path):
    """No create_graph in lp_reg: the penalty never reaches the critic, which grows without bound;
    targets not detached in forward: SimSiam collapses. Each fails its own smoke training."""
    broken = [next(mu for mu in I.MUTANTS if mu.id == name) for name in ("lp_no_create_graph", "fwd_never_detached")]
    sub = make_submission(tmp_path / "sub", [e for mu in broken for e in mu.edits], base=I.TEMPLATE, parts=(".",))
    results = grade(sub, tmp_path / "r.json", "--edition", "ift6135", "--only", "*.smoke.*")
    got = by_id(results)
    assert got["part4.q2_solution.lp_reg.smoke.critic"]["score"] == 0, explain(results["tests"])
    assert "create_graph" in got["part4.q2_solution.lp_reg.smoke.critic"]["output"]
    assert got["part4.q3_solution.SimSiam.forward.smoke.no_collapse"]["score"] == 0, explain(results["tests"])
    assert "collapsed" in got["part4.q3_solution.SimSiam.forward.smoke.no_collapse"]["output"]


def test_the_course_layout_handout_is_generated_from_the_reference(tmp_path: Path):
    """tools/make_handout.py --edition ift6135: one folder with the course's file names, the given
    helpers the graded files import, part 4's README and public tests, and nothing of part 1 but
    its estimators (as q1_solution.py); each file is the generated handout's (no solution code)."""
    files = make_handout.edition_files("ift6135")
    assert set(files) == {"README.md", "part4_README.md", "q1_solution.py", "q2_model.py", "q2_sampler.py",
                          "q2_solution.py", "q3_model.py", "q3_solution.py", "test_part4_public.py"}
    assert files["q1_solution.py"] == (STUDENT / "part1" / "estimators.py").read_bytes()
    for name in ("q2_solution.py", "q3_solution.py", "q2_model.py"):
        assert files[name] == (STUDENT / "part4" / name).read_bytes()
    assert "create_graph" not in files["q2_solution.py"].decode() and "NotImplementedError" in files["q3_solution.py"].decode()
    old = make_handout.edition_files("ift6135_2020")
    assert "q3_solution.py" not in old and "vf_squared_hellinger" in old["q2_solution.py"].decode()


@pytest.mark.slow
def test_the_untouched_handout_and_course_template_score_zero(tmp_path: Path):
    handout = tmp_path / "h"
    handout.mkdir()
    for name, data in make_handout.edition_files("ift6135").items():
        (handout / name).write_bytes(data)
    results = grade(handout, tmp_path / "h.json", "--edition", "ift6135", "--profile", "quick")
    assert len(results["tests"]) == 19 and results["score"] == 0  # quick: no smoke trainings
    assert_handout_zero(results, list(by_id(results)))
    template = _flat(tmp_path / "t", I.TEMPLATE / "q1_solution.py", I.TEMPLATE)
    _pass_stubs(template / "q2_solution.py", {"lp_reg", "vf_wasserstein_distance"})
    _pass_stubs(template / "q3_solution.py", {"CosineSimilarity.forward", "SimSiam.forward", "SimSiam.loss"})
    results = grade(template, tmp_path / "t.json", "--edition", "ift6135", "--only", "part4.*")
    assert results["tests"] and all(t["score"] == 0 for t in results["tests"]), explain(
        [t for t in results["tests"] if t["score"]])
    for t in results["tests"]:
        assert "None" in t["output"].splitlines()[0], t["output"][:300]
